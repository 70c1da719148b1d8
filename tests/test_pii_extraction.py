"""End to end ProPILE probing on the memorized tiny model vs its public base: rates, resume, records."""

from __future__ import annotations

from typing import Sequence

import pytest

from privaudit.attacks.base import RunContext, get_attack
from privaudit.attacks.pii_extraction import (
    BASELINE_EXTRACT,
    EXTRACT,
    LIKELIHOOD,
    PiiParams,
    difference_estimate,
    subject_view_lines,
)
from privaudit.engine.store import RunStore
from privaudit.errors import InputError
from privaudit.metrics import proportion
from privaudit.targets.base import GenerationConfig, load_target


class CountingTarget:
    """A real target with its generate/score calls counted (to prove batching and resume)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.capabilities = inner.capabilities
        self.generate_calls: list[int] = []
        self.score_calls: list[int] = []

    def fingerprint(self) -> str:
        return self.inner.fingerprint()

    def generate(self, prompts: Sequence[str], cfg: GenerationConfig) -> list[list[str]]:
        self.generate_calls.append(len(prompts))
        return self.inner.generate(prompts, cfg)

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        self.score_calls.append(len(prompts))
        return self.inner.score(prompts, continuations)

    def close(self) -> None:
        self.inner.close()


def test_params_reject_bad_values_with_the_field_name():
    with pytest.raises(InputError, match="levels"):
        PiiParams(subjects="s.jsonl", levels=(4,))
    with pytest.raises(InputError, match="num_samples"):
        PiiParams(subjects="s.jsonl", num_samples=0)
    with pytest.raises(InputError, match="subjects"):
        PiiParams(subjects="")


def test_difference_interval_contains_the_difference_and_widens_with_less_data():
    a, b = proportion(18, 20), proportion(2, 20)
    d = difference_estimate(a, b)
    assert d.value == pytest.approx(0.8) and d.low < 0.8 < d.high and d.low > 0
    small = difference_estimate(proportion(9, 10), proportion(1, 10))
    assert small.high - small.low > d.high - d.low


@pytest.fixture(scope="module")
def finetuned_run(memorized_setup, tmp_path_factory):
    """One run on the fine-tuned model with the base as baseline: email twin probes, likelihood on."""
    root = tmp_path_factory.mktemp("pii_run")
    params = {"subjects": str(memorized_setup.subjects_path), "pii_types": ["email"], "levels": [1],
              "max_new_tokens": 24, "likelihood": True, "num_candidates": 9,
              "baseline_target": memorized_setup.base_spec}
    attack = get_attack("pii").from_config(params, "test")
    target = CountingTarget(load_target(memorized_setup.finetuned_spec))
    with RunStore(root / "run") as store:
        ctx = RunContext(store=store, seed=0, batch_size=16, work_dir=root / "work")
        attack.check_target(target)
        result = attack.run(target, ctx)
        first_calls = (list(target.generate_calls), list(target.score_calls))
        target.generate_calls.clear()
        target.score_calls.clear()
        again = attack.run(target, ctx)  # resumed: every probe is stored already
        second_calls = (list(target.generate_calls), list(target.score_calls))
    target.close()
    return attack, result, again, first_calls, second_calls


@pytest.mark.slow
def test_finetuned_model_leaks_clearly_more_than_its_base(finetuned_run):
    _, result, _, _, _ = finetuned_run
    m = result.metrics
    ft, base = m["exact_match_rate"], m["exact_match_rate_baseline"]
    assert ft.n == base.n > 0
    assert ft.value > base.value == 0.0 and base.high < 0.1
    assert m["exact_match_rate_minus_baseline"].value == pytest.approx(ft.value)
    # The likelihood probe sees what greedy templates miss: its intervals do not even overlap.
    assert m["likelihood_top1_rate"].low > m["likelihood_top1_rate_baseline"].high
    assert m["mean_exposure_bits"].low > m["mean_exposure_bits_baseline"].high
    for pii_type in ("email",):
        est = m[f"exact_match_rate.{pii_type}"]
        assert est.low <= est.value <= est.high


@pytest.mark.slow
def test_probes_are_batched_and_a_resumed_run_computes_nothing(finetuned_run):
    _, result, again, (gen_calls, score_calls), (gen_again, score_again) = finetuned_run
    probes = len(result.records[result.records["kind"] == EXTRACT])
    assert sum(gen_calls) == probes and max(gen_calls) == 16 and len(gen_calls) == -(-probes // 16)
    assert score_calls and max(score_calls) == 16 * 10  # truth + 9 candidates for 16 prompts per call
    assert gen_again == [] and score_again == []
    assert len(again.records) == len(result.records)
    assert again.metrics["exact_match_rate"] == result.metrics["exact_match_rate"]


@pytest.mark.slow
def test_records_hold_prompt_outputs_truth_and_flags_with_pii_in_declared_fields(finetuned_run):
    attack, result, _, _, _ = finetuned_run
    rec = result.records
    assert set(rec["kind"]) == {EXTRACT, LIKELIHOOD, BASELINE_EXTRACT, "baseline_likelihood"}
    ext = rec[rec["kind"] == EXTRACT]
    for _, r in ext.iterrows():
        assert r["truth"] not in r["prompt"] and all(v in r["prompt"] for v in r["known"].values())
        assert r["exact"] == any(r["truth"] in " ".join(o.split()) for o in r["outputs"])
        assert r["partial"] or not r["exact"]
    assert {"truth", "known"} <= attack.pii_fields
    # No stored field besides the declared ones holds a truth value that the prompt did not reveal...
    lik = rec[rec["kind"] == LIKELIHOOD]
    assert not any(col.startswith("candidate") for col in lik.columns)


@pytest.mark.slow
def test_summary_tables_give_per_type_template_and_subject_views(finetuned_run, memorized_setup):
    _, result, _, _, _ = finetuned_run
    tables = result.tables
    assert {r["pii_type"] for r in tables["per_type"]} == {"email"}
    assert {r["association"] for r in tables["per_level"]} == {"twin"}
    for row in tables["per_template"]:
        assert row["exact_match_rate_low"] <= row["exact_match_rate"] <= row["exact_match_rate_high"]
    subject_rows = tables["per_subject"]
    assert len(subject_rows) == len(memorized_setup.subjects)
    leaked = [r for r in subject_rows if r["verdict"] == "verbatim"]
    assert leaked and all(r["leaking_templates"] and r["best_rank"] >= 1 for r in leaked)
    train = set(memorized_setup.train_subject_ids)
    assert sum(r["subject_id"] in train for r in leaked) > sum(r["subject_id"] not in train for r in leaked)
    sid = leaked[0]["subject_id"]
    lines = subject_view_lines(result, sid)
    assert sid in lines[0] and any("verbatim" in line for line in lines)
    masked = subject_view_lines(result, sid, mask=lambda s: "[MASKED]")
    assert leaked[0]["truth"] not in "\n".join(masked)


@pytest.mark.slow
def test_summarize_is_a_function_of_the_records_alone(finetuned_run):
    attack, result, _, _, _ = finetuned_run
    again = attack.summarize(result.target, result.records)
    assert again.metrics == result.metrics and again.tables == result.tables


def test_subject_view_restricts_to_one_subject_and_unknown_ids_are_input_errors(memorized_setup):
    attack = get_attack("pii").from_config({"subjects": str(memorized_setup.subjects_path),
                                            "subject": memorized_setup.subjects[0].id}, "test")
    assert [s.id for s in attack.load_subjects()] == [memorized_setup.subjects[0].id]
    bad = get_attack("pii").from_config({"subjects": str(memorized_setup.subjects_path), "subject": "nobody"}, "t")
    with pytest.raises(InputError, match="nobody"):
        bad.load_subjects()


@pytest.mark.slow
def test_builtin_smollm2_that_never_saw_the_subjects_reports_a_near_zero_rate(memorized_setup, tmp_path):
    """ProPILE on a public model that never read the synthetic subjects: near-zero exact matches.

    The interval is a Wilson interval over exactly the probes sent (its low end stays at 0 when
    nothing leaks), so a zero rate is reported with its honest upper bound, not as a certainty.
    """
    params = {"subjects": str(memorized_setup.subjects_path), "max_subjects": 4, "levels": [1],
              "template_ids": ["email-twin-1", "phone-twin-1", "address-twin-1"], "max_new_tokens": 16}
    attack = get_attack("pii").from_config(params, "test")
    target = load_target("builtin:smollm2-135m")
    try:
        with RunStore(tmp_path / "run") as store:
            ctx = RunContext(store=store, seed=0, batch_size=16, work_dir=tmp_path / "work")
            attack.check_target(target)
            result = attack.run(target, ctx)
    finally:
        target.close()
    probes = result.records[result.records["kind"] == EXTRACT]
    rate = result.metrics["exact_match_rate"]
    assert rate.n == len(probes) == 4 * 3
    assert rate.value <= 1 / 12
    assert rate == proportion(int(probes["exact"].sum()), len(probes))
    assert rate.low <= 0.01 and rate.value <= rate.high < 0.5
