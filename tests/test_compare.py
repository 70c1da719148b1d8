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


@pytest.mark.slow
def test_dp_variant_reports_epsilon_and_leaks_less_than_no_defense(memorized_setup, tmp_path: Path) -> None:
    r = memorized_setup.recipe
    ft = {"epochs": r.finetune_epochs, "learning_rate": r.learning_rate, "batch_size": r.batch_size,
          "max_length": r.max_length, "seed": 0}
    spec = {
        "base": memorized_setup.base_spec, "corpus": str(memorized_setup.corpus_path),
        "subjects": str(memorized_setup.subjects_path), "out": str(tmp_path / "cmp"), "seed": 0,
        "defenses": {"none": ft, "scrub": ft, "dp_sgd": {**ft, "target_epsilon": 8.0}},
        "attacks": {"pii": {"likelihood": True, "pii_types": ["email"], "max_new_tokens": 24}},
    }
    path = tmp_path / "compare.toml"
    path.write_text(tomli_w.dumps(spec), encoding="utf-8")
    result = CliRunner().invoke(main, ["-q", "compare", "--config", str(path)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "cmp" / "comparison.csv").set_index("variant")
    dp, none = table.loc["dp_sgd"], table.loc["none"]
    assert 0 < dp["epsilon"] <= 8.0 and pd.isna(none["epsilon"])
    # The known ordering on leakage: no defense leaks most; DP-SGD at epsilon <= 8 leaks clearly less,
    # with separated 95% intervals; scrubbing (Presidio removes the emails) leaks less than none too.
    metric = "pii.likelihood_top1_rate"
    assert dp[f"{metric}.high"] < none[f"{metric}.low"], table[[metric, f"{metric}.low", f"{metric}.high"]]
    assert table.loc["scrub", metric] < none[metric]
    assert table["heldout_perplexity"].notna().all()
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    compare = [x for x in summary["results"] if x["attack"] == "compare"][0]
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
