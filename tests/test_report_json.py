"""summary.json: golden structure of schema 2.0 (parsed, not string-compared), strict JSON, validation."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from privaudit.errors import InputError
from privaudit.reports.json import SCHEMA_VERSION, read_summary, render_json, validate_summary
from report_fixtures import ATTACK_NAME, make_subjects, registered_fixture_attack, write_run

SCHEMA_DOC = Path(__file__).resolve().parents[1] / "reports" / "SCHEMA.md"
# 2.1: subject_risk (per-subject ranking), evidence per result, headline per metric
TOP_LEVEL = {"schema_version", "generator", "pii_shown", "masking", "notes", "manifest", "results", "subject_risk", "gate"}
RESULT_KEYS = {"attack", "target", "metrics", "tables", "charts", "assumptions", "provenance", "num_records", "evidence"}
# 2.0: the numbers, the interval's clusters and method, and the metric's declared contract
ESTIMATE_KEYS = {"value", "low", "high", "n", "clusters", "method", "kind", "direction", "unit", "cluster", "pattern", "headline",
                 "name"}
CHECK_KEYS = {"name", "key", "attack", "metric", "target", "op", "threshold", "bound", "compared", "value",
              "low", "high", "n", "status", "message", "direction", "compared_as"}


@pytest.fixture
def fixture_attack():
    yield from registered_fixture_attack()


@pytest.fixture
def summary(fixture_attack, tmp_path):
    run = tmp_path / "run"
    write_run(run, make_subjects(4), thresholds={f"{ATTACK_NAME}.exact_match_rate": "<= 0.99",
                                                 f"{ATTACK_NAME}.top1_rate@tiny-a": {"max": 0.0001}})
    return json.loads((run / "summary.json").read_text(encoding="utf-8"))


def test_top_level_fields_and_version(summary):
    assert set(summary) == TOP_LEVEL
    assert summary["schema_version"] == SCHEMA_VERSION and re.fullmatch(r"\d+\.\d+", SCHEMA_VERSION)
    assert summary["generator"]["name"] == "privaudit" and isinstance(summary["generator"]["version"], str)
    assert summary["pii_shown"] is False and summary["masking"]["masked"] is True
    assert isinstance(summary["notes"], list)


def test_each_result_has_the_documented_fields_and_estimates(summary):
    assert [(r["attack"], r["target"]) for r in summary["results"]] == [(ATTACK_NAME, "tiny-a"), (ATTACK_NAME, "tiny-b")]
    for res in summary["results"]:
        assert set(res) == RESULT_KEYS
        assert res["num_records"] == 12
        for name, est in res["metrics"].items():
            assert set(est) == ESTIMATE_KEYS, name
            assert est["name"] == name and est["kind"] == "proportion" and est["direction"] == "higher_is_worse"
            assert est["unit"] == "probe" and est["pattern"] == name
            if est["n"]:
                assert 0 <= est["low"] <= est["value"] <= est["high"] <= 1
        assert res["metrics"]["never_measured_rate"]["value"] is None  # NaN is written as null
        assert all(isinstance(rows, list) and all(isinstance(r, dict) for r in rows) for rows in res["tables"].values())
        assert all(isinstance(c, dict) and isinstance(c["kind"], str) for c in res["charts"].values())


def test_gate_section_has_one_check_per_condition_and_target(summary):
    gate = summary["gate"]
    assert {"thresholds", "status", "passed", "exit_code", "error", "checks"} <= set(gate)
    assert [(c["name"], c["status"]) for c in gate["checks"]] == [
        (f"{ATTACK_NAME}.exact_match_rate@tiny-a", "pass"), (f"{ATTACK_NAME}.exact_match_rate@tiny-b", "pass"),
        (f"{ATTACK_NAME}.top1_rate@tiny-a", "fail")]
    assert all(set(c) == CHECK_KEYS for c in gate["checks"])
    assert gate["status"] == "fail" and gate["passed"] is False and gate["exit_code"] == 1
    assert gate["thresholds"][f"{ATTACK_NAME}.top1_rate@tiny-a"] == {"max": 0.0001}


def test_gate_configuration_error_is_recorded_not_raised(fixture_attack, tmp_path):
    write_run(tmp_path / "run", make_subjects(2), thresholds={f"{ATTACK_NAME}.nope": "<= 0.1"})
    gate = json.loads((tmp_path / "run" / "summary.json").read_text())["gate"]
    assert gate["status"] == "error" and gate["exit_code"] == 2 and "nope" in gate["error"] and gate["checks"] == []


def test_render_json_is_strict_json():
    text = render_json({"schema_version": SCHEMA_VERSION, "x": None})
    assert json.loads(text) == {"schema_version": SCHEMA_VERSION, "x": None}
    with pytest.raises(ValueError):
        render_json({"x": math.nan})  # non-finite numbers must be nulled before rendering


CONTRACT = {"kind": "proportion", "direction": "higher_is_worse"}


@pytest.mark.parametrize("data, field", [
    ([], "expected a JSON object"),
    ({"schema_version": "3.0", "results": []}, "schema_version"),
    ({"schema_version": "1.0", "results": []}, "schema_version.*privaudit report"),  # 1.x has no contract
    ({"schema_version": "2.0"}, "'results'"),
    ({"schema_version": "2.0", "results": [{"attack": "a", "target": "t"}]}, r"results\[0\]\.metrics"),
    ({"schema_version": "2.0", "results": [{"attack": "a", "target": "t", "metrics": {"m": 3}}]}, r"metrics\.m"),
    ({"schema_version": "2.0", "results": [{"attack": "a", "target": "t", "metrics": {"m": {"value": 1, "kind": "mean"}}}]},
     r"metrics\.m\.direction': missing"),
    ({"schema_version": "2.0", "results": [{"attack": "a", "target": "t", "metrics": {"m": {
        "value": 1, **CONTRACT, "direction": "up"}}}]}, r"metrics\.m\.direction': 'up' is not one of"),
])
def test_validation_names_the_field(data, field):
    with pytest.raises(InputError, match=field):
        validate_summary(data, "s.json")


def test_a_re_render_may_read_a_1x_summary_the_gate_may_not():
    old = {"schema_version": "1.0", "results": [{"attack": "a", "target": "t", "metrics": {"m": {"value": 1}}}]}
    validate_summary(old, accept_older=True)
    validate_summary({"schema_version": "2.0", "results": [{"attack": "a", "target": "t", "metrics": {
        "m": {"value": 1, **CONTRACT}}}]})


def test_read_summary_names_file_and_line_of_bad_json(tmp_path):
    bad = tmp_path / "summary.json"
    bad.write_text('{\n"schema_version": "1.0",\n oops}', encoding="utf-8")
    with pytest.raises(InputError, match=r"summary\.json:3: invalid JSON"):
        read_summary(bad)


def test_minor_versions_are_accepted():
    validate_summary({"schema_version": SCHEMA_VERSION.split(".")[0] + ".9", "results": []})


def test_schema_doc_names_the_version_and_every_field():
    doc = SCHEMA_DOC.read_text(encoding="utf-8")
    assert f'schema_version `"{SCHEMA_VERSION}"`' in doc or f"schema {SCHEMA_VERSION}" in doc
    for field in TOP_LEVEL | RESULT_KEYS | ESTIMATE_KEYS | CHECK_KEYS | {"exit_code", "thresholds", "checks"}:
        assert f"`{field}`" in doc, field
    from privaudit.metrics import DIRECTIONS, KINDS

    methods = {"wilson", "wilson_design_effect", "cluster_robust_t", "cluster_bootstrap", "bootstrap", "point",
               "accountant", "count", "max"}
    for word in set(KINDS) | set(DIRECTIONS) | methods:
        assert f"`{word}`" in doc, word


# -- a re-render keeps the contract ----------------------------------------------------------------
def _compare_entry():
    import pandas as pd

    from privaudit.compare import comparison_rows, summary_result
    from privaudit.defenses.registry import DefendedModel, PrivacyReport, TrainingReport

    variants = {"dp_sgd": DefendedModel("dp_sgd", "hf:/v/dp", Path("/v/dp"), TrainingReport(10, 3.0, 1.0, 30.0),
                                        PrivacyReport(7.5, 1e-5, 1.0, 1.0, 0.1, 10, "prv"))}
    rows = comparison_rows(variants, {})
    return summary_result(rows, pd.DataFrame(rows))


def test_a_re_render_keeps_every_metrics_contract_and_gates_the_same(fixture_attack, tmp_path):
    from privaudit.gate import run_gate
    from privaudit.reports import write_reports
    from privaudit.reports.rundir import render_run

    run = tmp_path / "run"
    results = write_run(run, make_subjects(4))
    manifest = json.loads((run / "manifest.json").read_text())
    # the compare pseudo-result is no registered attack: a re-render shows it from summary.json
    write_reports(run, [*results, _compare_entry()], manifest, thresholds={"compare.epsilon.dp_sgd": "<= 8"})
    before = json.loads((run / "summary.json").read_text())
    render_run(run)
    after = json.loads((run / "summary.json").read_text())
    assert [r["metrics"] for r in after["results"]] == [r["metrics"] for r in before["results"]]
    eps = after["results"][-1]["metrics"]["epsilon.dp_sgd"]
    assert (eps["kind"], eps["direction"], eps["method"], eps["n"]) == ("point", "higher_is_worse", "accountant", 0)
    assert any("shown from summary.json" in n for n in after["notes"])
    assert after["gate"]["status"] == "pass" and run_gate(run, {"compare.epsilon.dp_sgd": "<= 7"}).exit_code == 1


def test_a_1x_run_folder_is_re_rendered_into_2x_but_not_gated(fixture_attack, tmp_path):
    from privaudit.gate import run_gate
    from privaudit.reports.rundir import render_run

    run = tmp_path / "run"
    write_run(run, make_subjects(4))
    old = json.loads((run / "summary.json").read_text())
    old["schema_version"] = "1.0"
    for res in old["results"]:
        res["metrics"] = {k: {f: v[f] for f in ("value", "low", "high", "n", "method")} for k, v in res["metrics"].items()}
    (run / "summary.json").write_text(json.dumps(old), encoding="utf-8")
    with pytest.raises(InputError, match="unsupported '1.0'.*privaudit report"):
        run_gate(run, {f"{ATTACK_NAME}.exact_match_rate": "<= 0.99"})
    render_run(run)
    new = read_summary(run / "summary.json")
    assert new["schema_version"] == SCHEMA_VERSION
    assert new["results"][0]["metrics"]["exact_match_rate"]["direction"] == "higher_is_worse"
    assert run_gate(run, {f"{ATTACK_NAME}.exact_match_rate": "<= 0.99"}).exit_code == 0


def test_a_re_render_re_summarizes_attacks_restricted_to_some_targets(fixture_attack, tmp_path):
    """An attack table's reserved `targets` key (the demo uses it) is no attack parameter: the
    re-render still re-derives the result from its records, evidence and subject ranking included."""
    from privaudit.reports.rundir import render_run

    run = tmp_path / "run"
    write_run(run, make_subjects(4))
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["config"]["attacks"][ATTACK_NAME]["targets"] = ["tiny-a", "tiny-b"]
    (run / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    before = json.loads((run / "summary.json").read_text())
    render_run(run)
    after = json.loads((run / "summary.json").read_text())
    assert after["notes"] == []
    assert [r["evidence"] for r in after["results"]] == [r["evidence"] for r in before["results"]]
    assert after["results"][0]["evidence"] and after["subject_risk"] == before["subject_risk"]
