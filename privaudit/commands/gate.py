"""`privaudit gate RUN_DIR`: check a finished run against thresholds; exit 0 pass / 1 fail / 2 usage / 3 unmeasured."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command(name="gate")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--config", "config", type=click.Path(path_type=Path), default=None,
              help="Audit TOML with a [thresholds] table (default: the thresholds the run was reported with).")
@click.option("--junit", "junit", type=click.Path(path_type=Path), default=None,
              help="Also write the checks as JUnit XML to this file.")
def command(run_dir: Path, config: Path | None, junit: Path | None) -> None:
    """Print one line per threshold check of RUN_DIR and exit with the gate's code."""
    from privaudit.errors import InputError
    from privaudit.gate import echo_outcome, load_thresholds, run_gate
    from privaudit.reports.rundir import load_summary

    if config is not None:
        thresholds, where = load_thresholds(config), f"{config}: thresholds"
    else:
        gate = load_summary(run_dir).get("gate") or {}
        thresholds, where = gate.get("thresholds"), f"{run_dir}/summary.json: gate.thresholds"
        if not thresholds:
            raise InputError(f"{run_dir}: the run has no thresholds; pass --config AUDIT_TOML with a [thresholds] table")
    outcome = run_gate(run_dir, thresholds, junit_path=junit, where=where)
    echo_outcome(outcome)
    sys.exit(outcome.exit_code)
