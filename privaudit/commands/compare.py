"""`privaudit compare`: every defended variant of one base and corpus, the same attacks, one table.

compare.toml may carry a `[thresholds]` table (e.g. `"compare.epsilon.dp_sgd" = "<= 8"`); it is
checked against the declared metrics when the file loads, before anything trains, and `--gate`
turns it into the exit code (0 pass, 1 a check failed, 3 could not measure), as `privaudit run`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from privaudit.commands.common import progress_from


@click.command(name="compare")
@click.argument("config_arg", metavar="[COMPARE_TOML]", required=False, type=click.Path(path_type=Path))
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None, help="compare.toml.")
@click.option("--base", default=None, help="Base model: hf:PATH.")
@click.option("--corpus", type=click.Path(path_type=Path), default=None, help="Personal corpus (JSONL).")
@click.option("--subjects", type=click.Path(path_type=Path), default=None, help="Data subjects (JSONL).")
@click.option("--defense", "defenses", multiple=True,
              help="Defense to compare with default settings (repeatable); overrides the TOML's [defenses].")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None, help="Run folder (rerun resumes).")
@click.option("--seed", type=int, default=None, help="Seed.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Prompts per batched call.")
@click.option("--show-pii", is_flag=True, default=None, help="Show raw PII in reports (masked by default).")
@click.option("--gate/--no-gate", default=False,
              help="Check compare.toml's [thresholds]: exit 1 if a check fails, 3 if one could not be measured.")
@click.pass_context
def command(ctx: click.Context, config_arg: Path | None, config_path: Path | None, base: str | None,
            corpus: Path | None, subjects: Path | None, defenses: tuple[str, ...], out: Path | None,
            seed: int | None, batch_size: int | None, show_pii: bool | None, gate: bool) -> None:
    """Train or reuse each defended variant, run the same attacks on each, write the trade-off table."""
    from privaudit.compare import DEFAULT_DEFENSES, CompareSpec, load_compare_spec, run_comparison
    from privaudit.errors import InputError

    path = config_path or config_arg
    chosen = {d: dict(DEFAULT_DEFENSES.get(d, {})) for d in defenses} or None
    overrides = dict(base=base, corpus=corpus, subjects=subjects, defenses=chosen, out=out, seed=seed,
                     batch_size=batch_size, show_pii=show_pii)
    if path is not None:
        spec = load_compare_spec(path, **overrides)
    else:
        missing = [f"--{k}" for k in ("base", "corpus", "subjects") if overrides[k] is None]
        if missing:
            raise InputError(f"compare: {missing[0]} is required without a compare.toml")
        spec = CompareSpec(**{k: v for k, v in overrides.items() if v is not None})
    if gate and not spec.thresholds:
        raise InputError(f"{path or 'privaudit compare'}: --gate needs a [thresholds] table in compare.toml")
    result = run_comparison(spec, progress=progress_from(ctx), source=str(path or "privaudit compare"))
    cols = [c for c in result.table.columns if c in (
        "variant", "pii.exact_match_rate", "pii.likelihood_top1_rate", "membership.auc", "epsilon",
        "empirical_epsilon_lower", "claim_violated", "context.verbatim_leak_rate", "context.cross_user_subject_rate",
        "heldout_perplexity", "base_heldout_perplexity", "train_seconds")]
    click.echo(result.table[cols].to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    click.echo(f"run folder: {result.out} (comparison.csv, comparison.json, report.html)")
    if gate:
        from privaudit.errors import EXIT_OK
        from privaudit.gate import echo_outcome, run_gate

        outcome = run_gate(result.out, spec.thresholds, junit_path=result.out / "junit.xml")
        echo_outcome(outcome)
        if outcome.exit_code != EXIT_OK:
            sys.exit(outcome.exit_code)
