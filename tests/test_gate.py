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


# -- the metric contract: direction and kind ------------------------------------------------------
def gap(value, low, high, n=400):
    return {"value": value, "low": low, "high": high, "n": n, "method": "cluster_robust_t", "clusters": 40,
            "kind": "difference", "direction": "two_sided", "unit": "sample", "cluster": "item",
            "pattern": "max_refusal_gap", "name": "max_refusal_gap"}


def gap_summary(**metrics):
    return {"results": [{"attack": "bias", "target": "chat", "metrics": metrics}]}


def test_a_large_negative_two_sided_gap_fails_le_on_its_largest_absolute_bound():
    # a persona refusing 40 points LESS than the control: a safety drop, not a pass
    (check,) = evaluate(gap_summary(max_refusal_gap=gap(-0.40, -0.55, -0.25)), {"bias.max_refusal_gap": "<= 0.10"}).checks
    assert check.status == "fail" and check.direction == "two_sided"
    assert check.compared == pytest.approx(0.55) and check.compared_as == "max |bound|"
    assert "value -0.4 [-0.55, -0.25]" in check.message and "not <= 0.1" in check.message


def test_a_small_two_sided_gap_spanning_zero_passes():
    (check,) = evaluate(gap_summary(max_refusal_gap=gap(-0.02, -0.06, 0.03)), {"bias.max_refusal_gap": "<= 0.10"}).checks
    assert check.status == "pass" and check.compared == pytest.approx(0.06)


def test_a_positive_gap_is_judged_like_its_mirror_image():
    neg = evaluate(gap_summary(g=gap(-0.40, -0.55, -0.25)), {"bias.g": "<= 0.5"}).checks[0]
    pos = evaluate(gap_summary(g=gap(0.40, 0.25, 0.55)), {"bias.g": "<= 0.5"}).checks[0]
    assert neg.compared == pos.compared == pytest.approx(0.55) and neg.status == pos.status == "fail"


def test_ge_on_a_two_sided_metric_uses_the_smallest_absolute_bound():
    # "the gap is at least 0.2 in size": -0.40 [-0.55, -0.25] is (0.25), one spanning 0 is not (0)
    (big,) = evaluate(gap_summary(g=gap(-0.40, -0.55, -0.25)), {"bias.g": ">= 0.2"}).checks
    assert big.status == "pass" and big.compared == pytest.approx(0.25) and big.compared_as == "min |bound|"
    (spans,) = evaluate(gap_summary(g=gap(0.05, -0.01, 0.11)), {"bias.g": ">= 0.01"}).checks
    assert spans.status == "fail" and spans.compared == 0.0
    (value,) = evaluate(gap_summary(g=gap(-0.40, -0.55, -0.25)), {"bias.g": {"max": 0.45, "bound": "value"}}).checks
    assert value.status == "pass" and value.compared == pytest.approx(0.40) and value.compared_as == "|value|"


def test_one_sided_directions_keep_the_conservative_bounds():
    lower = {**est(0.30, 0.20, 0.40), "kind": "difference", "direction": "lower_is_worse"}
    (ge,) = evaluate({"results": [{"attack": "attributes", "target": "t", "metrics": {"drop": lower}}]},
                     {"attributes.drop": ">= 0.25"}).checks
    assert ge.status == "fail" and ge.compared == pytest.approx(0.20) and ge.compared_as == "lower"


def point(value, method="accountant"):
    return {"value": value, "low": value, "high": value, "n": 0, "method": method, "clusters": None,
            "kind": "point", "direction": "higher_is_worse", "unit": "variant", "cluster": None}


def test_point_and_count_kinds_are_gateable_with_n_zero():
    summary = {"results": [{"attack": "compare", "target": "defenses", "metrics": {
        "epsilon.dp_sgd": point(7.9), "heldout_perplexity.dp_sgd": point(31.0, "point"),
        "significant": {**point(2.0, "count"), "kind": "count"},
        "rate": {**est(None, None, None, 0), "kind": "proportion", "direction": "higher_is_worse"}}}]}
    out = evaluate(summary, {"compare.epsilon.dp_sgd": "<= 8", "compare.heldout_perplexity.dp_sgd": "<= 30",
                             "compare.significant": "<= 2", "compare.rate": "<= 0.5"})
    assert [(c.metric, c.status) for c in out.checks] == [
        ("epsilon.dp_sgd", "pass"), ("heldout_perplexity.dp_sgd", "fail"), ("significant", "pass"), ("rate", "unmeasured")]
    assert "(point)" in out.checks[0].message


