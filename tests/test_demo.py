"""`privaudit demo` end to end on the embedded default (the builtin chat probes are skipped here:
they are covered by the bias and attribute tests; the full demo is benchmarked in benchmarks/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from privaudit.cli import main


@pytest.mark.slow
def test_demo_audits_the_personalized_model_gates_and_resumes(tmp_path: Path, memorized_setup) -> None:
    out = tmp_path / "demo"
    out.mkdir()
    # The demo builds exactly the fixture's setup (same recipe and seed); reuse it instead of retraining.
    (out / "setup").symlink_to(memorized_setup.root, target_is_directory=True)
    runner = CliRunner()

    first = runner.invoke(main, ["--quiet", "demo", "--out", str(out), "--no-builtin", "--gate"])

    audit = out / "audit"
    summary = json.loads((audit / "summary.json").read_text(encoding="utf-8"))
    attacks = {(r["attack"], r["target"]) for r in summary["results"]}
    assert {a for a, _ in attacks} >= {"pii", "membership", "compare"}
    # the defense comparison is part of the audit's report: every variant, with the trade-off chart
    compare = next(r for r in summary["results"] if r["attack"] == "compare")
    assert compare["provenance"]["variants"] == ["none", "scrub", "dp_sgd", "dp_sgd_subject", "federated"]
    assert any(c["kind"] == "scatter" for c in compare["charts"].values())
    assert compare["metrics"]["epsilon.dp_sgd_subject"]["value"] <= 8.0 + 1e-6
    # the terminal summary fits on one screen: one compact table per attack, headline metrics only
    assert len(first.output.splitlines()) <= 40, first.output
    assert "compare: 5 defense variants" in first.output
    assert (audit / "report.html").exists() and (audit / "junit.xml").exists()
    assert (out / "audit.toml").exists()
    # The personalized model memorized its corpus: the demo's gate fails (exit 1), as documented.
    assert first.exit_code == 1, first.output
    assert "FAIL" in first.output.upper()
    lines_before = (audit / "results.jsonl").read_text(encoding="utf-8").count("\n")
    compared_before = (out / "compare" / "results.jsonl").read_text(encoding="utf-8").count("\n")

    again = runner.invoke(main, ["--quiet", "demo", "--out", str(out), "--no-builtin"])

    assert again.exit_code == 0, again.output
    assert (audit / "results.jsonl").read_text(encoding="utf-8").count("\n") == lines_before
    assert (out / "compare" / "results.jsonl").read_text(encoding="utf-8").count("\n") == compared_before
