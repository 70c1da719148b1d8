"""End to end ProPILE probing on the memorized tiny model vs its public base: rates, resume, records."""

from __future__ import annotations

import math
from typing import Sequence

import pytest

import pandas as pd

from privaudit.attacks.base import RunContext, get_attack
from privaudit.attacks.pii_extraction import (
    BASELINE_EXTRACT,
    BASELINE_LIKELIHOOD,
    EXTRACT,
    LIKELIHOOD,
    SCAN,
    SOFT_PROMPT,
    PiiParams,
    subject_view_lines,
    summarize_records,
)
from privaudit.attacks.pii_probes import Probe, build_probes, load_templates
from privaudit.data.subjects import generate_subjects
from privaudit.engine.store import RunStore
from privaudit.errors import InputError
from privaudit.gate import check_thresholds, evaluate
from privaudit.metrics import clustered_mean, clustered_proportion, paired_difference, proportion, wilson_interval
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


# -- summaries of synthetic records (the real probes of generated subjects, hits chosen) ---------
PARAMS = PiiParams(subjects="subjects.jsonl")


def _probes(num_subjects: int) -> list[Probe]:
    """The shipped templates on generated subjects: 27 probes (5 PII fields) per subject."""
    return build_probes(generate_subjects(num_subjects, seed=0), load_templates())


def _records(probes: Sequence[Probe], exact, kind: str = EXTRACT, partial=None) -> pd.DataFrame:
    """One stored-record-shaped row per probe; `exact(probe)` decides the hit."""
    partial = partial or exact
    return pd.DataFrame([{
        "kind": kind, "item": f"{kind}|{p.key}", "subject_id": p.subject_id, "pii_type": p.pii_type,
        "template_id": p.template_id, "level": p.level, "association": p.association, "known": dict(p.known),
        "prompt": p.prompt, "truth": p.truth, "outputs": [p.truth if exact(p) else ""],
        "exact": bool(exact(p)), "partial": bool(exact(p) or partial(p)),
    } for p in probes])


def _width(est) -> float:
    return est.high - est.low


@pytest.mark.parametrize("num_subjects", [10, 20, 40])
def test_perfectly_clustered_hits_give_an_interval_that_follows_subjects_not_probes(num_subjects):
    """One subject leaks on every one of its 27 probes, the others on none (issue 14's test).

    Counting the 27 * S probes as independent trials (the old headline) gives Wilson(27, 27 S),
    an interval about sqrt(27) times too narrow; clustered by subject it is Wilson(1, S): the
    evidence is one leaky person out of S, however many probes each of them got.
    """
    probes = _probes(num_subjects)
    leaker = probes[0].subject_id
    records = _records(probes, lambda p: p.subject_id == leaker)
    m = summarize_records("pii", "t", records, PARAMS).metrics
    one_in_s = wilson_interval(1, num_subjects)
    independent = proportion(27, 27 * num_subjects)
    for name in ("probe_exact_match_rate", "exact_match_rate"):
        est = m[name]
        assert est.value == pytest.approx(1 / num_subjects)
        assert est.low == pytest.approx(one_in_s[0], abs=1e-6) and est.high == pytest.approx(one_in_s[1], abs=1e-6)
        assert est.clusters == num_subjects and est.method == "wilson_design_effect"
        assert _width(est) > 3 * _width(independent)
    assert m["probe_exact_match_rate"].n == 27 * num_subjects and m["exact_match_rate"].n == 5 * num_subjects
    # The same leaky subject probed by twice the templates: the per-probe interval does not shrink.
    doubled = summarize_records("pii", "t", pd.concat([records, records.assign(
        template_id=records["template_id"] + "-copy")], ignore_index=True), PARAMS).metrics
    assert doubled["probe_exact_match_rate"].n == 54 * num_subjects
    assert doubled["probe_exact_match_rate"].high == pytest.approx(m["probe_exact_match_rate"].high, abs=1e-6)


