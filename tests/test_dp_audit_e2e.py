"""End to end: the one-run DP audit (Steinke et al. 2023) on the embedded tiny model.

One public base per module (built once, copied into each audit folder). The broken recipe
(tests/broken_dp.py: claims epsilon, adds no noise) must be caught and fail `privaudit run --gate`;
a model trained by a plain Opacus script outside privaudit, on the embedded corpus plus
`privaudit data canaries` output, must audit like the built-in path. Sizes: 200 record canaries,
12 epochs, the `audit_recipe` corpus. Measured: 3 to 11 minutes for the module (two trainings) on
2 CPU cores shared with six other jobs; over the 1-2 minutes a slow test should take (see the
issue's report): 4 epochs leave the bound at 0.48, below the claim of 1 (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import broken_dp  # noqa: F401  (registers the test-only broken_dp_sgd recipe)
from privaudit.cli import main

pytestmark = pytest.mark.slow
N, EPOCHS, CLAIM = 200, 12, 1.0


@pytest.fixture(scope="module")
def public_setup(tmp_path_factory) -> Path:
    from privaudit.dpaudit.train import audit_recipe
    from privaudit.personalized import build_personalized_setup

    root = tmp_path_factory.mktemp("dp_audit_setup")
    build_personalized_setup(root, audit_recipe(), personalize=False)
    return root


def _audit(tmp: Path, setup: Path, defense: str, table: dict, *extra: str) -> tuple[Path, dict]:
    out = tmp / defense
    shutil.copytree(setup, out / "setup")
    config = tmp / f"{defense}.toml"
    config.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in table.items()) + "\n")
    res = CliRunner().invoke(main, ["-q", "dp-audit", "--out", str(out), "--defense", defense, "--config",
                                    str(config), "--n", str(N), *extra])
    assert res.exit_code == 0, (res.output, res.exception)
    return out, json.loads((out / "dp_audit.json").read_text())


@pytest.fixture(scope="module")
def broken(tmp_path_factory, public_setup) -> tuple[Path, dict]:
    return _audit(tmp_path_factory.mktemp("broken"), public_setup, "broken_dp_sgd",
                  {"epochs": EPOCHS, "claimed_epsilon": CLAIM})


def test_broken_dp_claim_is_refuted_and_the_gate_exits_1(broken):
    out, result = broken
    assert result["claimed_epsilon"] == CLAIM and result["unit"] == "record" and result["canaries"] == N
    assert result["empirical_epsilon_lower"] > CLAIM and result["claim_violated"] is True
    assert "included" not in (out / "train_corpus.jsonl").read_text()  # the coins never reach training
    res = CliRunner().invoke(main, ["-q", "run", str(out / "audit.toml"), "--gate"])
    assert res.exit_code == 1, res.output
    assert "dp_audit.claim_violated" in res.output and "FAIL" in res.output


def _train_outside_privaudit(base: Path, texts: list[str], out: Path, epochs: int, seed: int = 0) -> None:
    """What a training team would run: transformers + Opacus, no privaudit import (noise 0: the bug)."""
    import torch
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    rows = [tok(t)["input_ids"][:127] + [tok.eos_token_id] for t in texts]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tok.pad_token_id)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)], mask[i, :len(r)] = torch.tensor(r), 1
    loader = DataLoader(TensorDataset(ids, mask), batch_size=16, shuffle=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()  # Opacus validates the module in training mode
    model, optimizer, loader = PrivacyEngine().make_private(module=model, optimizer=optimizer, data_loader=loader,
                                                            noise_multiplier=0.0, max_grad_norm=1e6)
    model.train()
    for _ in range(epochs):
        for x, m in loader:
            if not len(x):
                continue
            pos = torch.arange(x.shape[1]).unsqueeze(0).expand_as(x)
            logits = model(input_ids=x, attention_mask=m, position_ids=pos).logits[:, :-1]
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")
            loss = ((nll * m[:, 1:]).sum(1) / m[:, 1:].sum(1)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model._module.save_pretrained(out)
    tok.save_pretrained(out)


def test_a_model_trained_elsewhere_audits_like_the_built_in_path(tmp_path, public_setup, broken):
    runner = CliRunner()
    canaries, train_docs = tmp_path / "canaries.jsonl", tmp_path / "canaries.train.jsonl"
    res = runner.invoke(main, ["data", "canaries", "--n", str(N), "--unit", "record", "--seed", "0",
                               "--out", str(canaries)])
    assert res.exit_code == 0, res.output
    texts = []  # the training team's data: the corpus (repeats expanded) plus the canary documents
    for line in (public_setup / "corpus.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("record") == "document" and row["split"] == "train":
            texts += [row["text"]] * row["repeats"]
    texts += [json.loads(line)["text"] for line in train_docs.read_text().splitlines()]
    _train_outside_privaudit(public_setup / "public_base", texts, tmp_path / "model", EPOCHS)
    res = runner.invoke(main, ["-q", "dp-audit", "--out", str(tmp_path / "audit"), "--target", f"hf:{tmp_path / 'model'}",
                               "--canaries", str(canaries), "--claimed-epsilon", str(CLAIM), "--delta", "1e-5",
                               "--reference", f"hf:{public_setup / 'public_base'}"])
    assert res.exit_code == 0, (res.output, res.exception)
    external = json.loads((tmp_path / "audit" / "dp_audit.json").read_text())
    built_in = broken[1]
    assert external["claim_violated"] is True
    # within noise: the two accuracies on the paid-for cell differ by less than 3 binomial sd of it
    acc = [r["correct"] / r["guesses"] for r in (external, built_in)]
    sd = (0.25 / min(external["guesses"], built_in["guesses"])) ** 0.5
    assert abs(acc[0] - acc[1]) < 3 * sd, (external, built_in)

