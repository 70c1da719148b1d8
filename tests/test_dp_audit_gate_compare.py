"""The DP audit's gate and compare integration: equality conditions on a flag, the bound beside epsilon."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from privaudit.errors import InputError
from privaudit.gate import evaluate, parse_condition


def _summary(violated: float, lower: float) -> dict:
    point = lambda v: {"value": v, "low": v, "high": v, "n": 0, "kind": "point",  # noqa: E731
                       "direction": "higher_is_worse", "method": "steinke2023_one_run"}
    return {"results": [{"attack": "dp_audit", "target": "m", "metrics": {
        "claim_violated": point(violated), "empirical_epsilon_lower": point(lower)}}]}


@pytest.mark.parametrize("condition,violated,status", [
    ("== false", 1.0, "fail"), ("== false", 0.0, "pass"), ("!= true", 1.0, "fail"),
    ("== 0", 0.0, "pass"), ("== TRUE", 1.0, "pass"),
])
def test_equality_on_a_flag(condition, violated, status):
    out = evaluate(_summary(violated, 2.0), {"dp_audit.claim_violated": condition})
    (check,) = out.checks
    assert check.status == status and check.compared_as == "value"
    assert out.exit_code == (1 if status == "fail" else 0)


def test_the_bound_gates_like_any_point_metric():
    (check,) = evaluate(_summary(0.0, 2.4), {"dp_audit.empirical_epsilon_lower": "<= 1"}).checks
    assert check.status == "fail" and check.compared == pytest.approx(2.4)


@pytest.mark.parametrize("bad", ["= false", "== maybe", "=== 0"])
def test_malformed_equality_is_an_input_error(bad):
    with pytest.raises(InputError, match="== false"):
        parse_condition(bad, "thresholds.x")


def _audited(included: list[bool], separation: float):
    """A real DPAudit summary of per-canary records (scores: members shifted by `separation`)."""
    from privaudit.attacks.dp_audit import DPAudit, DPAuditParams

    records = pd.DataFrame([{"canary_id": f"c{i}", "unit": "record", "included": b,
                             "scores": {"loss": (separation if b else 0.0) + (i % 10) / 10}}
                            for i, b in enumerate(included)])
    return DPAudit(DPAuditParams(canaries="c.jsonl")).summarize("t", records)


def test_compare_shows_the_bound_beside_each_variants_own_epsilon():
    from privaudit.attacks.base import AttackResult
    from privaudit.compare import comparison_rows, results_by_variant
    from privaudit.defenses.registry import DefendedModel, PrivacyReport, TrainingReport

    def variant(name: str, eps: float | None) -> DefendedModel:
        priv = PrivacyReport(eps, 1e-5, 1.0, 1.0, 0.1, 10, "prv") if eps else None
        return DefendedModel(name, f"hf:/v/{name}", Path(f"/v/{name}"), TrainingReport(10, 1.0, 1.0, 20.0), priv)

    included = [i % 2 == 0 for i in range(200)]
    leaky, tight = _audited(included, 5.0), _audited(included, 0.0)
    variants = {"none": variant("none", None), "broken": variant("broken", 1.0), "dp": variant("dp", 8.0),
                "plain": variant("plain", None)}
    results = [AttackResult("dp_audit", "x", r.records, r.metrics, provenance={"target_spec": f"hf:/v/{v}"})
               for v, r in (("none", leaky), ("broken", leaky), ("dp", tight))]
    rows = {r["variant"]: r for r in comparison_rows(variants, results_by_variant(variants, results))}
    lower = leaky.metrics["empirical_epsilon_lower"].value
    assert lower > 1.0 and tight.metrics["empirical_epsilon_lower"].value < 1.0
    keys = list(rows["broken"])
    assert keys.index("empirical_epsilon_lower") == keys.index("epsilon") + 1  # beside the accountant's
    assert rows["broken"]["claim_violated"] is True and rows["dp"]["claim_violated"] is False
    assert rows["none"]["claim_violated"] is False  # no claim, nothing to violate
    assert "empirical_epsilon_lower" not in rows["plain"]  # ran without canaries: no column invented