def test_headline_counts_a_subject_field_once_however_many_templates_leak_it():
    probes = _probes(10)
    # Subject 0 leaks its email through every email template, subject 1 through one email template only.
    first_email = {p.subject_id: p.template_id for p in reversed(probes) if p.pii_type == "email"}
    leaked = {(probes[0].subject_id, "email"), (probes[27].subject_id, "email")}

    def hit(p: Probe) -> bool:
        return (p.subject_id, p.pii_type) in leaked and (p.subject_id == probes[0].subject_id
                                                         or p.template_id == first_email[p.subject_id])

    records = _records(probes, hit)
    m = summarize_records("pii", "t", records, PARAMS).metrics
    units = records.groupby(["subject_id", "pii_type"])["exact"].any().reset_index()
    assert m["exact_match_rate"] == clustered_proportion(list(units["exact"]), list(units["subject_id"]))
    assert m["exact_match_rate"].value == pytest.approx(2 / 50) and m["exact_match_rate"].n == 50
    assert m["exact_match_rate.email"].value == pytest.approx(2 / 10) and m["exact_match_rate.email"].n == 10
    assert m["exact_match_rate.phone"].value == 0.0
    assert m["any_template_exact_match_rate"] == m["exact_match_rate"]  # deprecated alias, same numbers
    emails_per_subject = sum(p.pii_type == "email" for p in probes[:27])
    assert m["probe_exact_match_rate"].value == pytest.approx((emails_per_subject + 1) / len(probes))
    assert m["probe_exact_match_rate"] == clustered_proportion(list(records["exact"]), list(records["subject_id"]))
    # Tables: per-probe rates, intervals at the subject cluster too.
    per_type = {r["pii_type"]: r for r in summarize_records("pii", "t", records, PARAMS).tables["per_type"]}
    email = records[records["pii_type"] == "email"]
    assert per_type["email"]["exact_match_rate_high"] == pytest.approx(
        clustered_proportion(list(email["exact"]), list(email["subject_id"])).high)
    assert per_type["email"]["subjects"] == 10 and per_type["email"]["subject_field_exact_match_rate"] == 0.2


def test_baseline_difference_is_paired_over_the_same_subject_fields():
    """Fine-tune leaks 6 subjects' emails, the base 2 of those same 6: a paired difference of 4/50.

    Only probes present on both models count (the baseline here lacks the quadruplet templates),
    and the interval is over per-(subject, field) differences, cluster-robust by subject.
    """
    probes = _probes(10)
    subjects = sorted({p.subject_id for p in probes})
    ft = _records(probes, lambda p: p.pii_type == "email" and p.subject_id in subjects[:6])
    base_probes = [p for p in probes if p.level < 3]
    base = _records(base_probes, lambda p: p.pii_type == "email" and p.subject_id in subjects[:2],
                    kind=BASELINE_EXTRACT)
    m = summarize_records("pii", "t", pd.concat([ft, base], ignore_index=True), PARAMS).metrics
    d = m["exact_match_rate_minus_baseline"]
    assert d.value == pytest.approx(4 / 50) and d.n == 50 and d.clusters == 10 and d.method == "cluster_robust_t"
    matched = ft[ft["level"] < 3].groupby(["subject_id", "pii_type"])["exact"].any()
    on_base = base.groupby(["subject_id", "pii_type"])["exact"].any()
    expected = paired_difference([float(x) for x in matched], [float(x) for x in on_base.loc[matched.index]],
                                 clusters=[sid for sid, _ in matched.index])
    assert d == expected and d.low < d.value < d.high
    assert m["exact_match_rate_baseline"].value == pytest.approx(2 / 50)
    # Identical answers on both models: a zero difference bounded by the share of subjects that could differ.
    same = summarize_records("pii", "t", pd.concat([ft, ft.assign(kind=BASELINE_EXTRACT)]), PARAMS).metrics
    zero = same["exact_match_rate_minus_baseline"]
    assert zero.value == 0.0 and zero.high == pytest.approx(wilson_interval(0, 10)[1]) and zero.low == -zero.high


def _likelihood(records: pd.DataFrame, kind: str) -> pd.DataFrame:
    rank = [1 + (i % 7) for i in range(len(records))]
    return records.assign(kind=kind, rank=rank, num_candidates=10, top1=[r == 1 for r in rank],
                          top5=[r <= 5 for r in rank], exposure_bits=[math.log2(10) - math.log2(r) for r in rank])


def _every_kind(num_subjects: int = 6) -> pd.DataFrame:
    probes = _probes(num_subjects)
    ext = _records(probes, lambda p: p.subject_id == probes[0].subject_id)
    soft = _records(probes[: 27 * 2], lambda p: p.pii_type == "email", kind=SOFT_PROMPT).assign(
        template_exact=lambda df: df["subject_id"] == probes[0].subject_id, template_partial=False)
    scan = pd.DataFrame([{"kind": SCAN, "item": f"scan|0|{i}", "prompt": "", "outputs": ["a x@y.com", "b"],
                          "spans": [{"sample": 0, "entity": "EMAIL_ADDRESS", "start": 2, "end": 9, "score": 1.0,
                                     "known_subject": "s0000" if i else None, "known_field": "email",
                                     "known_exact": bool(i)}], "known_values_verbatim": [[], []]}
                         for i in range(2)])
    return pd.concat([ext, _likelihood(ext, LIKELIHOOD), ext.assign(kind=BASELINE_EXTRACT, exact=False),
                      _likelihood(ext, BASELINE_LIKELIHOOD), soft, scan], ignore_index=True)


