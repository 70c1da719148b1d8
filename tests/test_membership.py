"""Membership inference and canary exposure on a tiny model that memorized its corpus (real models)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from privaudit.attacks.base import RunContext, get_attack
from privaudit.attacks.membership import MembershipInference, MembershipParams, membership_documents
from privaudit.cli import main
from privaudit.engine.store import RunStore
from privaudit.errors import InputError
from privaudit.gate import evaluate
from privaudit.targets.base import load_target

FAST = dict(num_candidates=199, bootstrap=300)


def _run(spec: str, params: MembershipParams, out: Path):
    target = load_target(spec)
    try:
        with RunStore(out) as store:
            return MembershipInference(params).run(target, RunContext(store=store, seed=0, batch_size=16))
    finally:
        target.close()


@pytest.fixture(scope="module")
def finetuned_result(memorized_setup, tmp_path_factory):
    s = memorized_setup
    params = MembershipParams(corpus=str(s.corpus_path), reference=s.base_spec, **FAST)
    out = tmp_path_factory.mktemp("membership_run")
    return _run(s.finetuned_spec, params, out), params, out


def test_attack_is_registered_by_name():
    assert get_attack("membership") is MembershipInference


def test_token_logprobs_sum_to_the_score(tiny_model_dir):
    target = load_target(f"hf:{tiny_model_dir}")
    prompts, conts = ["Alice Johnson's email is", "", "Hello"], [" alice@example.com", "The quick fox.", ""]
    per_token = target.token_logprobs(prompts, conts)
    sums = target.score(prompts, conts)
    assert per_token[2] == [] and sums[2] == 0.0
    for lp, total in zip(per_token, sums):
        assert sum(lp) == pytest.approx(total, abs=1e-4)
        assert all(v <= 0 for v in lp)


def test_a_target_without_per_token_logprobs_cannot_be_measured():
    """Declared through the contract: a target that can `score` but has no `token_logprobs` is exit 3."""
    from reliability.char_target import CharBigramTarget

    from privaudit.errors import EXIT_CANNOT_MEASURE, CapabilityError

    attack = MembershipInference(MembershipParams(corpus="corpus.jsonl"))
    attack.check_target(CharBigramTarget())  # has the capability: accepted
    with pytest.raises(CapabilityError, match="no 'token_logprobs' capability") as info:
        attack.check_target(CharBigramTarget(logprobs=False))
    assert info.value.exit_code == EXIT_CANNOT_MEASURE


def test_finetuned_model_auc_interval_excludes_chance(finetuned_result):
    res, _, _ = finetuned_result
    for name in ("auc", "auc.loss", "auc.zlib", "auc.min_k", "auc.min_k_pp", "auc.reference"):
        assert res.metrics[name].low > 0.5, name
    assert res.metrics["auc"].n == len(res.records[res.records["probe"] == "doc"])
    assert res.metrics["tpr_at_1pct_fpr"].value > 0.2
    assert {r["method"] for r in res.tables["methods"]} == {"loss", "zlib", "min_k", "min_k_pp", "reference"}


def test_intervals_resample_data_subjects_and_the_summary_carries_the_contract(finetuned_result):
    res, _, _ = finetuned_result
    docs = res.records[res.records["probe"] == "doc"]
    subject = docs["subject_id"].where(docs["subject_id"].notna(), None)
    clusters = subject.dropna().nunique() + int(subject.isna().sum())  # no subject: its own cluster
    for name in ("auc", "auc.loss", "tpr_at_1pct_fpr"):
        est = res.metrics[name]
        assert est.method == "cluster_bootstrap" and est.clusters == clusters < est.n, (name, est)
    summary = res.to_summary()["metrics"]
    assert (summary["auc"]["kind"], summary["auc"]["unit"], summary["auc"]["cluster"]) == ("mean", "document", "subject")
    assert summary["tpr_at_0p1pct_fpr"]["kind"] == "proportion"
    assert summary["max_exposure_bits"]["kind"] == "point" and summary["max_exposure_bits"]["direction"] == "higher_is_worse"


def test_exposure_is_higher_for_the_repeated_canary_than_the_control(finetuned_result):
    res, _, _ = finetuned_result
    by_rep = {row["repeats"]: row for row in res.tables["exposure_by_repeats"]}
    assert set(by_rep) == {0, 6}
    assert by_rep[6]["mean_exposure_bits"] > by_rep[0]["mean_exposure_bits"] + 3
    assert res.metrics["max_exposure_bits"].value == pytest.approx(by_rep[6]["max_exposure_bits"])
    # the reference (base) model never saw the canary: its exposure of the repeated one stays low
    assert by_rep[6]["reference_mean_exposure_bits"] < by_rep[6]["mean_exposure_bits"]


def test_result_carries_roc_curves_and_masks_secrets(finetuned_result):
    res, _, _ = finetuned_result
    roc = res.charts["roc"]
    assert roc["kind"] == "roc" and len(roc["curves"]) == 5
    for curve in roc["curves"]:
        assert curve["fpr"][0] == 0.0 and curve["fpr"][-1] == 1.0 and curve["tpr"][-1] == 1.0
    assert "secret" in MembershipInference.pii_record_fields
    assert json.dumps(res.to_summary(), default=str)  # JSON-able summary


def test_rerun_resumes_without_new_records(finetuned_result, memorized_setup):
    res, params, out = finetuned_result
    with RunStore(out) as store:
        before = len(list(store.iter_records()))
    again = _run(memorized_setup.finetuned_spec, params, out)
    with RunStore(out) as store:
        assert len(list(store.iter_records())) == before
    assert again.metrics["auc"] == res.metrics["auc"]


def test_base_model_without_reference_has_no_reference_method(memorized_setup, tmp_path):
    s = memorized_setup
    params = MembershipParams(corpus=str(s.corpus_path), canaries=False, bootstrap=300)
    res = _run(s.base_spec, params, tmp_path / "base")
    assert "auc.reference" not in res.metrics
    # the public base never saw the personal corpus: no membership signal
    assert res.metrics["auc"].low < 0.5 < res.metrics["auc"].high or res.metrics["auc"].value < 0.6


def test_gate_reads_membership_metrics_from_toml_dotted_keys(finetuned_result):
    res, _, _ = finetuned_result
    thresholds = tomllib.loads('membership.tpr_at_0p1pct_fpr = "<= 0.05"\nmembership.auc = "<= 0.6"\n'
                               'membership.max_exposure_bits = "<= 4"\n')
    outcome = evaluate({"results": [res.to_summary()]}, thresholds)
    assert {c.metric for c in outcome.checks} == {"tpr_at_0p1pct_fpr", "auc", "max_exposure_bits"}
    assert not outcome.passed and all(c.status == "fail" for c in outcome.checks)


def test_membership_documents_exclude_canaries_and_respect_the_limit(memorized_setup):
    docs = membership_documents(memorized_setup.corpus, max_documents=3)
    assert [d.split for d in docs] == ["train"] * 3 + ["heldout"] * 3
    assert all(d.kind != "canary" for d in membership_documents(memorized_setup.corpus))


def test_params_reject_unknown_method():
    with pytest.raises(InputError, match="unknown method 'gradnorm'"):
        MembershipInference.from_config({"corpus": "c.jsonl", "methods": ["gradnorm"]}, "attacks.membership")


def test_cli_runs_membership_and_writes_summary(memorized_setup, tmp_path):
    s = memorized_setup
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "attack", "membership", "--target", s.finetuned_spec, "--corpus", str(s.corpus_path),
        "--out", str(out), "--max-documents", "8", "--candidates", "31", "--bootstrap", "50",
        "--methods", "loss,min_k", "--verbose"])  # every metric, not only the headline ones
    assert result.exit_code == 0, result.output
    assert "auc.min_k" in result.output and "max_exposure_bits" in result.output
    summary = json.loads((out / "summary.json").read_text())
    (entry,) = [r for r in summary["results"] if r["attack"] == "membership"]
    assert entry["metrics"]["auc"]["value"] > 0.5
    # the raw secret is masked in every report
    secret = s.corpus.canaries[0].secret
    assert secret not in (out / "report.html").read_text()


def test_cli_missing_corpus_is_an_input_error(memorized_setup, tmp_path):
    result = CliRunner().invoke(main, [
        "attack", "membership", "--target", memorized_setup.base_spec, "--corpus", str(tmp_path / "nope.jsonl"),
        "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "nope.jsonl" in result.output


def test_cli_one_lira_reference_is_an_input_error_before_any_model_loads(memorized_setup, tmp_path):
    result = CliRunner().invoke(main, [
        "attack", "membership", "--target", "hf:/nonexistent-model", "--corpus", str(memorized_setup.corpus_path),
        "--references", memorized_setup.base_spec, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "references" in result.output and "at least 2" in result.output


@pytest.mark.slow
def test_user_level_dp_sgd_at_epsilon_8_brings_every_auc_interval_to_chance(memorized_setup, tmp_path):
    """DP-SGD at epsilon 8 with the data subject as privacy unit: no membership score beats chance.

    Members and non-members differ by *subject* (the corpus holds out whole subjects), so the unit
    that must be protected is a subject: with one document per example (privacy_unit "document",
    deduplicated) the reference ratio still reached AUC 0.66 [0.54, 0.81], since each member shares
    its name and PII with the subject's other training documents (group privacy over k documents).
    """
    from privaudit.defenses.dp_sgd import DPConfig, privacy_units, train_dp_sgd

    s = memorized_setup
    r = s.recipe
    cfg = DPConfig(target_epsilon=8.0, epochs=r.finetune_epochs, learning_rate=r.learning_rate,
                   batch_size=r.batch_size, max_length=384, privacy_unit="subject", seed=r.seed)
    units = privacy_units(s.corpus, "subject")
    assert set(s.train_subject_ids) <= set(units)
    dp = train_dp_sgd(s.base_dir, units, s.corpus.heldout_texts(), cfg, tmp_path / "dp")
    assert dp.privacy is not None and dp.privacy.epsilon <= 8.0 + 1e-6 and dp.privacy.privacy_unit == "subject"
    params = MembershipParams(corpus=str(s.corpus_path), reference=s.base_spec, canaries=False, bootstrap=300)
    res = _run(dp.target_spec, params, tmp_path / "run")
    aucs = {name: res.metrics[name] for name in ("auc.loss", "auc.zlib", "auc.min_k", "auc.min_k_pp", "auc.reference")}
    for name, est in aucs.items():
        assert est.low < 0.5 < est.high or abs(est.value - 0.5) < 0.1, aucs


# -- Min-K%++, offline LiRA and the split's construction (issue 17) ---------------------------------

def test_split_construction_overlap_and_blind_baseline_are_reported(finetuned_result, memorized_setup):
    """MIMIR's warning (Duan et al. 2024): the report states how non-members were drawn and how shifted they are."""
    res, _, _ = finetuned_result
    row = res.tables["split"][0]
    held_out = set(memorized_setup.heldout_subject_ids)
    assert row["construction"].startswith("held-out subjects") and row["non_members_sharing_a_subject"] == 0
    assert row["non_member_subjects"] == len(held_out) and row["generator"] == "privaudit.data.corpus.generate_corpus"
    overlap, blind = res.metrics["split_ngram_overlap"], res.metrics["split_blind_auc"]
    assert 0.0 <= overlap.low <= overlap.value <= overlap.high <= 1.0 and overlap.n == row["non_members"]
    assert 0.5 <= blind.value <= 1.0 and blind.low <= blind.value <= blind.high
    # the model-free baseline is far below what the model's scores reach: the AUC is about memorization
    assert blind.value < res.metrics["auc.min_k_pp"].low
    assert any("13-gram overlap" in a and "blind baseline" in a for a in res.assumptions)
    summary = res.to_summary()["metrics"]
    assert summary["split_blind_auc"]["cluster"] == "subject" and summary["auc.min_k_pp"]["kind"] == "mean"


