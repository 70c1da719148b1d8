"""Federated personalization with real Flower processes (SuperLink + 2 SuperNodes on 127.0.0.1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from privaudit.data.corpus import generate_corpus
from privaudit.data.subjects import generate_subjects
from privaudit.defenses.federated import FederatedConfig, FlowerDeployment, FlowerProcessError, federate, partition_corpus
from privaudit.defenses.federated.deployment import group_alive
from privaudit.defenses.registry import DefenseContext, get_defense, load_defended
from privaudit.errors import InputError


def _corpus():
    subjects = generate_subjects(8, seed=0)
    return generate_corpus(subjects, repeats=4, seed=0, heldout_subject_fraction=0.25, docs_per_subject=3,
                           filler_docs=4)


def test_partition_keeps_each_subject_in_one_client_and_holds_out_own_documents():
    corpus = _corpus()
    parts = partition_corpus(corpus, 3, heldout_docs_per_subject=1)
    owners = [set(p.subject_ids) for p in parts]
    assert sum(len(o) for o in owners) == len(corpus.train_subject_ids())
    assert all(a.isdisjoint(b) for i, a in enumerate(owners) for b in owners[i + 1:])
    for p in parts:
        assert p.heldout_texts and not set(p.heldout_texts) & set(p.train_texts)


def test_partition_rejects_more_clients_than_subjects():
    with pytest.raises(InputError, match="num_clients"):
        partition_corpus(_corpus(), 50)


def test_config_rejects_noise_without_clipping_and_unknown_personal_part():
    with pytest.raises(InputError, match="clip_norm"):
        FederatedConfig(noise_multiplier=1.0)
    with pytest.raises(InputError, match="personal_part"):
        FederatedConfig(personal_part="body")


def test_shared_lora_needs_nothing_personal_and_unknown_shared_part_is_rejected():
    with pytest.raises(InputError, match="shared_part = 'lora'.*personal_part = 'none'"):
        FederatedConfig(shared_part="lora")  # personal_part defaults to "lora": two adapters would be ambiguous
    with pytest.raises(InputError, match="shared_part must be one of model, lora"):
        FederatedConfig(shared_part="head")
    cfg = FederatedConfig(shared_part="lora", personal_part="none")
    assert cfg.shared_lora and cfg.mode == "federated-avg-lora"
    assert FederatedConfig().mode == "federated-lora"


@pytest.mark.slow
def test_shared_lora_federation_averages_only_the_adapter_over_a_frozen_base(tiny_model_dir: Path, tmp_path: Path):
    """FedIT (shared_part = "lora"): the clients train one LoRA adapter from the global one and FedAvg
    averages its tensors only; the global model is the base with that adapter merged in, so only
    the adapted projections differ from the base, and every client is served the global model."""
    from safetensors.torch import load_file

    out = tmp_path / "fedit"
    defense = get_defense("federated").from_config(
        {"num_clients": 2, "rounds": 1, "local_epochs": 2, "personal_part": "none", "shared_part": "lora"},
        "defenses.federated")
    record = defense.apply(DefenseContext(base=f"hf:{tiny_model_dir}", corpus=_corpus(), subjects=(), out_dir=out))
    base = load_file(str(tiny_model_dir / "model.safetensors"))
    glob = load_file(str(out / "global" / "model.safetensors"))
    changed = {k for k in base if k in glob and not (base[k] == glob[k]).all()}
    assert changed and all(".q_proj." in k or ".v_proj." in k for k in changed), sorted(changed)[:5]
    adapter = load_file(str(out / "global_adapter" / "adapter_model.safetensors"))
    assert adapter and all("lora_" in k for k in adapter)
    assert record.training.mode == "federated-avg-lora"
    assert record.training.trainable_parameters == sum(v.numel() for v in adapter.values())
    summary = json.loads((out / "federated.json").read_text())
    assert summary["rounds_completed"] == 1
    assert {c["target_spec"] for c in summary["clients"]} == {f"hf:{out / 'global'}"}
    pids = [int(line.split()[0]) for line in (out / "logs" / "pids.txt").read_text().splitlines()]
    assert len(pids) == 3 and not any(group_alive(pid) for pid in pids)


def test_superlink_start_failure_is_one_clear_error_and_leaves_no_process(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no flower executables reachable except a broken one
    fake = tmp_path / "flower-superlink"
    fake.write_text("#!/bin/sh\necho 'boom: cannot bind' >&2\nexit 3\n")
    fake.chmod(0o755)
    import privaudit.defenses.federated.submit as sub

    monkeypatch.setattr(sub.shutil, "which", lambda name, path=None: str(fake) if name == "flower-superlink" else None)
    deployment = FlowerDeployment(tmp_path / "logs", [{"partition-id": 0}])
    with pytest.raises(FlowerProcessError, match="superlink failed to start .*boom"):
        with deployment:
            pass
    assert not any(group_alive(pid) for pid in deployment.pids)


@pytest.mark.slow
@pytest.mark.timeout(900)  # 600 before the cross-user matrix joined; a contended run reached it in ~600 s
def test_federated_run_personalizes_clients_and_cleans_up(tiny_model_dir: Path, tmp_path: Path):
    from safetensors.torch import load_file

    out = tmp_path / "fed"
    cfg = FederatedConfig(num_clients=2, rounds=2, local_epochs=2, personal_part="lora", seed=0)
    defense = get_defense("federated").from_config({"num_clients": 2, "rounds": 2, "local_epochs": 2},
                                                   "defenses.federated")
    record = defense.apply(DefenseContext(base=f"hf:{tiny_model_dir}", corpus=_corpus(), subjects=(), out_dir=out))
    assert load_defended(out) == record
    summary = json.loads((out / "federated.json").read_text())
    assert summary["rounds_completed"] == cfg.rounds
    # every Flower process (SuperLink, SuperNodes and what they spawned) is gone
    pids = [int(line.split()[0]) for line in (out / "logs" / "pids.txt").read_text().splitlines()]
    assert len(pids) == 1 + cfg.num_clients
    assert not any(group_alive(pid) for pid in pids)
    # shared weights moved away from the base; both personal targets share that one global body
    base = load_file(str(tiny_model_dir / "model.safetensors"))
    glob = load_file(str(out / "global" / "model.safetensors"))
    assert any(not (base[k] == glob[k]).all() for k in base)
    clients = summary["clients"]
    assert all(c["target_spec"].startswith(f"hf:{out / 'global'}:adapter=") for c in clients)
    # personal parts differ between clients
    a0, a1 = (load_file(str(out / "clients" / f"client_{i}" / "adapter" / "adapter_model.safetensors")) for i in (0, 1))
    assert a0.keys() == a1.keys() and any(not (a0[k] == a1[k]).all() for k in a0)
    # each personalized model fits its own held-out documents better than the global model and the base
    for c in clients:
        assert c["personalized_perplexity"] < c["global_perplexity"] < c["base_perplexity"]
    # and loads as a target
    from privaudit.targets.base import load_target

    target = load_target(clients[0]["target_spec"])
    assert len(target.score(["Hello"], [" world"])) == 1
    target.close()
    # the cross-user matrix reads this output as a cohort (issue 16): every client's model asked about
    # every client's subjects (a random-init model leaks nothing; README has the figures on the
    # embedded memorizing setup)
    from click.testing import CliRunner

    from privaudit.cli import main
    from privaudit.data.subjects import write_subjects

    write_subjects(tmp_path / "subjects.jsonl", generate_subjects(8, seed=0))
    run = CliRunner().invoke(main, ["-q", "attack", "cross-user", "-t", f"peruser:{out}", "--subjects",
                                    str(tmp_path / "subjects.jsonl"), "--pii-type", "email", "--max-new-tokens", "8",
                                    "--out", str(tmp_path / "matrix")])
    assert run.exit_code == 0, run.output
    result = json.loads((tmp_path / "matrix" / "summary.json").read_text())["results"][0]
    assert result["charts"]["cross_user_matrix"]["rows"] == ["client_0", "client_1"]
    owners = {f"client_{c['client_id']}": set(json.loads((out / "partitions" / f"client_{c['client_id']}.json")
                                                          .read_text())["subject_ids"]) for c in clients}
    cells = {(row["model_user"], row["data_user"]): row for row in result["tables"]["matrix"]}
    assert set(cells) == {(m, d) for m in owners for d in owners}
    assert all(cells[(m, d)]["subjects"] == len(owners[d]) for m, d in cells)


def test_a_group_whose_only_member_is_a_zombie_is_not_alive():
    """A killed but not yet reaped process (init's job for orphans) is dead; a sleeping one is not."""
    import subprocess
    import time

    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        assert group_alive(proc.pid)
        proc.kill()
        deadline = time.monotonic() + 5
        while group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not group_alive(proc.pid)  # still a zombie here: we have not waited for it yet
    finally:
        proc.kill()
        proc.wait()
