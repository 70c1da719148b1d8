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
def test_dp_fedavg_with_personal_heads_on_a_tls_superlink_started_elsewhere(tiny_model_dir: Path, tmp_path: Path):
    """One federated run (Flower runs are slow: each message starts processes) proves three things.

    Remote: the test plays the other hosts (a TLS SuperLink + 2 SuperNodes, Flower's own commands);
    privaudit only submits to it, starts no process, and none is left after.
    DP-FedAvg: 1 of the 2 clients is sampled in the one round (q = 0.5); the epsilon privaudit prints
    is Opacus' RDP of the subsampled Gaussian at that q, and the run's log shows that Flower added
    noise of noise multiplier x clip / clients sampled.
    FedPer `head`: each client keeps its own last block + norm + head; the server never averages it.
    """
    from safetensors.torch import load_file

    from flower_federation import tls_federation
    from privaudit.defenses.federated.parameters import HEAD_FILE
    from privaudit.targets.base import load_target

    sigma, clip = 1.1, 0.001
    (tmp_path / "fed.toml").write_text(f"num_clients = 2\nclients_per_round = 1\nrounds = 1\nlocal_epochs = 2\n"
                                       f"clip_norm = {clip}\nnoise_multiplier = {sigma}\ndelta = 1e-5\n"
                                       'personal_part = "head"\n')
    out = tmp_path / "v"
    with tls_federation(tmp_path / "federation", clients=2) as fed:
        res = CliRunner().invoke(main, ["-q", "defend", "federated", "--base", f"hf:{tiny_model_dir}",
                                        *_files(tmp_path), "--out", str(out), "--config", str(tmp_path / "fed.toml"),
                                        "--superlink", fed.address, "--root-certificates", str(fed.ca)])
        superlink_log = fed.log("superlink")
    assert res.exit_code == 0, res.output + superlink_log[-2000:]
    # remote: TLS verified against the test's CA; no process of privaudit's own; the federation's all gone
    connection = (out / "logs" / "flwr_home" / "config.toml").read_text()
    assert "insecure = false" in connection and str(fed.ca) in connection
    assert not (out / "logs" / "pids.txt").exists()
    assert not any(group_alive(pid) for pid in fed.pids)
    # DP-FedAvg: printed epsilon = the accountant's at q = 0.5 over 1 round; Flower's noise in the run's log
    expected = _reference_epsilon(sigma, 0.5, 1, 1e-5)
    printed = float(re.search(r"epsilon spent: ([0-9.]+) at delta 1e-05", res.output).group(1))
    assert printed == pytest.approx(expected, abs=5e-5)  # printed with 4 decimals
    privacy = json.loads((out / "defended.json").read_text())["privacy"]
    assert privacy["epsilon"] == pytest.approx(expected, rel=1e-9)
    assert (privacy["sample_rate"], privacy["steps"], privacy["privacy_unit"]) == (0.5, 1, "client")
    assert f"central DP noise with {sigma * clip / 1:.4f} stdev added" in (out / "logs" / "serverapp.log").read_text()
    # FedPer head: per-client heads that differ, never averaged; each target = global body + own head
    summary = json.loads((out / "federated.json").read_text())
    assert summary["rounds_completed"] == 1 and len(summary["clients"]) == 2
    base = load_file(str(tiny_model_dir / "model.safetensors"))
    glob = load_file(str(out / "global" / "model.safetensors"))
    heads = [load_file(str(out / "clients" / f"client_{i}" / HEAD_FILE)) for i in (0, 1)]
    head_keys = set(heads[0])
    assert head_keys == set(heads[1]) and head_keys and head_keys < set(base)
    assert any(not (heads[0][k] == heads[1][k]).all() for k in head_keys)
    assert all((glob[k] == base[k]).all() for k in head_keys)  # the server holds the base's head, untouched
    assert any(not (glob[k] == base[k]).all() for k in set(base) - head_keys)  # the shared body moved (+ noise)
    for c in summary["clients"]:
        assert c["target_spec"] == f"hf:{out / 'clients' / ('client_' + str(c['client_id'])) / 'model'}"
        assert c["personalized_perplexity"] < c["global_perplexity"]  # its own head beats the base's on its data
    client0 = load_file(str(out / "clients" / "client_0" / "model" / "model.safetensors"))
    assert all((client0[k] == heads[0][k]).all() for k in head_keys)
    assert all((client0[k] == glob[k]).all() for k in set(base) - head_keys)
    assert len(load_target(summary["clients"][0]["target_spec"]).score(["Hello"], [" world"])) == 1


def test_partition_ids_match_the_node_config_a_user_starts_supernodes_with():
    """README: SuperNode K is started with `--node-config partition-id=K`, K in 0..num_clients-1."""
    corpus = generate_corpus(generate_subjects(8, seed=0), repeats=2, seed=0, heldout_subject_fraction=0.25,
                             docs_per_subject=2, filler_docs=0)
    assert [p.client_id for p in partition_corpus(corpus, 3)] == [0, 1, 2]
