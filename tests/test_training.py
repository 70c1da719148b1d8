"""Auditing a model while it trains (privaudit/training.py, training_callback.py, live.py).

The live model is audited in place: its modules' train/eval flags, its parameters' gradients (the
very tensors and their values) and requires_grad flags, and the torch RNG come back as they were.
On the embedded fine-tune (the public base trained on the planted-PII corpus, the demo's recipe),
exact-match extraction measured every epoch rises with training, in one run folder whose report
charts it against the step.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import privaudit
from privaudit.training import CHART_NAME, TrainingAudit

PII = {"pii_types": ["email"], "levels": [1], "max_new_tokens": 24}


def _snapshot(model):
    import torch

    return ([m.training for m in model.modules()],
            [(p.grad, None if p.grad is None else p.grad.clone(), p.requires_grad) for p in model.parameters()],
            torch.get_rng_state().clone())


def test_training_audit_leaves_mode_gradients_and_rng_untouched(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model.train()
    next(model.children()).get_submodule("embed_tokens").eval()  # mixed modes must survive too
    frozen = next(iter(model.parameters()))
    frozen.requires_grad_(False)
    ids = tokenizer(["Alice Johnson's email is alice.johnson@example.com"], return_tensors="pt").input_ids
    model(input_ids=ids, labels=ids).loss.backward()  # gradients the optimizer has not consumed yet
    before = _snapshot(model)
    watcher = TrainingAudit({"pii": {"subjects": privaudit.generate_subjects(2, seed=0), **PII}},
                            out=tmp_path / "run", every=5, tokenizer=tokenizer)
    assert watcher.maybe_audit(model, 3) is None  # not an audit step
    result = watcher.maybe_audit(model, 5)
    after = _snapshot(model)
    assert result is not None and result.results[0].target == "model@step=5"
    assert after[0] == before[0]
    for (grad0, value0, flag0), (grad1, _, flag1) in zip(before[1], after[1]):
        assert grad1 is grad0 and flag1 == flag0
        assert value0 is None or torch.equal(grad1, value0)
    assert torch.equal(after[2], before[2])


@pytest.mark.slow
def test_leakage_rises_over_training_steps_on_the_embedded_finetune(memorized_setup, tmp_path: Path) -> None:
    import torch
    from torch.utils.data import DataLoader

    from privaudit.defenses.finetune import encode_texts, load_causal_lm, per_sequence_loss, seed_everything

    recipe = memorized_setup.recipe
    seed_everything(recipe.seed)
    model, tokenizer = load_causal_lm(memorized_setup.base_dir)
    data = encode_texts(tokenizer, memorized_setup.corpus.train_texts(), recipe.max_length)
    loader = DataLoader(data, batch_size=recipe.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(recipe.seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=0.0)
    every = len(loader)  # once an epoch, and at step 0 (the public base)
    watcher = TrainingAudit({"pii": {"subjects": memorized_setup.train_subjects(), **PII}}, out=tmp_path / "run",
                            every=every, tokenizer=tokenizer, headline=["pii.exact_match_rate"])
    step = 0
    model.train()
    watcher.maybe_audit(model, step)
    for _ in range(recipe.finetune_epochs):
        for ids, att in loader:
            loss = per_sequence_loss(model, ids, att).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            watcher.maybe_audit(model, step)
    assert model.training
    rates = {m.step: m for m in (r.metric("pii.exact_match_rate") for r in watcher.history)}
    print("exact_match_rate by step:", {s: (round(m.value, 3), round(m.low, 3), round(m.high, 3), m.n)
                                        for s, m in rates.items()})
    steps = sorted(rates)
    assert steps == [i * every for i in range(recipe.finetune_epochs + 1)]
    values = [rates[s].value for s in steps]
    # measured (2 CPU cores, seed 0): 0, 0, 0.067, 0.267, 0.40 [0.198, 0.643] of n=15 training subjects
    assert values[0] <= 0.1  # the public base never saw these subjects
    assert values == sorted(values) and values[-1] >= 0.3  # leakage rises with training
    assert rates[steps[-1]].low > values[0]  # the last step's interval excludes the base's rate
    summary = json.loads((tmp_path / "run" / "summary.json").read_text(encoding="utf-8"))
    assert sorted(r["provenance"]["step"] for r in summary["results"]) == steps  # every step in one folder
    (chart,) = [r["charts"][CHART_NAME] for r in summary["results"] if CHART_NAME in r["charts"]]
    (series,) = chart["series"]
    assert chart["kind"] == "line" and [p["x"] for p in series["points"]] == steps
    assert [p["y"] for p in series["points"]] == [rates[s].value for s in steps]
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "headline metrics over training steps" in html and "polyline" in html


def test_trainer_callback_audits_every_n_steps_and_leaves_the_model_training(tiny_model_dir: Path,
                                                                            tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainerCallback, TrainingArguments

    from privaudit.training_callback import PrivacyAuditCallback
    from conftest import TINY_TEXTS as TEXTS

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rows = [tokenizer(t, truncation=True, max_length=32).input_ids for t in TEXTS]
    dataset = [{"input_ids": torch.tensor(r), "labels": torch.tensor(r)} for r in rows]
    seen: list[bool] = []

    class ModeProbe(TrainerCallback):  # runs after the audit callback in each event
        def on_step_end(self, args, state, control, model=None, **kwargs):
            seen.append(model.training)

    args = TrainingArguments(output_dir=str(tmp_path / "trainer"), max_steps=4, per_device_train_batch_size=1,
                             learning_rate=1e-3, report_to=[], save_strategy="no", logging_strategy="no",
                             use_cpu=True, disable_tqdm=True, seed=0)
    audit = PrivacyAuditCallback({"pii": {"subjects": privaudit.generate_subjects(2, seed=0), **PII}},
                                 out=tmp_path / "run", every=2)
    Trainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
            callbacks=[audit, ModeProbe()]).train()
    assert seen == [True] * 4
    assert [r.results[0].target for r in audit.audit.history] == ["model@step=0", "model@step=2", "model@step=4"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text(encoding="utf-8"))
    assert sorted(r["provenance"]["step"] for r in summary["results"]) == [0, 2, 4]


def test_line_chart_draws_each_series_and_shows_bad_data_as_a_table() -> None:
    from privaudit.reports.charts import render_chart

    chart = {"kind": "line", "title": "pii over steps", "x_label": "training step", "series": [
        {"label": "exact_match_rate", "points": [{"x": 18, "y": 0.4, "low": 0.2, "high": 0.64},
                                                 {"x": 0, "y": 0.0, "low": 0.0, "high": 0.2}]}]}
    svg = str(render_chart(chart))
    assert "<svg" in svg and svg.count("<polyline") == 1 and svg.count('class="err"') == 2
    assert "exact_match_rate" in svg and "training step" in svg
    bad = str(render_chart({"kind": "line", "series": [{"points": [{"x": "a", "y": 1}]}]}))
    assert "<polyline" not in bad and "could not be drawn" in bad
