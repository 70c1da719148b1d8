"""summary.md: verdict line, gate and metric tables for a PR comment, untrusted text escaped."""

from __future__ import annotations

import pytest

from privaudit.reports.markdown import METRIC_ROW_LIMIT, md_escape, render_markdown
from report_fixtures import ATTACK_NAME, make_subjects, registered_fixture_attack, write_run


@pytest.fixture
def fixture_attack():
    yield from registered_fixture_attack()


def table_rows(md: str, header: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header line starts with `header`."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_failed_gate_summary_from_a_run(fixture_attack, tmp_path):
    run = tmp_path / "run"
    write_run(run, make_subjects(4), thresholds={f"{ATTACK_NAME}.exact_match_rate": "<= 0.99",
                                                 f"{ATTACK_NAME}.top1_rate@tiny-b": {"max": 0.0001}})
    md = (run / "summary.md").read_text(encoding="utf-8")
    assert md.startswith("## privaudit")
    assert "**❌ Gate FAILED**: 1 of 3 checks failed." in md
    checks = table_rows(md, "| Check |")
    assert [r[-1] for r in checks] == ["✅ pass", "✅ pass", "❌ FAIL"]
    assert checks[2][0] == f"{ATTACK_NAME}.top1\\_rate@tiny-b"
    metrics = table_rows(md, "| Attack |")
    assert len(metrics) == 6  # 3 metrics x 2 targets
    assert all(len(r) == 6 for r in metrics)
    assert "PII masked" in md


def test_passing_and_unconfigured_verdicts():
    est = {"value": 0.0, "low": 0.0, "high": 0.1, "n": 30}
    base = {"results": [{"attack": "pii", "target": "t", "metrics": {"rate": est}}]}
    assert "No thresholds configured" in render_markdown({**base, "gate": None})
    ok = render_markdown({**base, "gate": {"status": "pass", "checks": [
        {"attack": "pii", "metric": "rate", "target": "t", "bound": "upper", "op": "<=", "threshold": 0.2,
         "compared": 0.1, "status": "pass"}]}})
    assert "**✅ Gate passed**: all 1 checks passed." in ok
    assert "Gate configuration error" in render_markdown({**base, "gate": {"error": "bad key", "checks": []}})


def test_untrusted_text_cannot_inject_markup_or_break_tables():
    evil = "<img src=x onerror=alert(1)> | [link](http://x) **bold** `code`\nnext line"
    md = render_markdown({"results": [{"attack": evil, "target": evil, "metrics": {evil: {"value": 1.0}}}]})
    assert "<img" not in md and "&lt;img" in md
    (row,) = table_rows(md, "| Attack |")
    assert len(row) == 6  # the pipe inside the text did not add a column
    assert "\\[link\\]\\(http://x\\)" in md and "\\*\\*bold\\*\\*" in md
    assert "\n" not in md_escape("a\nb")


def test_long_metric_lists_are_cut_with_a_note():
    metrics = {f"m{i}": {"value": 0.5, "low": 0.4, "high": 0.6, "n": 10} for i in range(METRIC_ROW_LIMIT + 5)}
    md = render_markdown({"results": [{"attack": "a", "target": "t", "metrics": metrics}]})
    assert len(table_rows(md, "| Attack |")) == METRIC_ROW_LIMIT
    assert "5 more metrics in summary.json" in md
