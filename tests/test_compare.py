"""`privaudit compare` end to end: none vs scrub vs DP-SGD on the memorized setup's data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import tomli_w
from click.testing import CliRunner

from privaudit.cli import main
from privaudit.compare import comparison_rows, tradeoff_charts


def _paired_top1_drop(run_dir: Path, worse: str, better: str):
    """Likelihood top-1 of variant `worse` minus `better` on the same probes, clustered by subject."""
    from privaudit.engine.store import read_records
    from privaudit.metrics import paired_difference

    by_variant: dict[str, dict[str, dict]] = {}
    for rec in read_records(run_dir):
        if rec.get("attack") == "pii" and rec.get("kind") == "likelihood":
            by_variant.setdefault(Path(str(rec["target"])).name, {})[rec["item"]] = rec
    keys = sorted(set(by_variant[worse]) & set(by_variant[better]))
    assert keys
    return paired_difference([float(by_variant[worse][k]["top1"]) for k in keys],
                             [float(by_variant[better][k]["top1"]) for k in keys],
                             [by_variant[worse][k]["subject_id"] for k in keys])


@pytest.mark.slow
def test_dp_variant_reports_epsilon_and_leaks_less_than_no_defense(memorized_setup, tmp_path: Path) -> None:
    r = memorized_setup.recipe
    ft = {"epochs": r.finetune_epochs, "learning_rate": r.learning_rate, "batch_size": r.batch_size,
          "max_length": r.max_length, "seed": 0}
    spec = {
        "base": memorized_setup.base_spec, "corpus": str(memorized_setup.corpus_path),
        "subjects": str(memorized_setup.subjects_path), "out": str(tmp_path / "cmp"), "seed": 0,
        "defenses": {"none": ft, "scrub": ft, "dp_sgd": {**ft, "target_epsilon": 8.0}},
        "attacks": {"pii": {"likelihood": True, "pii_types": ["email"], "max_new_tokens": 24},
                    # on two variants only: results must be matched to variants by name, not position
                    "membership": {"targets": ["none", "dp_sgd"], "canaries": False, "bootstrap": 100}},
        "thresholds": {"compare.epsilon.dp_sgd": "<= 8", "compare.heldout_perplexity.none": "<= 100000"},
    }
    path = tmp_path / "compare.toml"
    path.write_text(tomli_w.dumps(spec), encoding="utf-8")
    result = CliRunner().invoke(main, ["-q", "compare", "--config", str(path), "--gate"])
    assert result.exit_code == 0, result.output
    assert "PASS       compare.epsilon.dp_sgd@defenses" in result.output
    table = pd.read_csv(tmp_path / "cmp" / "comparison.csv").set_index("variant")
    dp, none = table.loc["dp_sgd"], table.loc["none"]
    assert 0 < dp["epsilon"] <= 8.0 and pd.isna(none["epsilon"])
    # The known ordering on leakage: no defense leaks most; DP-SGD at epsilon <= 8 leaks clearly less:
    # the paired difference (the same probes on both variants, clustered by subject) excludes 0.
    # (This asserted separated marginal intervals before issue 14; clustered by subject the marginal
    # intervals of 20 subjects overlap, and a difference of paired probes is judged paired.)
    metric = "pii.likelihood_top1_rate"
    assert dp[metric] < none[metric], table[[metric, f"{metric}.low", f"{metric}.high"]]
    drop = _paired_top1_drop(tmp_path / "cmp", "none", "dp_sgd")
    assert drop.low > 0, drop
    assert table.loc["scrub", metric] < none[metric]
    assert table["heldout_perplexity"].notna().all()
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    compare = [x for x in summary["results"] if x["attack"] == "compare"][0]
    assert pd.isna(table.loc["scrub", "membership.auc"]) and table.loc[["none", "dp_sgd"], "membership.auc"].notna().all()
    assert {"membership.auc.none", "membership.auc.dp_sgd"} <= set(compare["metrics"])
    assert "membership.auc.scrub" not in compare["metrics"]
    membership = {x["target"]: x for x in summary["results"] if x["attack"] == "membership"}
    for variant in ("none", "dp_sgd"):  # the compare entry holds each variant's own estimate
        source = membership[next(t for t in membership if t.endswith(f"variants/{variant}"))]["metrics"]["auc"]
        assert compare["metrics"][f"membership.auc.{variant}"]["value"] == source["value"]
        assert compare["metrics"][f"membership.auc.{variant}"]["method"] == "cluster_bootstrap"
    assert summary["gate"]["status"] == "pass"
    # the run is complete only once the comparison's own reports (with the compare result) exist
    assert json.loads((tmp_path / "cmp" / "manifest.json").read_text())["status"] == "complete"
    failing = tmp_path / "strict.toml"
    failing.write_text('[thresholds]\n"compare.epsilon.dp_sgd" = "<= 1"\n', encoding="utf-8")
    strict = CliRunner().invoke(main, ["gate", str(tmp_path / "cmp"), "--config", str(failing)])
    assert strict.exit_code == 1 and "FAIL       compare.epsilon.dp_sgd@defenses" in strict.output, strict.output
    assert {p["label"].split(" ")[0] for p in compare["charts"]["tradeoff_pii_likelihood_top1_rate"]["points"]} == \
        {"none", "scrub", "dp_sgd"}
    # Rerun: every variant folder is complete, so nothing retrains and the table is the same.
    stamps = {v: (tmp_path / "cmp" / "variants" / v / "defended.json").stat().st_mtime_ns for v in table.index}
    again = CliRunner().invoke(main, ["-q", "compare", "--config", str(path)])
    assert again.exit_code == 0, again.output
    assert stamps == {v: (tmp_path / "cmp" / "variants" / v / "defended.json").stat().st_mtime_ns for v in table.index}
    assert pd.read_csv(tmp_path / "cmp" / "comparison.csv").equals(table.reset_index())


def test_tradeoff_chart_is_a_scatter_of_perplexity_against_leakage() -> None:
    from privaudit.attacks.base import AttackResult
    from privaudit.defenses.registry import DefendedModel, PrivacyReport, TrainingReport
    from privaudit.metrics import proportion

    def rec(name: str, ppl: float, eps: float | None) -> DefendedModel:
        priv = PrivacyReport(eps, 1e-5, 1.0, 1.0, 0.1, 10, "prv") if eps else None
        return DefendedModel(name, f"hf:/{name}", Path("/x"), TrainingReport(10, 1.0, 1.0, ppl), priv)

    def res(k: int) -> dict:
        return {"pii": AttackResult("pii", "t", pd.DataFrame(), {"likelihood_top1_rate": proportion(k, 20),
                                                                  "likelihood_top1_rate.email": proportion(k, 20)})}

    rows = comparison_rows({"none": rec("none", 10.0, None), "dp": rec("dp_sgd", 30.0, 4.0)},
                           {"none": res(15), "dp": res(2)})
    assert "pii.likelihood_top1_rate.email" not in rows[0]
    chart = tradeoff_charts(rows)["tradeoff_pii_likelihood_top1_rate"]
    assert chart["kind"] == "scatter"
    assert [(p["label"], p["x"], p["y"]) for p in chart["points"]] == [("none", 10.0, 0.75), ("dp (eps=4)", 30.0, 0.1)]
    assert all(p["y_low"] <= p["y"] <= p["y_high"] for p in chart["points"])


def test_compare_without_config_needs_base_corpus_and_subjects() -> None:
    result = CliRunner().invoke(main, ["compare", "--base", "hf:/nowhere"])
    assert result.exit_code == 2 and "--corpus" in result.output


# -- metrics keyed by variant name, gateable epsilon / perplexity / training time ----------------
def _record(name: str, ppl: float, eps: float | None, seconds: float = 12.5):
    from privaudit.defenses.registry import DefendedModel, PrivacyReport, TrainingReport

    priv = PrivacyReport(eps, 1e-5, 1.0, 1.0, 0.1, 10, "prv") if eps else None
    return DefendedModel(name, f"hf:/variants/{name}", Path(f"/variants/{name}"),
                         TrainingReport(10, seconds, 1.0, ppl), priv)


def _result(attack: str, target_spec: str, metrics: dict):
    from privaudit.attacks.base import AttackResult

    return AttackResult(attack, f"name-of-{target_spec}", pd.DataFrame(), metrics,
                        provenance={"target_spec": target_spec})


def test_results_are_matched_to_variants_by_target_spec_not_position() -> None:
    from privaudit.compare import results_by_variant
    from privaudit.metrics import proportion

    variants = {"none": _record("none", 10.0, None), "scrub": _record("scrub", 11.0, None),
                "dp_sgd": _record("dp_sgd", 30.0, 4.0)}
    # run order target by target; membership ran only on none and dp_sgd (an attack table's `targets`)
    results = [_result("pii", "hf:/variants/none", {"exact_match_rate": proportion(9, 10)}),
               _result("membership", "hf:/variants/none", {"auc": proportion(9, 10)}),
               _result("pii", "hf:/variants/scrub", {"exact_match_rate": proportion(5, 10)}),
               _result("pii", "hf:/variants/dp_sgd", {"exact_match_rate": proportion(1, 10)}),
               _result("membership", "hf:/variants/dp_sgd", {"auc": proportion(5, 10)})]
    by_variant = results_by_variant(variants, results)
    assert {v: sorted(r) for v, r in by_variant.items()} == {
        "none": ["membership", "pii"], "scrub": ["pii"], "dp_sgd": ["membership", "pii"]}
    rows = {r["variant"]: r for r in comparison_rows(variants, by_variant)}
    assert rows["scrub"]["pii.exact_match_rate"] == 0.5 and "membership.auc" not in rows["scrub"]
    assert rows["dp_sgd"]["pii.exact_match_rate"] == 0.1 and rows["dp_sgd"]["membership.auc"] == 0.5


def _compare_summary(eps: float) -> dict:
    from privaudit.compare import results_by_variant, summary_result
    from privaudit.metrics import proportion

    variants = {"none": _record("none", 10.0, None), "dp_sgd": _record("dp_sgd", 30.0, eps, seconds=40.0)}
    results = [_result("pii", rec.target_spec, {"exact_match_rate": proportion(k, 20)})
               for rec, k in zip(variants.values(), (15, 2))]
    by_variant = results_by_variant(variants, results)
    rows = comparison_rows(variants, by_variant)
    return summary_result(rows, pd.DataFrame(rows), by_variant).to_summary()


def test_compare_declares_epsilon_perplexity_and_training_time_as_gateable_points() -> None:
    from privaudit.gate import evaluate

    entry = _compare_summary(eps=4.0)
    eps = entry["metrics"]["epsilon.dp_sgd"]
    assert (eps["value"], eps["n"], eps["kind"], eps["direction"], eps["method"]) == (4.0, 0, "point", "higher_is_worse",
                                                                                       "accountant")
    assert entry["metrics"]["heldout_perplexity.none"]["kind"] == "point"
    assert entry["metrics"]["training_seconds.dp_sgd"]["value"] == 40.0
    assert "epsilon.none" not in entry["metrics"]  # no DP, no epsilon
    # the variant's own estimate, interval method included, not a Wilson rebuilt from the table
    assert entry["metrics"]["pii.exact_match_rate.dp_sgd"]["value"] == 0.1
    summary = {"results": [entry]}
    thresholds = {"compare.epsilon.dp_sgd": "<= 8", "compare.heldout_perplexity.dp_sgd": "<= 50",
                  "compare.training_seconds.dp_sgd": "<= 60"}
    assert evaluate(summary, thresholds).exit_code == 0
    assert [c.status for c in evaluate({"results": [_compare_summary(eps=9.5)]}, thresholds).checks] == [
        "fail", "pass", "pass"]


def _compare_toml(tmp_path: Path, **extra) -> Path:
    spec = {"base": "hf:/nowhere", "corpus": str(tmp_path / "c.jsonl"), "subjects": str(tmp_path / "s.jsonl"),
            "out": str(tmp_path / "cmp"), "defenses": {"none": {}, "dp_sgd": {"target_epsilon": 8.0}}, **extra}
    path = tmp_path / "compare.toml"
    path.write_text(tomli_w.dumps(spec), encoding="utf-8")
    return path


@pytest.mark.parametrize("extra, message", [
    ({"thresholds": {"compare.epsilon.dp_sdg": "<= 8"}}, "has no metric 'epsilon.dp_sdg'"),
    ({"thresholds": {"bias.max_refusal_gap": "<= 0.1"}}, "attack 'bias' is not in this audit"),
    ({"thresholds": {"pii.exact_rate": "<= 0.1"}}, "attack 'pii' has no metric 'exact_rate'"),
    ({"attacks": {"pii": {"targets": ["none", "dp"]}}}, "'dp' is not a compared variant (variants: none, dp_sgd)"),
])
def test_compare_checks_thresholds_and_attack_targets_before_anything_trains(tmp_path: Path, extra, message) -> None:
    result = CliRunner().invoke(main, ["-q", "compare", "--config", str(_compare_toml(tmp_path, **extra)), "--gate"])
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "cmp").exists()


def test_compare_gate_needs_thresholds(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["-q", "compare", "--config", str(_compare_toml(tmp_path)), "--gate"])
    assert result.exit_code == 2 and "[thresholds]" in result.output and not (tmp_path / "cmp").exists()
