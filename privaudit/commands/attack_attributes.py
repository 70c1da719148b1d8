"""`privaudit attack attributes`: SynthPAI-style personal attribute inference on one target."""

from __future__ import annotations

from pathlib import Path

import click

from privaudit.commands.common import (
    batch_size_option,
    out_option,
    run_attack_command,
    seed_option,
    target_option,
)
from privaudit.data.synthpai import ATTRIBUTES


def _attributes(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    attrs = [a.strip() for a in value.split(",") if a.strip()]
    unknown = [a for a in attrs if a not in ATTRIBUTES]
    if unknown or not attrs:
        raise click.BadParameter(f"unknown attribute '{unknown[0] if unknown else value}' (known: {', '.join(ATTRIBUTES)})")
    return attrs


@click.command(name="attributes")
@target_option(required=False)
@out_option("privaudit-runs/attributes")
@click.option("--authors", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Authors JSONL (SynthPAI profile/comment layout or privaudit per-author); default: bundled sample.")
@click.option("--max-authors", type=click.IntRange(min=1), default=None, help="Use only the first N authors.")
@click.option("--attributes", callback=_attributes, default=None, metavar="LIST",
              help=f"Comma-separated subset of {','.join(ATTRIBUTES)} (default: all).")
@click.option("--adversary", type=click.Choice(["target", "baseline"]), default=None,
              help="'target': the audited model infers (default); 'baseline': TF-IDF + logistic regression.")
@click.option("--anonymize", is_flag=True, default=None,
              help="Also measure after Presidio anonymization of the comments (the defense hook).")
@click.option("--max-comments", type=click.IntRange(min=1), default=None, help="Use the first N comments per author.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=None, help="Answer length (default 384).")
@click.option("--predictions", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Score the guesses stored in a SynthPAI-format file (predictions[model][attr].guess) against "
                   "its labels with SynthPAI's official rules; no target is queried.")
@click.option("--model", default=None, help="With --predictions: whose predictions (default: the file's only model).")
@click.option("--judge", default=None, metavar="TARGET",
              help="A target spec asked SynthPAI's judge question about the guesses no rule decides "
                   "(default: they stay undecided and are not counted correct).")
@seed_option
@batch_size_option
@click.pass_context
def command(ctx: click.Context, target: str | None, out: Path, authors: Path | None, max_authors: int | None,
            attributes: list[str] | None, adversary: str | None, anonymize: bool | None, max_comments: int | None,
            max_new_tokens: int | None, predictions: Path | None, model: str | None, judge: str | None,
            seed: int, batch_size: int) -> None:
    """Infer age, location, income, ... from authors' comments; top-1/top-3 accuracy with the SynthPAI
    scoring rules (Yukhymenko et al. 2024; Staab et al., Beyond Memorization). With --predictions,
    score a model's stored guesses instead (one record per guess) and query nothing."""
    params = {
        "authors": str(authors) if authors else None, "max_authors": max_authors, "attributes": attributes,
        "adversary": adversary, "anonymize": anonymize or None, "max_comments": max_comments,
        "max_new_tokens": max_new_tokens, "predictions": str(predictions) if predictions else None,
        "model": model, "judge": judge,
    }
    if predictions is not None:
        if target is not None:
            raise click.UsageError("--predictions scores stored guesses: give no --target")
        from privaudit.data.synthpai_predictions import load_predictions

        params["model"], _ = load_predictions(predictions, model)  # bad input fails here, before any run folder
        target = f"predictions:{predictions}:model={params['model']}"
    elif target is None:
        raise click.UsageError("Missing option '--target' / '-t' (or give --predictions FILE)")
    run_attack_command(ctx, "attributes", params, target=target, out=out, seed=seed, batch_size=batch_size)
