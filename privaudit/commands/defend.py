"""`privaudit defend NAME`: apply one registered defense to a base model and a personal corpus.

Writes a defended variant folder (its model or adapter, and `defended.json` with the training,
privacy and scrub reports) and prints the target spec that audits load. Rerunning into a
complete folder reuses it.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import click

from privaudit.commands.common import progress_from


@click.command(name="defend")
@click.argument("name", metavar="DEFENSE")
@click.option("--base", required=True, help="Base model to defend: hf:PATH (a local folder).")
@click.option("--corpus", required=True, type=click.Path(path_type=Path), help="Personal corpus (JSONL).")
@click.option("--subjects", required=True, type=click.Path(path_type=Path), help="Data subjects (JSONL).")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Folder for the defended variant.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="TOML with the defense's settings (top-level keys, or a [defenses.NAME] table).")
@click.pass_context
def command(ctx: click.Context, name: str, base: str, corpus: Path, subjects: Path, out: Path,
            config_path: Path | None) -> None:
    """Apply DEFENSE (none, scrub, dp_sgd, output_filter, federated, ...) and save the variant."""
    from privaudit.compare import base_path
    from privaudit.config import load_toml
    from privaudit.data.corpus import load_corpus
    from privaudit.data.subjects import load_subjects
    from privaudit.defenses.registry import DefendedModel, get_defense, load_defended

    defense = get_defense(name)
    cfg: dict = {}
    if config_path is not None:
        raw = load_toml(config_path)
        cfg = dict(raw.get("defenses", {}).get(name, raw)) if "defenses" in raw else dict(raw)
        cfg.pop("defense", None)
    existing = load_defended(out)
    if existing is not None:
        record = existing
        click.echo(f"reusing complete variant in {out}")
    else:
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
        offered = {"progress": progress_from(ctx), "subjects": load_subjects(subjects),
                   "subjects_path": subjects.resolve(),
                   "inner": DefendedModel(name="base", target_spec=base, out_dir=out)}
        params = inspect.signature(defense.apply).parameters
        record = defense.apply(base_path(base), load_corpus(corpus), cfg, out,
                               **{k: v for k, v in offered.items() if k in params})
    if record.training is not None:
        t = record.training
        click.echo(f"held-out perplexity: {t.heldout_perplexity:.2f} (base {t.base_heldout_perplexity or float('nan'):.2f}); "
                   f"{t.steps} steps in {t.seconds:.1f} s")
    if record.privacy is not None:
        p = record.privacy
        click.echo(f"epsilon spent: {p.epsilon:.4f} at delta {p.delta:g} (noise {p.noise_multiplier:.4f}, "
                   f"clip {p.max_grad_norm:g}, sample rate {p.sample_rate:.4f}, {p.steps} steps, {p.accountant}; "
                   f"privacy unit: {p.privacy_unit})")
    if record.scrub is not None:
        s = record.scrub
        click.echo(f"scrubbed spans: {json.dumps(dict(s.removed), sort_keys=True)}; known values surviving: "
                   f"{s.known_values_surviving}/{s.known_values_total} {json.dumps(dict(s.surviving), sort_keys=True)}")
    click.echo(f"target: {record.target_spec}")
