"""Federation beyond one machine and DP-FedAvg: a TLS SuperLink the test starts itself, the epsilon
privaudit prints against Opacus' RDP accountant, the FedPer `head` personal part, one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from privaudit.cli import main
from privaudit.data.corpus import generate_corpus
from privaudit.data.subjects import generate_subjects, write_subjects
from privaudit.defenses.federated import FederatedConfig, dp_epsilon, partition_corpus
from privaudit.defenses.federated.deployment import group_alive
from privaudit.errors import InputError, PrivauditError


def _files(tmp_path: Path) -> list[str]:
    """Corpus and subjects files for `privaudit defend` (8 subjects, 2 held out)."""
    subjects = generate_subjects(8, seed=0)
    write_subjects(tmp_path / "subjects.jsonl", subjects)
    generate_corpus(subjects, repeats=4, seed=0, heldout_subject_fraction=0.25, docs_per_subject=3,
                    filler_docs=4).write(tmp_path / "corpus.jsonl")
    return ["--corpus", str(tmp_path / "corpus.jsonl"), "--subjects", str(tmp_path / "subjects.jsonl")]


def _reference_epsilon(sigma: float, q: float, rounds: int, delta: float) -> float:
    """The RDP of the sampled Gaussian (Mironov, Talwar, Zhang 2019) over Opacus' default orders,
    converted to (epsilon, delta) by Opacus' analysis functions: computed here without the accountant."""
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent
    from opacus.accountants.rdp import RDPAccountant

    orders = RDPAccountant.DEFAULT_ALPHAS
    eps, _ = get_privacy_spent(orders=orders, rdp=compute_rdp(q=q, noise_multiplier=sigma, steps=rounds, orders=orders),
                               delta=delta)
    return float(eps)


def test_dp_epsilon_is_the_rdp_of_the_subsampled_gaussian_over_rounds():
    for sigma, q, rounds in ((1.0, 1.0, 1), (1.0, 0.5, 1), (0.8, 0.25, 10), (2.0, 1.0, 5)):
        assert dp_epsilon(sigma, q, rounds, 1e-5) == pytest.approx(_reference_epsilon(sigma, q, rounds, 1e-5), rel=1e-9)
    assert dp_epsilon(1.0, 0.5, 3, 1e-5) < dp_epsilon(1.0, 1.0, 3, 1e-5) < dp_epsilon(1.0, 1.0, 6, 1e-5)
    assert dp_epsilon(0.0, 1.0, 1, 1e-5) == float("inf")


def test_config_checks_client_sampling_and_the_superlink_address():
    assert FederatedConfig(num_clients=4, clients_per_round=1).sample_rate == 0.25
    assert FederatedConfig(num_clients=3).sample_rate == 1.0
    with pytest.raises(InputError, match="clients_per_round must be in"):
        FederatedConfig(num_clients=2, clients_per_round=3)
    with pytest.raises(InputError, match="superlink must be HOST:PORT"):
        FederatedConfig(superlink="example.org")
    with pytest.raises(InputError, match="exclude each other"):
        FederatedConfig(superlink="h:1", root_certificates="ca.pem", insecure=True)


