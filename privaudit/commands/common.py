"""Options and the run-one-attack path shared by every command, so all commands behave alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from privaudit.audit import AuditSpec, run_audit
from privaudit.attacks.base import AttackResult, get_attack
from privaudit.progress import ProgressReporter


def target_option(required: bool = True) -> Callable:
    return click.option(
        "--target", "-t", "target", required=required,
        help="Model to audit: hf:PATH[:adapter=PATH], builtin:smollm2-135m, openai:URL#MODEL[;api_key_env=VAR].",
    )


FRESH_META = "privaudit.fresh"
FRESH_HELP = ("Discard the run folder's results (and its cache and reports) and start over; without it a "
              "rerun resumes, and is refused when the model or a data file changed.")


VERBOSE_META = "privaudit.verbose"
VERBOSE_HELP = "Print every metric after the run, not only each attack's headline metrics."


def _remember_fresh(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    ctx.meta[FRESH_META] = value
    return value


def _remember_verbose(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    ctx.meta[VERBOSE_META] = value
    return value


# `--verbose` for every command that ends with the terminal summary (run, demo, attack ...); it
# reaches `echo_results` through the Click context, like `--fresh`.
verbose_option = click.option("--verbose", "-v", is_flag=True, expose_value=False, callback=_remember_verbose,
                              help=VERBOSE_HELP)


def out_option(default: str) -> Callable:
    """`--out` plus `--fresh` and `--verbose`, which every command writing a run folder needs; they
    reach `run_attack_command` through the Click context, so the attack commands' signatures stay."""
    out = click.option("--out", "-o", type=click.Path(path_type=Path), default=default, show_default=True,
                       help="Run folder (created user-only); rerunning into it resumes.")
    fresh = click.option("--fresh", is_flag=True, expose_value=False, callback=_remember_fresh, help=FRESH_HELP)
    return lambda f: out(fresh(verbose_option(f)))


seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Seed for every random choice.")
batch_size_option = click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
                                 help="Prompts per batched generate/score call.")
show_pii_option = click.option("--show-pii", is_flag=True, help="Show raw PII in reports (masked by default).")


def progress_from(ctx: click.Context) -> ProgressReporter:
    quiet = bool((ctx.find_root().obj or {}).get("quiet", False))
    return ProgressReporter(quiet=quiet)


def run_attack_command(
    ctx: click.Context, attack: str, params: dict[str, Any], *, target: str, out: Path, seed: int,
    batch_size: int, show_pii: bool = False,
) -> list[AttackResult]:
    """Validate params, run one attack on one target through the audit runner, print a summary."""
    params = {k: v for k, v in params.items() if v is not None}
    get_attack(attack).from_config(params, f"privaudit attack {attack}")
    spec = AuditSpec(targets=[target], attacks={attack: params}, out=out, seed=seed, batch_size=batch_size,
                     show_pii=show_pii)
    progress = progress_from(ctx)
    results = run_audit(spec, progress=progress, source=f"privaudit attack {attack}",
                        fresh=bool(ctx.meta.get(FRESH_META, False)))
    echo_results(results, out)
    return results


def echo_results(results: list[AttackResult], out: Path, gate: dict[str, Any] | None = None) -> None:
    """The terminal summary (privaudit.terminal): per attack its headline metrics with interval, n
    and gate status (every metric with `--verbose`), then where the report is."""
    from privaudit.terminal import print_summary

    ctx = click.get_current_context(silent=True)
    verbose = bool(ctx is not None and ctx.meta.get(VERBOSE_META, False))
    print_summary(results, out, gate=gate, verbose=verbose)
