"""`privaudit attack context`: make a rag:/profile: target repeat its retrieved context (Zeng et al. 2024)."""

from __future__ import annotations

from pathlib import Path

import click

from privaudit.commands.common import (
    batch_size_option,
    out_option,
    run_attack_command,
    seed_option,
    show_pii_option,
    target_option,
)


@click.command(name="context")
@target_option()
@click.option("--subjects", "subjects", type=click.Path(path_type=Path), required=True,
              help="Data subjects JSONL: whose PII counts as revealed, and whom targeted prompts name.")
@out_option("privaudit-runs/context")
@click.option("--max-subjects", type=click.IntRange(min=0), default=None, help="Only the first N subjects.")
@click.option("--variant", "variants", type=click.Choice(["targeted", "untargeted", "injection"]), multiple=True,
              help="Prompt variants (repeatable).  [default: all three]")
@click.option("--askers", type=click.Choice(["other", "self", "both"]), default=None,
              help="Who asks about subject A: another user (cross-user), A, or both.  [default: both]")
@click.option("--command", "commands", multiple=True, help="Command ids of the prompts file (repeatable).")
@click.option("--prompts", "prompts_file", type=click.Path(path_type=Path), default=None,
              help="Prompts JSON (layout of attacks/data/context_prompts.json).")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=None, help="Tokens generated per request.")
@seed_option
@batch_size_option
@show_pii_option
@click.pass_context
def command(ctx: click.Context, target: str, subjects: Path, out: Path, max_subjects: int | None,
            variants: tuple[str, ...], askers: str | None, commands: tuple[str, ...], prompts_file: Path | None,
            max_new_tokens: int | None, seed: int, batch_size: int, show_pii: bool) -> None:
    """Context extraction: targeted, untargeted and injected prompts; verbatim/ROUGE-L leakage, PII revealed
    per subject, cross-user leakage (user B's request revealing A's PII)."""
    params = {"subjects": str(subjects), "max_subjects": max_subjects, "variants": list(variants) or None,
              "askers": askers, "commands": list(commands) or None,
              "prompts_file": str(prompts_file) if prompts_file else None, "max_new_tokens": max_new_tokens}
    run_attack_command(ctx, "context", params, target=target, out=out, seed=seed, batch_size=batch_size,
                       show_pii=show_pii)