def test_a_target_without_the_next_token_distribution_skips_min_k_pp_and_says_why(memorized_setup, tmp_path):
    """An API target sees top_logprobs only: Min-K%++ is not approximated, it is left out and named."""
    from reliability.char_target import CharBigramTarget

    params = MembershipParams(corpus=str(memorized_setup.corpus_path), canaries=False, bootstrap=50, max_documents=6)
    with RunStore(tmp_path / "run") as store:
        res = MembershipInference(params).run(CharBigramTarget(), RunContext(store=store, seed=0, batch_size=16))
    assert "auc.min_k_pp" not in res.metrics and "auc.min_k" in res.metrics
    assert any(a.startswith("Min-K%++ not computed") for a in res.assumptions)


def test_references_need_two_models_and_are_nested_targets():
    with pytest.raises(InputError, match="at least 2"):
        MembershipParams(corpus="c.jsonl", references=("hf:a",))
    with pytest.raises(InputError, match="lira_variance"):
        MembershipParams(corpus="c.jsonl", lira_variance="median")
    attack = MembershipInference(MembershipParams(corpus="c.jsonl", reference="hf:r", references=("hf:a", "hf:b")))
    assert attack.nested_targets() == {"reference": "hf:r", "references[0]": "hf:a", "references[1]": "hf:b"}