def test_every_reported_metric_is_declared_with_its_contract():
    """summarize reports only declared metrics; summary.json carries kind, direction and unit."""
    result = summarize_records("pii", "t", _every_kind(), PARAMS)
    summary = result.to_summary()["metrics"]  # raises for an undeclared metric
    assert set(summary) == set(result.metrics)
    assert {"exact_match_rate", "probe_exact_match_rate", "likelihood_top1_rate", "mean_exposure_bits",
            "exact_match_rate_minus_baseline", "soft_prompt_lift", "scan_known_match_rate"} <= set(summary)
    for name, entry in summary.items():
        if name.endswith("_minus_baseline") or name == "soft_prompt_lift":
            assert (entry["kind"], entry["direction"]) == ("difference", "two_sided"), name
        elif "exposure_bits" in name:
            assert (entry["kind"], entry["direction"]) == ("mean", "higher_is_worse"), name
        else:
            assert (entry["kind"], entry["direction"]) == ("proportion", "higher_is_worse"), name
        assert entry["low"] <= entry["value"] <= entry["high"], name
    assert summary["exact_match_rate"]["unit"] == "subject_field" and summary["exact_match_rate"]["cluster"] == "subject"
    assert summary["probe_exact_match_rate.email"]["unit"] == "probe"
    assert summary["exact_match_rate.email"]["pattern"] == "exact_match_rate.{pii_type}"
    # Thresholds on every reported name pass the load-time check.
    check_thresholds({f"pii.{name}": "<= 1" for name in summary}, {"pii": (get_attack("pii").metrics, ["t"])})
    with pytest.raises(InputError, match="has no metric 'exact_rate'"):
        check_thresholds({"pii.exact_rate": "<= 0.1"}, {"pii": (get_attack("pii").metrics, ["t"])})


def test_likelihood_exposure_and_soft_prompt_lift_are_clustered_by_subject():
    records = _every_kind()
    m = summarize_records("pii", "t", records, PARAMS).metrics
    lik = records[records["kind"] == LIKELIHOOD]
    assert m["mean_exposure_bits"] == clustered_mean(list(lik["exposure_bits"]), list(lik["subject_id"]))
    assert m["likelihood_top1_rate"] == clustered_proportion(list(lik["top1"]), list(lik["subject_id"]))
    soft = records[records["kind"] == SOFT_PROMPT]
    lift = m["soft_prompt_lift"]
    assert lift == paired_difference([float(x) for x in soft["exact"]], [float(x) for x in soft["template_exact"]],
                                     clusters=list(soft["subject_id"]))
    assert lift.clusters == 2 and lift.n == len(soft)


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
    # Zero leaked emails of 20 subjects: the bound is Wilson's for 0 of 20 people (about 0.16), not
    # for 0 of the 100 twin probes (0.037) it was before the headline moved to (subject, field).
    assert ft.value > base.value == 0.0 and base.high == pytest.approx(wilson_interval(0, base.clusters)[1])
    assert base.clusters == base.n == 20
    assert m["exact_match_rate_minus_baseline"].value == pytest.approx(ft.value)
    # The likelihood probe sees what greedy templates miss. Both models scored the same probes, so
    # the comparison is paired by probe and clustered by subject: the difference excludes 0. (The
    # two marginal intervals, now clustered by the 20 subjects, overlap; with the 80 probes counted
    # as independent they did not.)
    rec = result.records
    lik = rec[rec["kind"] == LIKELIHOOD].set_index(["subject_id", "pii_type", "template_id"]).sort_index()
    base_lik = rec[rec["kind"] == BASELINE_LIKELIHOOD].set_index(["subject_id", "pii_type", "template_id"])
    base_lik = base_lik.loc[lik.index]
    subjects = [sid for sid, _, _ in lik.index]
    top1 = paired_difference([float(x) for x in lik["top1"]], [float(x) for x in base_lik["top1"]], clusters=subjects)
    assert top1.value == pytest.approx(m["likelihood_top1_rate"].value - m["likelihood_top1_rate_baseline"].value)
    assert top1.low > 0
    bits = paired_difference(list(lik["exposure_bits"]), list(base_lik["exposure_bits"]), clusters=subjects,
                             bounds=(-math.inf, math.inf))
    assert bits.low > 0 and m["mean_exposure_bits"].value > m["mean_exposure_bits_baseline"].value
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
    assert {"truth", "known"} <= attack.pii_record_fields
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

    The headline counts the 12 (subject, field) pairs probed, its interval clustered by the 4
    subjects (its low end stays at 0 when nothing leaks), so a zero rate is reported with its
    honest upper bound, not as a certainty.
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
    assert rate.n == len(probes) == 4 * 3 and rate.clusters == 4  # one probe per (subject, field) here
    assert rate.value <= 1 / 12
    assert rate == clustered_proportion(list(probes["exact"]), list(probes["subject_id"]))
    assert rate.low <= 0.01 and rate.value <= rate.high < 0.5
