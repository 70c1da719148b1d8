"""`privaudit attack reconstruct`: PII reconstruction and inference on masked training sentences."""

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


@click.command(name="reconstruct")
@target_option()
@click.option("--subjects", "subjects", type=click.Path(path_type=Path), required=True,
              help="Data subjects JSONL (the true values, and other subjects' values as candidates).")
@click.option("--corpus", "corpus", type=click.Path(path_type=Path), default=None,
              help="Training corpus JSONL whose sentences are masked (privaudit data corpus).")
@click.option("--templates", "templates_file", type=click.Path(path_type=Path), default=None,
              help='Or: JSONL of {"subject_id", "pii_type", "template": "... [MASK] ..."}.')
@out_option("privaudit-runs/reconstruct")
@click.option("--baseline", "baseline_target", default=None,
              help="Base model spec (before fine-tuning): the same sentences on it, and the lift over it.")
@click.option("--part", "parts", type=click.Choice(["inference", "reconstruction"]), multiple=True,
              help="Parts to run (repeatable).  [default: both]")
@click.option("--pii-type", "pii_types", multiple=True, help="Only these PII fields (repeatable).")
@click.option("--split", type=click.Choice(["train", "heldout"]), default=None,
              help="Corpus split to mask (heldout: a never-trained control).  [default: train]")
@click.option("--context", type=click.Choice(["sentence", "document"]), default=None,
              help="Text around the mask: its sentence (Lukas et al.) or its whole document.  [default: sentence]")
@click.option("--candidates", "num_candidates", type=click.IntRange(min=1), default=None,
              help="Inference candidates besides the truth.  [default: 19]")
@click.option("--samples", "num_samples", type=click.IntRange(min=1), default=None,
              help="Reconstruction: sampled continuations of the prefix.  [default: 8]")
@click.option("--max-subjects", type=click.IntRange(min=0), default=None, help="First N subjects with a sentence.")
@seed_option
@batch_size_option
@show_pii_option
@click.pass_context
def command(ctx: click.Context, target: str, subjects: Path, corpus: Path | None, templates_file: Path | None,
            out: Path, baseline_target: str | None, parts: tuple[str, ...], pii_types: tuple[str, ...],
            split: str | None, context: str | None, num_candidates: int | None, num_samples: int | None,
            max_subjects: int | None, seed: int, batch_size: int, show_pii: bool) -> None:
    """Lukas et al. (S&P 2023): fill a masked training sentence's [MASK] with candidate values and rank them by
    the whole sentence's likelihood. Inference: top-1 / top-5 / exposure of the truth among candidates;
    reconstruction: top-1 of the target's own sampled candidates; both minus the base model's rate."""
    params = {"subjects": str(subjects), "corpus": str(corpus) if corpus else None,
              "templates_file": str(templates_file) if templates_file else None,
              "baseline_target": baseline_target, "parts": list(parts) or None, "pii_types": list(pii_types) or None,
              "split": split, "context": context, "num_candidates": num_candidates, "num_samples": num_samples,
              "max_subjects": max_subjects}
    run_attack_command(ctx, "reconstruct", params, target=target, out=out, seed=seed, batch_size=batch_size,
                       show_pii=show_pii)
