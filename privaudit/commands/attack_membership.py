"""`privaudit attack membership`: membership inference on a corpus' documents, and canary exposure."""

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

METHODS = ("loss", "zlib", "min_k", "min_k_pp", "reference", "lira")  # attacks/membership.py METHODS


def _methods(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    methods = [m.strip() for m in value.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise click.BadParameter(f"unknown method '{unknown[0] if unknown else value}' (known: {', '.join(METHODS)})")
    return methods


@click.command(name="membership")
@target_option()
@click.option("--corpus", "corpus", type=click.Path(path_type=Path), required=True,
              help="Corpus JSONL with train/held-out documents and canaries (privaudit data corpus).")
@out_option("privaudit-runs/membership")
@click.option("--reference", default=None,
              help="Reference model spec for the reference-ratio score, e.g. the un-personalized base (hf:PATH).")
@click.option("--references", "references", multiple=True, metavar="SPEC",
              help="A reference model for offline LiRA (repeatable; at least 2, none trained on the corpus).")
@click.option("--methods", callback=_methods, default=None, metavar="LIST",
              help="Comma-separated subset of loss,zlib,min_k,min_k_pp,reference,lira (default: all that can run).")
@click.option("--min-k", "min_k_fraction", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Fraction of least likely tokens for Min-K% prob.  [default: 0.2]")
@click.option("--max-documents", type=click.IntRange(min=1), default=None,
              help="Use only the first N documents of each split.")
@click.option("--candidates", "num_candidates", type=click.IntRange(min=1), default=None,
              help="Sampled candidates per canary (exposure is at most log2(N+1) bits).  [default: 999]")
@click.option("--no-canaries", "no_canaries", is_flag=True, help="Skip canary exposure.")
@click.option("--bootstrap", type=click.IntRange(min=10), default=None,
              help="Bootstrap resamples for the intervals.  [default: 1000]")
@seed_option
@batch_size_option
@show_pii_option
@click.pass_context
def command(ctx: click.Context, target: str, corpus: Path, out: Path, reference: str | None,
            references: tuple[str, ...], methods: list[str] | None, min_k_fraction: float | None, max_documents: int | None,
            num_candidates: int | None, no_canaries: bool, bootstrap: int | None, seed: int, batch_size: int,
            show_pii: bool) -> None:
    """Membership inference (LOSS, zlib, Min-K%, Min-K%++, reference ratio, offline LiRA): ROC AUC and TPR at 1% / 0.1% FPR with
    bootstrap intervals; canary exposure in bits per repetition count (The Secret Sharer)."""
    params = {
        "corpus": str(corpus), "reference": reference,
        "references": list(references) or None, "methods": methods, "min_k_fraction": min_k_fraction,
        "max_documents": max_documents, "num_candidates": num_candidates,
        "canaries": False if no_canaries else None, "bootstrap": bootstrap,
    }
    run_attack_command(ctx, "membership", params, target=target, out=out, seed=seed, batch_size=batch_size,
                       show_pii=show_pii)
