"""The privacy gate: condition parsing, conservative bounds, per-target checks, exit codes, CLI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner
from hypothesis import given, strategies as st

from privaudit.cli import main
from privaudit.errors import InputError
from privaudit.gate import evaluate, flatten_thresholds, parse_condition, parse_metric_path, run_gate
from report_fixtures import make_subjects, registered_fixture_attack, write_run


def est(value, low, high, n=100):
    return {"value": value, "low": low, "high": high, "n": n, "method": "wilson"}


SUMMARY = {"results": [
    {"attack": "pii", "target": "a", "metrics": {"exact_match_rate": est(0.0, 0.0, 0.036), "exposure": est(2.0, 1.0, 3.0)}},
    {"attack": "pii", "target": "b", "metrics": {"exact_match_rate": est(0.005, 0.001, 0.009)}},
    {"attack": "bias", "target": "a", "metrics": {"max_gap": est(0.1, 0.05, 0.2), "pb_score": est(None, None, None, 0)}},
]}


@pytest.fixture
def fixture_attack():
    yield from registered_fixture_attack()


def test_le_compares_the_upper_bound_by_default():
    out = evaluate(SUMMARY, {"pii.exact_match_rate@a": "<= 0.01"})
    (check,) = out.checks
    assert check.bound == "upper" and check.compared == pytest.approx(0.036)
    assert check.status == "fail" and not out.passed and out.exit_code == 1


def test_ge_compares_the_lower_bound_by_default():
    (check,) = evaluate(SUMMARY, {"pii.exposure@a": ">= 1.5"}).checks
    assert check.bound == "lower" and check.status == "fail"


def test_table_condition_can_choose_the_point_value():
    out = evaluate(SUMMARY, {"pii.exact_match_rate@a": {"max": 0.01, "bound": "value"}})
    assert out.passed and out.checks[0].compared == 0.0


def test_every_target_is_checked_without_at_target():
    out = evaluate(SUMMARY, {"pii.exact_match_rate": "<= 0.01"})
    assert [(c.target, c.status) for c in out.checks] == [("a", "fail"), ("b", "pass")]
    assert [c.name for c in out.checks] == ["pii.exact_match_rate@a", "pii.exact_match_rate@b"]


def test_min_and_max_in_one_table_give_two_checks():
    out = evaluate(SUMMARY, {"bias.max_gap": {"min": 0.01, "max": 0.5}})
    assert [(c.op, c.status) for c in out.checks] == [("<=", "pass"), (">=", "pass")]


def test_unquoted_dotted_toml_keys_are_flattened():
    assert flatten_thresholds({"pii": {"exact_match_rate": "<= 0.01", "x": {"max": 1}}}) == {
        "pii.exact_match_rate": "<= 0.01", "pii.x": {"max": 1}}


def test_unknown_metric_is_a_usage_error_naming_the_key():
    with pytest.raises(InputError, match=r'thresholds\."pii\.exact_rate": attack .pii. has no metric .exact_rate.'):
        evaluate(SUMMARY, {"pii.exact_rate": "<= 0.01"})


@pytest.mark.parametrize("key, value, message", [
    ("attributes.top1", "<= 0.1", "did not run"),
    ("pii.exact_match_rate@zzz", "<= 0.1", "did not run on target 'zzz'"),
    ("nodot", "<= 0.1", "not ATTACK.METRIC"),
    ("pii.exact_match_rate", "0.01", "not like '<= 0.01'"),
    ("pii.exact_match_rate", 0.01, "expected a condition"),
    ("pii.exact_match_rate", {"max": 1, "maximum": 2}, "maximum: unknown key"),
    ("pii.exact_match_rate", {"maximum": 1}, r'"pii\.exact_match_rate\.maximum": expected a condition'),
    ("pii.exact_match_rate", {"max": 1, "bound": "middle"}, "bound: must be one of"),
])
def test_bad_thresholds_are_usage_errors(key, value, message):
    with pytest.raises(InputError, match=message):
        evaluate(SUMMARY, {key: value})


def test_unmeasured_metric_exits_3_but_a_failure_wins():
    out = evaluate(SUMMARY, {"bias.pb_score": "<= 0.3"})
    assert out.checks[0].status == "unmeasured" and out.exit_code == 3 and not out.passed
    both = evaluate(SUMMARY, {"bias.pb_score": "<= 0.3", "pii.exact_match_rate@a": "<= 0.01"})
    assert both.exit_code == 1


def test_metric_missing_on_one_target_is_unmeasured_there():
    summary = {"results": SUMMARY["results"] + [{"attack": "bias", "target": "b", "metrics": {}}]}
    out = evaluate(summary, {"bias.max_gap": "<= 0.5"})
    assert [(c.target, c.status) for c in out.checks] == [("a", "pass"), ("b", "unmeasured")]


@given(st.sampled_from(["<=", "<", ">=", ">"]), st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
       st.sampled_from(["", " ", "  "]))
def test_condition_strings_parse_to_their_operator_and_number(op, number, space):
    (cond,) = parse_condition(f"{space}{op}{space}{number!r}{space}", "t")
    assert cond.op == op and cond.threshold == pytest.approx(number)
    assert cond.bound == ("upper" if op.startswith("<") else "lower")


@given(st.from_regex(r"[a-z_]{1,10}", fullmatch=True), st.from_regex(r"[a-z_.0-9]{1,20}", fullmatch=True),
       st.one_of(st.none(), st.from_regex(r"[a-z:/0-9._-]{1,20}", fullmatch=True)))
def test_metric_paths_round_trip(attack, metric, target):
    key = f"{attack}.{metric}" + (f"@{target}" if target else "")
    assert parse_metric_path(key, "t") == (attack, metric, target)


def _audit_toml(path, body):
    path.write_text('targets = ["x"]\n[attacks.reportfixture]\n[thresholds]\n' + body, encoding="utf-8")
    return path


def test_gate_cli_exit_codes_and_junit(fixture_attack, tmp_path):
    run = tmp_path / "run"
    write_run(run, make_subjects(4))
    runner = CliRunner()
    ok = runner.invoke(main, ["gate", str(run), "--config", str(_audit_toml(tmp_path / "ok.toml", '"reportfixture.exact_match_rate" = "<= 0.99"\n')),
                              "--junit", str(tmp_path / "j.xml")])
    assert ok.exit_code == 0, ok.output
    assert ok.output.count("PASS") == 2 and "gate: passed (2 checks)" in ok.output
    assert ET.parse(tmp_path / "j.xml").getroot().get("tests") == "2"

    fail = runner.invoke(main, ["gate", str(run), "--config", str(_audit_toml(tmp_path / "f.toml", 'reportfixture.exact_match_rate = "<= 0.01"\n'))])
    assert fail.exit_code == 1 and "FAIL" in fail.output and "gate: FAILED" in fail.output

    usage = runner.invoke(main, ["gate", str(run), "--config", str(_audit_toml(tmp_path / "u.toml", '"reportfixture.nope" = "<= 0.01"\n'))])
    assert usage.exit_code == 2 and "reportfixture.nope" in usage.output and "Traceback" not in usage.output

    unmeasured = runner.invoke(main, ["gate", str(run), "--config", str(_audit_toml(tmp_path / "m.toml", '"reportfixture.never_measured_rate" = "<= 0.5"\n'))])
    assert unmeasured.exit_code == 3 and "UNMEASURED" in unmeasured.output


def test_gate_cli_reuses_the_runs_thresholds_and_needs_some(fixture_attack, tmp_path):
    run = tmp_path / "run"
    write_run(run, make_subjects(4), thresholds={"reportfixture.top1_rate": "<= 0.99"})
    assert CliRunner().invoke(main, ["gate", str(run)]).exit_code == 0
    bare = tmp_path / "bare"
    write_run(bare, make_subjects(4))
    result = CliRunner().invoke(main, ["gate", str(bare)])
    assert result.exit_code == 2 and "--config" in result.output


def test_gate_cli_on_a_folder_that_is_not_a_run(tmp_path):
    result = CliRunner().invoke(main, ["gate", str(tmp_path / "nowhere"), "--config", str(_audit_toml(tmp_path / "a.toml", ""))])
    assert result.exit_code == 2 and "nowhere" in result.output


def test_run_gate_returns_the_outcome_and_writes_junit(fixture_attack, tmp_path):
    run = tmp_path / "run"
    write_run(run, make_subjects(4), targets=("a", "b", "c"))
    outcome = run_gate(run, {"reportfixture.exact_match_rate": "<= 0.999"}, junit_path=run / "gate.xml")
    assert outcome.passed and {c.target for c in outcome.checks} == {"a", "b", "c"}
    assert json.loads((run / "summary.json").read_text())["gate"] is None  # run_gate does not rewrite the summary
    assert ET.parse(run / "gate.xml").getroot().get("failures") == "0"


def test_github_actions_example_gates_and_publishes_junit():
    from pathlib import Path

    yaml = pytest.importorskip("yaml", reason="PyYAML not installed")
    path = Path(__file__).resolve().parents[1] / "docs" / "github-actions-privaudit.yml"
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    steps = workflow["jobs"]["privaudit"]["steps"]
    runs = " ".join(s.get("run", "") for s in steps)
    assert "privaudit run" in runs and "--gate" in runs
    uploads = [s for s in steps if "junit" in str(s.get("with", {}).get("report_paths", ""))]
    assert uploads and uploads[0]["if"] == "always()"
    assert "results.jsonl" not in str([s.get("with") for s in steps])  # raw PII never leaves the runner