@pytest.mark.slow
def test_offline_lira_over_reference_models_separates_members(memorized_setup, tmp_path):
    """Two OUT references (the public base, and the base fine-tuned on other people's documents)."""
    from privaudit.defenses.finetune import FinetuneConfig, finetune
    from privaudit.personalized import PersonalizationRecipe, public_corpus

    s = memorized_setup
    other = public_corpus(PersonalizationRecipe(seed=7, public_subjects=12)).train_texts()
    cfg = FinetuneConfig(epochs=1, learning_rate=s.recipe.learning_rate, batch_size=16, max_length=128, seed=7)
    out_ref = finetune(s.base_dir, other, other[:4], cfg, tmp_path / "out_ref")
    params = MembershipParams(corpus=str(s.corpus_path), references=(s.base_spec, out_ref.target_spec),
                              methods=("loss", "lira"), canaries=False, bootstrap=200)
    res = _run(s.finetuned_spec, params, tmp_path / "run")
    assert res.metrics["auc.lira"].low > 0.5 and {r["method"] for r in res.tables["methods"]} == {"loss", "lira"}
    assert any("LiRA offline" in a and "global" in a for a in res.assumptions)
    docs = res.records[res.records["probe"] == "doc"]
    assert all(len(r) == 2 for r in docs["references_mean_logprob"])