def test_flower_failure_is_a_one_line_error(tiny_model_dir: Path, tmp_path: Path):
    """Nothing listens on the port: `flwr run` fails, and the CLI prints one line (exit 2), no traceback."""
    from privaudit.defenses.federated.deployment import free_port
    from privaudit.defenses.federated.submit import FlowerProcessError

    assert issubclass(FlowerProcessError, PrivauditError) and not issubclass(FlowerProcessError, RuntimeError)
    common = ["-q", "defend", "federated", "--base", f"hf:{tiny_model_dir}", *_files(tmp_path)]
    res = CliRunner().invoke(main, [*common, "--out", str(tmp_path / "v"), "--superlink", f"127.0.0.1:{free_port()}",
                                    "--insecure"])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "flwr run failed" in lines[0] and "Traceback" not in res.output
    no_cert = CliRunner().invoke(main, [*common, "--out", str(tmp_path / "w"), "--root-certificates",
                                        str(tmp_path / "ca.pem")])
    assert no_cert.exit_code == 2 and "need --superlink HOST:PORT" in no_cert.output


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_dp_fedavg_on_a_tls_superlink_started_elsewhere(tiny_model_dir: Path, tmp_path: Path):
    """The test plays the other hosts: a TLS SuperLink + 2 SuperNodes; privaudit only submits to it.

    DP-FedAvg samples 1 of the 2 clients in the one round (q = 0.5); the epsilon privaudit prints is
    Opacus' RDP of the subsampled Gaussian at that q, and the SuperLink's log shows the noise
    Flower added (noise multiplier x clip / clients sampled)."""
    from flower_federation import tls_federation

    sigma, clip = 1.1, 0.01
    (tmp_path / "fed.toml").write_text(f"num_clients = 2\nclients_per_round = 1\nrounds = 1\nlocal_epochs = 1\n"
                                       f"clip_norm = {clip}\nnoise_multiplier = {sigma}\ndelta = 1e-5\n")
    out = tmp_path / "v"
    with tls_federation(tmp_path / "federation", clients=2) as fed:
        res = CliRunner().invoke(main, ["-q", "defend", "federated", "--base", f"hf:{tiny_model_dir}",
                                        *_files(tmp_path), "--out", str(out), "--config", str(tmp_path / "fed.toml"),
                                        "--superlink", fed.address, "--root-certificates", str(fed.ca)])
        superlink_log = fed.log("superlink")
    assert res.exit_code == 0, res.output + superlink_log[-2000:]
    printed = float(re.search(r"epsilon spent: ([0-9.]+) at delta 1e-05", res.output).group(1))
    assert printed == pytest.approx(_reference_epsilon(sigma, 0.5, 1, 1e-5), abs=5e-5)  # printed with 4 decimals
    privacy = json.loads((out / "defended.json").read_text())["privacy"]
    assert privacy["epsilon"] == pytest.approx(_reference_epsilon(sigma, 0.5, 1, 1e-5), rel=1e-9)
    assert (privacy["sample_rate"], privacy["steps"], privacy["privacy_unit"]) == (0.5, 1, "client")
    assert f"central DP noise with {sigma * clip / 1:.4f} stdev added" in superlink_log
    # TLS for real: the SuperNodes verified the server certificate against the test's CA
    connection = (out / "logs" / "flwr_home" / "config.toml").read_text()
    assert "insecure = false" in connection and str(fed.ca) in connection
    # privaudit started no process of its own, and the federation's processes are all gone
    assert not (out / "logs" / "pids.txt").exists()
    assert not any(group_alive(pid) for pid in fed.pids)
    summary = json.loads((out / "federated.json").read_text())
    assert summary["rounds_completed"] == 1 and len(summary["clients"]) == 2


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fedper_head_keeps_a_personal_head_per_client(tiny_model_dir: Path, tmp_path: Path):
    """personal_part = "head" end to end with real SuperLink/SuperNodes started by privaudit."""
    from safetensors.torch import load_file

    from privaudit.defenses.federated.parameters import HEAD_FILE
    from privaudit.defenses.registry import DefenseContext, get_defense
    from privaudit.targets.base import load_target

    corpus = generate_corpus(generate_subjects(8, seed=0), repeats=4, seed=0, heldout_subject_fraction=0.25,
                             docs_per_subject=3, filler_docs=4)
    out = tmp_path / "fed"
    defense = get_defense("federated").from_config(
        {"num_clients": 2, "rounds": 1, "local_epochs": 2, "personal_part": "head"}, "defenses.federated")
    defense.apply(DefenseContext(base=f"hf:{tiny_model_dir}", corpus=corpus, subjects=(), out_dir=out))
    pids = [int(line.split()[0]) for line in (out / "logs" / "pids.txt").read_text().splitlines()]
    assert len(pids) == 3 and not any(group_alive(pid) for pid in pids)
    summary = json.loads((out / "federated.json").read_text())
    base = load_file(str(tiny_model_dir / "model.safetensors"))
    glob = load_file(str(out / "global" / "model.safetensors"))
    heads = [load_file(str(out / "clients" / f"client_{i}" / HEAD_FILE)) for i in (0, 1)]
    head_keys = set(heads[0])
    assert head_keys == set(heads[1]) and head_keys and head_keys < set(base)
    # the personal heads differ between clients and from the global model's (= the base's) head
    assert any(not (heads[0][k] == heads[1][k]).all() for k in head_keys)
    assert all((glob[k] == base[k]).all() for k in head_keys)  # never averaged: the server holds the base's head
    assert any(not (glob[k] == base[k]).all() for k in set(base) - head_keys)  # the shared body moved
    for c in summary["clients"]:
        assert c["target_spec"] == f"hf:{out / 'clients' / ('client_' + str(c['client_id'])) / 'model'}"
        assert c["personalized_perplexity"] < c["base_perplexity"]
    client0 = load_file(str(out / "clients" / "client_0" / "model" / "model.safetensors"))
    assert all((client0[k] == heads[0][k]).all() for k in head_keys)
    assert all((client0[k] == glob[k]).all() for k in set(base) - head_keys)  # global body + own head
    assert len(load_target(summary["clients"][0]["target_spec"]).score(["Hello"], [" world"])) == 1


def test_partition_ids_match_the_node_config_a_user_starts_supernodes_with():
    """README: SuperNode K is started with `--node-config partition-id=K`, K in 0..num_clients-1."""
    corpus = generate_corpus(generate_subjects(8, seed=0), repeats=2, seed=0, heldout_subject_fraction=0.25,
                             docs_per_subject=2, filler_docs=0)
    assert [p.client_id for p in partition_corpus(corpus, 3)] == [0, 1, 2]