def test_junit_and_markdown_show_the_two_sided_check():
    from privaudit.reports.junit import render_junit
    from privaudit.reports.markdown import render_markdown

    summary = gap_summary(max_refusal_gap=gap(-0.40, -0.55, -0.25))
    thresholds = {"bias.max_refusal_gap": "<= 0.10"}
    summary = {"schema_version": "2.0", **summary, "gate": {"thresholds": thresholds, "error": None,
                                                            **evaluate(summary, thresholds).to_dict()}}
    root = ET.fromstring(render_junit(summary).split("\n", 1)[1])
    (case,) = root.iter("testcase")
    failure = case.find("failure")
    assert failure is not None and "max |bound| 0.55 not <= 0.1" in failure.get("message")
    assert "value -0.4 [-0.55, -0.25]" in failure.get("message")
    assert "direction=two_sided" in case.find("system-out").text
    md = render_markdown(summary)
    row = next(line for line in md.splitlines() if line.startswith("| bias.max\\_refusal\\_gap@chat"))
    assert "max \\|bound\\| &lt;= 0.1" in row and "0.55" in row and "-0.4 \\[-0.55, -0.25\\]" in row and "❌ FAIL" in row
    metric_row = next(line for line in md.splitlines() if line.startswith("| bias | chat |"))
    assert "max\\_refusal\\_gap ±" in metric_row and "400 sample (40 item)" in metric_row


# -- thresholds checked when the spec loads (before a run folder exists or a model loads) ---------
def _spec(tmp_path, thresholds: str, attacks: str = "[attacks.bias]\n"):
    path = tmp_path / "audit.toml"
    path.write_text(f'targets = ["builtin:smollm2-135m"]\nout = "{(tmp_path / "run").as_posix()}"\n{attacks}'
                    f"[thresholds]\n{thresholds}", encoding="utf-8")
    return path


def _run_cli(path):
    import time

    start = time.perf_counter()
    result = CliRunner().invoke(main, ["run", str(path), "--gate"])
    return result, time.perf_counter() - start


def test_a_threshold_on_a_metric_bias_does_not_declare_fails_at_load_listing_the_real_names(tmp_path):
    # README and the workflow example once used bias.max_gap: after every model ran, exit 2
    from privaudit.attacks.base import get_attack

    result, seconds = _run_cli(_spec(tmp_path, 'bias.max_gap = "<= 0.10"\n'))
    print(f"bias.max_gap rejected in {seconds:.3f} s")
    assert result.exit_code == 2 and "Traceback" not in result.output
    (line,) = result.output.strip().splitlines()  # one line
    assert "bias.max_gap" in line and "has no metric 'max_gap'" in line
    assert "max_refusal_gap" in line and all(p in line for p in get_attack("bias").metrics.patterns())
    assert not (tmp_path / "run").exists() and seconds < 5


def test_an_unknown_metric_of_a_declared_attack_lists_its_metrics(tmp_path):
    result, seconds = _run_cli(_spec(tmp_path, 'membership.auc_lira = "<= 0.6"\n',
                                     '[attacks.membership]\ncorpus = "c.jsonl"\n'))
    (line,) = result.output.strip().splitlines()
    assert result.exit_code == 2 and "'auc_lira'" in line
    assert "auc.loss" in line and "tpr_at_0p1pct_fpr" in line and "max_exposure_bits" in line
    assert not (tmp_path / "run").exists() and seconds < 5


def test_an_attack_not_in_the_audit_fails_at_load(tmp_path):
    result, seconds = _run_cli(_spec(tmp_path, 'pii.exact_match_rate = "<= 0.05"\n',
                                     '[attacks.membership]\ncorpus = "c.jsonl"\n'))
    print(f"unknown attack rejected in {seconds:.3f} s")
    (line,) = result.output.strip().splitlines()
    assert result.exit_code == 2 and "attack 'pii' is not in this audit (attacks: membership)" in line
    assert not (tmp_path / "run").exists() and seconds < 5


@pytest.mark.parametrize("status", ["failed", "interrupted", "running"])
def test_gating_a_run_that_did_not_finish_is_refused_with_exit_3(tmp_path, status, fixture_attack):
    """A part of the results can pass where the whole would fail: an unfinished run carries no verdict."""
    run = tmp_path / "run"
    write_run(run, make_subjects(4))
    manifest = json.loads((run / "manifest.json").read_text())
    manifest.update(status=status, error="boom: the endpoint went away" if status == "failed" else None)
    (run / "manifest.json").write_text(json.dumps(manifest))
    cfg = tmp_path / "t.toml"
    cfg.write_text('[thresholds]\n"reportfixture.exact_match_rate" = "<= 0.999"\n')
    result = CliRunner().invoke(main, ["gate", str(run), "--config", str(cfg)])
    assert result.exit_code == 3, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and f"the run is '{status}'" in lines[0] and "rerun it" in lines[0]


