"""`privaudit attack cross-user`: the N x N matrix of every user's model probed for every user's PII."""

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


@click.command(name="cross-user")
@target_option()
@click.option("--subjects", "subjects", type=click.Path(path_type=Path), required=True,
              help="Data subjects JSONL holding every user's subjects.")
@out_option("privaudit-runs/cross-user")
@click.option("--user", "users", multiple=True, help="Only these users (repeatable).  [default: all]")
@click.option("--max-subjects-per-user", type=click.IntRange(min=0), default=None, help="First N subjects per user.")
@click.option("--pii-type", "pii_types", multiple=True, help="Only these PII fields (repeatable).")
@click.option("--level", "levels", type=click.IntRange(1, 3), multiple=True,
              help="Association levels (repeatable).  [default: 1, name only]")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=None, help="Tokens generated per probe.")
@seed_option
@batch_size_option
@show_pii_option
@click.pass_context
def command(ctx: click.Context, target: str, subjects: Path, out: Path, users: tuple[str, ...],
            max_subjects_per_user: int | None, pii_types: tuple[str, ...], levels: tuple[int, ...],
            max_new_tokens: int | None, seed: int, batch_size: int, show_pii: bool) -> None:
    """Cross-user leakage on per-user targets: peruser:MANIFEST.json (adapter specs), peruser:FEDERATED_OUT,
    or rag:/profile:. Reports the matrix, the worst off-diagonal cell and diagonal minus off-diagonal."""
    params = {"subjects": str(subjects), "users": list(users) or None, "max_subjects_per_user": max_subjects_per_user,
              "pii_types": list(pii_types) or None, "levels": list(levels) or None, "max_new_tokens": max_new_tokens}
    run_attack_command(ctx, "cross_user", params, target=target, out=out, seed=seed, batch_size=batch_size,
                       show_pii=show_pii)
