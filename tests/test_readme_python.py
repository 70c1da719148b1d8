"""README "Using privaudit from Python": its example runs as written, on the embedded model.

The section's first Python block is executed in a temporary working folder whose
`privaudit-runs/setup` is the session's embedded personalized setup (the very files
`build_personalized_setup` would build there, so the example reuses them); then the section's TOML,
the same audit for `privaudit run`, runs through the installed CLI. Both must report the same
metrics (value, interval, n) for the same probes.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def readme_blocks() -> dict[str, str]:
    """The first block of each language in the section (python: the example; toml: its CLI twin)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Using privaudit from Python"):]
    section = section[:section.index("\n## ", 1)]
    return dict((lang, body) for lang, body in reversed(FENCE.findall(section)))


def _metrics(summary_path: Path) -> dict[str, tuple]:
    (entry,) = json.loads(summary_path.read_text(encoding="utf-8"))["results"]
    return {name: (m["value"], m["low"], m["high"], m["n"]) for name, m in entry["metrics"].items()}


@pytest.mark.slow
def test_readme_python_example_matches_privaudit_run(memorized_setup, tmp_path: Path, capsys) -> None:
    from privaudit.cli import main

    blocks = readme_blocks()
    (tmp_path / "privaudit-runs").mkdir()
    (tmp_path / "privaudit-runs" / "setup").symlink_to(memorized_setup.root, target_is_directory=True)
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        namespace: dict = {}
        exec(compile(blocks["python"], "README.md (Using privaudit from Python)", "exec"), namespace)
        (tmp_path / "audit.toml").write_text(blocks["toml"], encoding="utf-8")
        done = CliRunner().invoke(main, ["-q", "run", "audit.toml"], catch_exceptions=False)
    finally:
        os.chdir(here)
    assert done.exit_code == 0, done.output
    printed = capsys.readouterr().out
    result = namespace["result"]
    python_metrics = _metrics(tmp_path / "privaudit-runs" / "python" / "summary.json")
    cli_metrics = _metrics(tmp_path / "privaudit-runs" / "cli" / "summary.json")
    assert python_metrics == cli_metrics
    rate = result.metric("pii.exact_match_rate")
    assert rate.n == len(memorized_setup.train_subjects()) and rate.value > 0.05
    assert f"emails leaked: {rate.value:.2f}" in printed and "gate: fail" in printed
    print("README example pii.exact_match_rate:", python_metrics["exact_match_rate"])
