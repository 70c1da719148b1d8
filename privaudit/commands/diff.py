"""`privaudit diff RUN_A RUN_B`: the paired change of every shared metric, and a gate on the changes.

The pull-request check of a model change: run the same audit on the old and the new model, then
`privaudit diff old-run new-run --config diff.toml --junit diff-junit.xml`. Exit codes as the gate:
0 pass, 1 a change threshold failed, 2 bad input, 3 a run folder did not finish (or a checked
change could not be measured).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from privaudit.errors import EXIT_OK


@click.command(name="diff")
@click.argument("run_a", metavar="RUN_A", type=click.Path(path_type=Path))
@click.argument("run_b", metavar="RUN_B", type=click.Path(path_type=Path))
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help='diff.toml with a [thresholds] table of changes, e.g. "pii.exact_match_rate" = {max_increase = 0.0}.')
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Write every shared metric's change as JSON here.")
@click.option("--junit", "junit_path", type=click.Path(path_type=Path), default=None,
              help="Write one JUnit test case per change threshold and target pair here.")
@click.option("--verbose", "-v", is_flag=True, help="Print every shared metric, not only the headline and checked ones.")
def command(run_a: Path, run_b: Path, config_path: Path | None, json_path: Path | None, junit_path: Path | None,
            verbose: bool) -> None:
    """Compare two runs of the same audit on two model versions: per metric the paired change B - A."""
    from privaudit.diff import diff_runs, junit_summary, load_change_thresholds
    from privaudit.engine.store import write_text_atomic
    from privaudit.terminal import print_changes

    conditions = load_change_thresholds(config_path) if config_path is not None else []  # before any run is read
    outcome = diff_runs(run_a, run_b, conditions)
    print_changes(outcome, verbose=verbose)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(json_path, json.dumps(outcome.to_dict(), indent=2, allow_nan=False) + "\n")
    if junit_path is not None:
        from privaudit.reports.junit import write_junit

        write_junit(junit_path, junit_summary(outcome, conditions))
    if conditions:
        checked = outcome.checked
        failed = sum(c.status == "fail" for c in checked)
        click.echo(f"diff: {outcome.status.upper()} ({failed} of {len(checked)} checked changes failed)")
    if outcome.exit_code != EXIT_OK:
        sys.exit(outcome.exit_code)
