"""The built-in training path of `privaudit dp-audit`: the embedded corpus plus canaries, one recipe.

The embedded setup (privaudit/personalized.py: synthetic subjects, their corpus, a public tiny base
pretrained on other people) is built once under the audit folder; the canaries the coins included
are added to its training split (`canaries.add_to_corpus`) and the chosen recipe (`none`, `dp_sgd`,
`federated` or any registered defense) trains through `build_variant`, the path `defend` and
`compare` take. The claimed epsilon is what the recipe's own accountant reports
(`DefendedModel.privacy`), never a number the audit is told.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from privaudit.dpaudit.canaries import AuditCanary, add_to_corpus
from privaudit.progress import ProgressReporter

DEFAULT_DELTA = 1e-5  # the delta a non-private recipe is audited at (DP-SGD reports its own)


@dataclass(frozen=True)
class Trained:
    """A recipe trained with canaries: its target spec, the base (reference) spec and its claim."""

    target_spec: str
    base_spec: str
    claimed_epsilon: float | None
    delta: float
    defense: str
    record: Any


def audit_recipe():
    """The embedded sizes the audit trains on: few subjects, so canaries are a large part of training."""
    from privaudit.personalized import PersonalizationRecipe

    return PersonalizationRecipe(num_subjects=8, repeats=2, canary_repeats=(), filler_docs=16)


def train_with_canaries(out_dir: Path, defense: str, table: Mapping[str, Any], canaries: Sequence[AuditCanary], *,
                        seed: int = 0, progress: ProgressReporter | None = None) -> Trained:
    """Train `defense` (configured by `table`) on the embedded corpus plus the included canaries."""
    from privaudit.defenses.registry import DefenseContext
    from privaudit.defenses.variants import build_variant, configure_variant
    from privaudit.personalized import build_personalized_setup

    progress = progress or ProgressReporter(quiet=True)
    out_dir = Path(out_dir)
    variant = configure_variant(defense, {"defense": defense, **dict(table)}, seed=seed, where=f"dp-audit {defense}")
    setup = build_personalized_setup(out_dir / "setup", audit_recipe(), progress, personalize=False)
    corpus = add_to_corpus(setup.corpus, canaries)
    corpus_path = out_dir / "train_corpus.jsonl"
    corpus.write(corpus_path)
    ctx = DefenseContext(base=setup.base_spec, corpus=corpus, subjects=setup.subjects, out_dir=out_dir / "model",
                         seed=seed, progress=progress, corpus_path=corpus_path.resolve(),
                         subjects_path=setup.subjects_path.resolve())
    record = build_variant(variant, ctx)
    privacy = getattr(record, "privacy", None)
    claimed = float(privacy.epsilon) if privacy is not None else None
    delta = float(privacy.delta) if privacy is not None else DEFAULT_DELTA
    return Trained(record.target_spec, setup.base_spec, claimed, delta, defense, record)
