"""`privaudit report RUN_DIR`: re-render a run's reports from its folder (masked by default)."""

from __future__ import annotations

from pathlib import Path

import click

from privaudit.commands.common import show_pii_option

FORMAT_CHOICES = ("all", "html", "json", "junit", "markdown")


@click.command(name="report")
@click.argument("run_dir", type=click.Path(path_type=Path))
@show_pii_option
@click.option("--format", "-f", "formats", multiple=True, type=click.Choice(FORMAT_CHOICES), default=("all",),
              show_default=True, help="Report format to write (repeatable).")
@click.option("--config", "config", type=click.Path(path_type=Path), default=None,
              help="Audit TOML whose [thresholds] the report's verdict uses (default: the run's own).")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="Folder to write the reports into (default: RUN_DIR).")
def command(run_dir: Path, show_pii: bool, formats: tuple[str, ...], config: Path | None, out: Path | None) -> None:
    """Write report.html, summary.json, junit.xml and summary.md for RUN_DIR from its records."""
    from privaudit.gate import load_thresholds
    from privaudit.reports.rundir import render_run

    thresholds = load_thresholds(config) if config is not None else None
    chosen = None if "all" in formats else list(dict.fromkeys(formats))
    written = render_run(run_dir, show_pii=show_pii, formats=chosen, thresholds=thresholds, out=out)
    if show_pii:
        click.echo("privaudit: warning: reports show raw PII (--show-pii); treat them as confidential", err=True)
    for name, path in written.items():
        click.echo(f"{name}: {path}")
