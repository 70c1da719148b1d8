"""Build a personalized model with known, planted PII: the embedded path of demo, tests and benchmarks.

Synthetic data subjects, a personal corpus that repeats each training subject's documents, a
"public" tiny base model pretrained on documents about *other* people (same templates, none of the
subjects' PII), and that base fine-tuned on the personal corpus until it memorizes. The base is the
"before fine-tuning" baseline of every leakage number; the fine-tuned model is the leaky target.
Nothing is downloaded: the model, its tokenizer and the data are all built here, seeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from privaudit.data.corpus import Corpus, generate_corpus, load_corpus
from privaudit.data.subjects import DataSubject, generate_subjects, load_subjects, write_subjects
from privaudit.progress import ProgressReporter


@dataclass(frozen=True)
class PersonalizationRecipe:
    """Sizes of the embedded setup; the defaults memorize most planted emails in about a minute on 2 cores."""

    num_subjects: int = 20
    heldout_fraction: float = 0.25
    docs_per_subject: int = 3
    repeats: int = 6
    canary_repeats: tuple[int, ...] = (6, 0)
    filler_docs: int = 16
    public_subjects: int = 40
    public_epochs: int = 4
    finetune_epochs: int = 4
    learning_rate: float = 3e-3
    batch_size: int = 16
    max_length: int = 128
    seed: int = 0


@dataclass(frozen=True)
class PersonalizedSetup:
    """Where the embedded setup lives, and its data (all under one folder)."""

    root: Path
    recipe: Any  # PersonalizationRecipe, or personalized_real.RealRecipe (same corpus and training fields)
    subjects: tuple[DataSubject, ...]
    subjects_path: Path
    corpus: Corpus
    corpus_path: Path
    base_dir: Path
    finetuned_spec: str

    @property
    def base_spec(self) -> str:
        return f"hf:{self.base_dir}"

    @property
    def train_subject_ids(self) -> tuple[str, ...]:
        return tuple(self.corpus.train_subject_ids())

    @property
    def heldout_subject_ids(self) -> tuple[str, ...]:
        return tuple(self.corpus.heldout_subject_ids())

    def train_subjects(self) -> list[DataSubject]:
        ids = set(self.train_subject_ids)
        return [s for s in self.subjects if s.id in ids]


def public_corpus(recipe: PersonalizationRecipe) -> Corpus:
    """Documents about people who are not the data subjects: what a public base model has read."""
    people = generate_subjects(recipe.public_subjects, seed=recipe.seed + 1000)
    return generate_corpus(people, repeats=1, seed=recipe.seed + 1000, heldout_subject_fraction=0.0,
                           docs_per_subject=recipe.docs_per_subject, filler_docs=40)


def build_personal_data(root: Path, recipe: Any) -> tuple[list[DataSubject], Path, Corpus, Path]:
    """Subjects and their personal corpus under `root` (reused when a previous call completed).

    `recipe` supplies the corpus sizes (`num_subjects`, `repeats`, `heldout_fraction`,
    `docs_per_subject`, `canary_repeats`, `filler_docs`, `seed`): the toy recipe here and the real
    LoRA recipe (privaudit/personalized_real.py) plant their PII the same way.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    subjects_path, corpus_path = root / "subjects.jsonl", root / "corpus.jsonl"
    if subjects_path.exists() and corpus_path.exists():
        return load_subjects(subjects_path), subjects_path, load_corpus(corpus_path), corpus_path
    subjects = generate_subjects(recipe.num_subjects, seed=recipe.seed)
    corpus = generate_corpus(subjects, repeats=recipe.repeats, seed=recipe.seed,
                             heldout_subject_fraction=recipe.heldout_fraction,
                             docs_per_subject=recipe.docs_per_subject,
                             canaries=list(recipe.canary_repeats), filler_docs=recipe.filler_docs)
    corpus.write(corpus_path)
    write_subjects(subjects_path, subjects)  # written last: its presence means the data is complete
    return subjects, subjects_path, corpus, corpus_path


def build_personalized_setup(
    root: Path, recipe: PersonalizationRecipe = PersonalizationRecipe(),
    progress: ProgressReporter | None = None, *, personalize: bool = True,
) -> PersonalizedSetup:
    """Build (or reuse, when a previous call completed) subjects, corpus, public base and fine-tune.

    `personalize=False` stops after the public base (`finetuned_spec` is then ""): for callers that
    train their own recipe on the corpus, as `privaudit dp-audit` does with its canaries added.
    """
    from privaudit.defenses.finetune import FinetuneConfig, finetune, pretrain_base
    from privaudit.defenses.registry import load_defended

    root = Path(root)
    progress = progress or ProgressReporter(quiet=True)
    subjects, subjects_path, corpus, corpus_path = build_personal_data(root, recipe)
    base_dir = root / "public_base"
    if not (base_dir / "config.json").exists():
        progress.log("pretraining the public base model (tiny Llama, from scratch)")
        pretrain_base(public_corpus(recipe).train_texts(), base_dir, seed=recipe.seed, epochs=recipe.public_epochs,
                      learning_rate=recipe.learning_rate, batch_size=recipe.batch_size,
                      max_length=recipe.max_length, progress=progress)
    finetuned = load_defended(root / "finetuned") if personalize else None
    if personalize and finetuned is None:
        progress.log("fine-tuning the base on the personal corpus (no defense)")
        cfg = FinetuneConfig(epochs=recipe.finetune_epochs, learning_rate=recipe.learning_rate,
                             batch_size=recipe.batch_size, max_length=recipe.max_length, seed=recipe.seed)
        finetuned = finetune(base_dir, corpus.train_texts(), corpus.heldout_texts(), cfg, root / "finetuned", progress)
    return PersonalizedSetup(root=root, recipe=recipe, subjects=tuple(subjects), subjects_path=subjects_path,
                             corpus=corpus, corpus_path=corpus_path, base_dir=base_dir,
                             finetuned_spec=finetuned.target_spec if finetuned is not None else "")


def subject_values(subjects: Sequence[DataSubject]) -> list[str]:
    """Every PII value of the subjects (for masking checks and known-value recognizers)."""
    return [v for s in subjects for v in [s.name, *s.pii_fields().values()] if v]