# -- renamed metrics: old names accepted for one release, with a warning --------------------------
@pytest.fixture
def fresh_warnings():
    from privaudit.gate import RENAMES_WARNED

    RENAMES_WARNED.clear()  # the gate warns once per old name and process
    yield
    RENAMES_WARNED.clear()


def _attribute_declarations():
    from privaudit.attacks.base import get_attack

    return {"attributes": (get_attack("attributes").metrics, [])}


def test_an_old_metric_name_passes_the_spec_check_with_one_warning_line(fresh_warnings, capsys):
    from privaudit.gate import check_thresholds

    check_thresholds({"attributes.top1_age": "<= 0.5", "attributes.top1_hardness3": "<= 0.5",
                      "attributes.top1.sex": "<= 0.5"}, _attribute_declarations(), where="audit.toml: thresholds")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2  # the current name attributes.top1.sex is not warned about
    assert "attributes.top1_age is deprecated, renamed attributes.top1.age" in lines[0]
    assert "audit.toml: thresholds" in lines[0]
    assert "attributes.top1_hardness3 is deprecated, renamed attributes.top1.hardness3" in lines[1]


def test_a_misspelt_name_still_fails_and_the_error_lists_only_current_names():
    from privaudit.gate import check_thresholds

    with pytest.raises(InputError, match="has no metric 'top1_agee'") as err:
        check_thresholds({"attributes.top1_agee": "<= 0.5"}, _attribute_declarations())
    assert "top1.age" in str(err.value) and "top1_age," not in str(err.value)


def _attribute_summary(*names):
    return {"results": [{"attack": "attributes", "target": "t",
                         "metrics": {n: est(0.4, 0.3, 0.5) for n in names}}]}


def test_the_gate_reads_an_old_threshold_name_as_the_renamed_metric(fresh_warnings, capsys):
    outcome = evaluate(_attribute_summary("top1", "top1.age"), {"attributes.top1_age": "<= 0.45"})
    (check,) = outcome.checks
    assert (check.key, check.metric, check.status, check.compared) == ("attributes.top1_age", "top1.age", "fail", 0.5)
    assert check.name == "attributes.top1.age@t"
    (line,) = capsys.readouterr().err.splitlines()
    assert "attributes.top1_age is deprecated, renamed attributes.top1.age" in line


def test_the_gate_finds_a_current_name_in_a_summary_written_before_the_rename(fresh_warnings, capsys):
    outcome = evaluate(_attribute_summary("top1", "top1_age", "top3_hardness2"),
                       {"attributes.top1.age": "<= 0.6", "attributes.top3.hardness2": "<= 0.6"})
    assert [(c.metric, c.status) for c in outcome.checks] == [("top1.age", "pass"), ("top3.hardness2", "pass")]
    assert capsys.readouterr().err == ""  # the thresholds use current names


def test_old_names_warn_once_per_process(fresh_warnings, capsys):
    from privaudit.gate import check_thresholds

    thresholds = {"attributes.top1_age": "<= 0.45"}
    check_thresholds(thresholds, _attribute_declarations(), where="audit.toml: thresholds")
    evaluate(_attribute_summary("top1.age"), thresholds)  # a run gated after its spec loaded
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_old_membership_names_map_to_the_scheme(fresh_warnings):
    from privaudit.attacks.base import get_attack

    specs = get_attack("membership").metrics
    assert specs.current_name("auc_loss") == "auc.loss"
    assert specs.current_name("tpr_at_0.1pct_fpr") == "tpr_at_0p1pct_fpr"
    assert specs.current_name("tpr_at_1pct_fpr") == "tpr_at_1pct_fpr"
    assert {"auc.loss", "tpr_at_0p1pct_fpr"} <= set(specs.patterns()) and "auc_loss" not in specs.patterns()


def test_an_old_name_in_an_audit_spec_warns_on_stderr_and_the_spec_loads(fresh_warnings, tmp_path):
    path = _spec(tmp_path, 'membership.auc_loss = "<= 0.6"\n"membership.tpr_at_0.1pct_fpr" = "<= 0.1"\n',
                 '[attacks.membership]\ncorpus = "c.jsonl"\n')
    from privaudit.audit import load_audit_spec

    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        spec = load_audit_spec(path)
    assert spec.thresholds
    lines = err.getvalue().splitlines()
    assert len(lines) == 2 and all(line.startswith("privaudit: warning: ") for line in lines)
    assert "membership.auc_loss is deprecated, renamed membership.auc.loss" in lines[0]
    assert "membership.tpr_at_0.1pct_fpr is deprecated, renamed membership.tpr_at_0p1pct_fpr" in lines[1]
