"""`privaudit run audit.toml`: the whole audit described by a TOML spec, optionally gated.

A thin wrapper over the Python API (`privaudit.audit`), so the CLI and a notebook run one code path.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from privaudit.commands.common import FRESH_HELP, echo_results, progress_from, verbose_option
from privaudit.errors import EXIT_OK


@click.command(name="run")
@click.argument("spec_path", metavar="AUDIT_TOML", type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None, help="Override the spec's output folder.")
@click.option("--seed", type=int, default=None, help="Override the spec's seed.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Override the spec's batch size.")
@click.option("--target", "targets", multiple=True, help="Override the spec's targets (repeatable).")
@click.option("--show-pii", is_flag=True, default=None, help="Show raw PII in reports (masked by default).")
@click.option("--fresh", is_flag=True, help=FRESH_HELP)
@click.option("--gate/--no-gate", default=False, help="Check the spec's [thresholds]: exit 1 if a check fails, 3 if one could not be measured.")
@verbose_option
@click.pass_context
def command(ctx: click.Context, spec_path: Path, out: Path | None, seed: int | None, batch_size: int | None,
            targets: tuple[str, ...], show_pii: bool | None, fresh: bool, gate: bool) -> None:
    """Run every attack of AUDIT_TOML on every target; rerunning resumes where it stopped.

    A rerun on a folder whose target or data files changed is refused (exit 2) unless --fresh."""
    from privaudit.api import audit

    result = audit(list(targets) or None, spec=spec_path, out=out, seed=seed, batch_size=batch_size,
                   show_pii=show_pii, fresh=fresh, progress=progress_from(ctx), source=str(spec_path))
    if not gate:
        echo_results(result.results, result.out)  # with the gate status summary.json holds, if any
    else:
        from privaudit.gate import echo_outcome, run_gate

        outcome = run_gate(result.out, result.spec.thresholds, junit_path=result.out / "junit.xml")
        echo_results(result.results, result.out, gate=outcome.to_dict())
        echo_outcome(outcome)
        if outcome.exit_code != EXIT_OK:  # 1 a check failed, 3 a checked metric could not be measured
            sys.exit(outcome.exit_code)
