"""`privaudit demo`: run the main job on the embedded default (no network, 2 CPU cores)."""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import click

from privaudit.commands.common import VERBOSE_META, echo_results, progress_from, seed_option, verbose_option
from privaudit.demo import DemoOptions, run_demo
from privaudit.errors import EXIT_GATE_FAILED


# Library warnings every demo run raises on its embedded setup and that no demo user can act on
# (Opacus' experimental-RNG and accountant notes, a PyTorch hook note on the frozen embedding,
# a transformers rename): the demo's terminal output is its summary. `privaudit defend`/`compare`
# still show them.
DEMO_QUIET_WARNINGS = (
    r"Secure RNG turned off", r"Optimal order is the (largest|smallest) alpha", r"Full backward hook is firing",
    r"`is_gradient_checkpointing` is deprecated",
)


@click.command(name="demo")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="Folder for the demo's data, models and run (rerunning resumes) "
                   "[default: privaudit-runs/demo, with --real privaudit-runs/demo-real].")
@seed_option
@click.option("--no-builtin", is_flag=True, help="Skip the probes on the builtin SmolLM2 chat model.")
@click.option("--show-pii", is_flag=True, help="Show raw PII in reports (masked by default).")
@click.option("--gate", is_flag=True, help="Exit 1 when the demo's thresholds fail (they do: the fine-tune leaks).")
@click.option("--real", is_flag=True,
              help="Audit SmolLM2-135M personalized with a LoRA adapter (trained once per machine) instead of "
                   "the tiny toy; longer (see README).")
@verbose_option
@click.pass_context
def command(ctx: click.Context, out: Path | None, seed: int, no_builtin: bool, show_pii: bool, gate: bool,
            real: bool) -> None:
    """Build a personalized tiny model with planted PII, audit it and SmolLM2, write the report."""
    started = time.perf_counter()
    out = out or Path("privaudit-runs/demo-real" if real else "privaudit-runs/demo")
    opts = DemoOptions(out=out, seed=seed, builtin=not no_builtin, show_pii=show_pii)
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
    click.echo(f"demo finished in {time.perf_counter() - started:.0f} s")
    if gate and not gate_outcome.passed:
        sys.exit(EXIT_GATE_FAILED)
