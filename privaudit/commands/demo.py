"""`privaudit demo`: run the main job on the embedded default (no network, 2 CPU cores)."""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import click

from privaudit.commands.common import VERBOSE_META, echo_results, progress_from, seed_option, verbose_option
from privaudit.demo import DEMO_QUIET_WARNINGS, DemoOptions, run_demo
from privaudit.errors import EXIT_GATE_FAILED


@click.command(name="demo")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="Folder for the demo's data, models and run (rerunning resumes) "
                   "[default: privaudit-runs/demo, with --real privaudit-runs/demo-real].")
@seed_option
@click.option("--no-builtin", is_flag=True, help="Skip the probes on the builtin SmolLM2 chat model.")
@click.option("--show-pii", is_flag=True, help="Show raw PII in reports (masked by default).")
@click.option("--rag", is_flag=True, help="Also audit SmolLM2 as a RAG generator over the demo's corpus "
              "(shared vs per-user store, context extraction; a few minutes more).")
@click.option("--gate", is_flag=True, help="Exit 1 when the demo's thresholds fail (they do: the fine-tune leaks).")
@click.option("--real", is_flag=True,
              help="Audit SmolLM2-135M personalized with a LoRA adapter (trained once per machine) instead of "
                   "the tiny toy; longer (see README).")
@verbose_option
@click.pass_context
def command(ctx: click.Context, out: Path | None, seed: int, no_builtin: bool, show_pii: bool, rag: bool, gate: bool,
            real: bool) -> None:
    """Build a personalized tiny model with planted PII, audit it and SmolLM2, write the report."""
    started = time.perf_counter()
    if real and rag:
        raise click.UsageError("--rag audits the toy demo's corpus; it does not combine with --real")
    out = out or Path("privaudit-runs/demo-real" if real else "privaudit-runs/demo")
    opts = DemoOptions(out=out, seed=seed, builtin=not no_builtin, show_pii=show_pii, rag=rag)
    with warnings.catch_warnings():
        for message in DEMO_QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        if real:
            from privaudit.demo_real import run_real_demo

            outcome = run_real_demo(opts, progress=progress_from(ctx))
        else:
            outcome = run_demo(opts, progress=progress_from(ctx))
    from privaudit.gate import echo_outcome, run_gate

    gate_outcome = run_gate(outcome.spec.out, outcome.spec.thresholds, junit_path=outcome.spec.out / "junit.xml")
    echo_results(outcome.results, outcome.spec.out, gate=gate_outcome.to_dict())
    # each check's status is in the tables above; its message with --verbose (and in junit.xml, report.html)
    echo_outcome(gate_outcome, checks=bool(ctx.meta.get(VERBOSE_META, False)))
    click.echo(f"audit spec: {outcome.spec_path}  (rerun with: privaudit run {outcome.spec_path})")
    if outcome.compare_spec_path is not None:
        click.echo(f"comparison: {outcome.compare_spec_path}  (rerun with: privaudit compare {outcome.compare_spec_path})")
    if outcome.rag_results is not None and outcome.rag_spec is not None:
        echo_results(outcome.rag_results, outcome.rag_spec.out)
        click.echo(f"rag part: {outcome.rag_spec_path}  (rerun with: privaudit run {outcome.rag_spec_path})")
    click.echo(f"demo finished in {time.perf_counter() - started:.0f} s")
    if gate and not gate_outcome.passed:
        sys.exit(EXIT_GATE_FAILED)
