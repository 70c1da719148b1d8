"""The Defense contract, the records a defended model carries, and the registry of defenses by name.

A defense turns (base model, personal corpus, its config) into a *defended model*: a target spec
the attacks can load plus what it cost (training report) and what it guarantees (privacy report for
DP-SGD, scrub report for Presidio scrubbing). `privaudit compare` runs the same attacks on every
defended variant and puts these reports next to the leakage numbers, so a privacy gain is never
shown without its utility cost.

The contract: subclass `Defense`, declare `name` and `Params` (a frozen dataclass; the table is
validated into it once, by `from_config`, before anything trains) and implement
`apply(ctx: DefenseContext) -> DefendedModel`; everything a defense reads arrives in the context.
Defenses register by decorator (as attacks and targets do) so `compare.toml` names them as data.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

from privaudit.config import dataclass_from_mapping
from privaudit.errors import InputError
from privaudit.progress import ProgressReporter
from privaudit.registry import Registry

RECORD_FILE = "defended.json"


@dataclass(frozen=True)
class TrainingReport:
    """What training cost and what utility it kept: steps, wall seconds, last-epoch mean train loss,
    and perplexity on held-out documents (the utility metric every variant is compared on)."""

    steps: int
    seconds: float
    train_loss: float
    heldout_perplexity: float
    base_heldout_perplexity: float | None = None  # the base model before fine-tuning, same docs
    trainable_parameters: int = 0
    mode: str = "full"  # "full" or "lora"


@dataclass(frozen=True)
class PrivacyReport:
    """The DP guarantee actually spent (Abadi et al., "Deep Learning with Differential Privacy",
    CCS 2016): (epsilon, delta) from the accountant for `steps` steps of Poisson sampling at
    `sample_rate` with Gaussian noise `noise_multiplier` x `max_grad_norm`."""

    epsilon: float
    delta: float
    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    steps: int
    accountant: str
    target_epsilon: float | None = None
    grad_sample_mode: str = "hooks"
    poisson_sampling: bool = True
    privacy_unit: str = "document"  # what one clipped example is: "document" or "subject" (user-level DP)


@dataclass(frozen=True)
class ScrubReport:
    """What Presidio scrubbing removed, and which known subject values it missed.

    `removed` counts replaced spans per entity type; `surviving` counts, per PII field (email,
    phone, ...), the known subject values still present verbatim in the scrubbed training texts;
    `surviving_examples` names (subject id, field) pairs, never the values themselves.
    """

    operator: str
    entities: tuple[str, ...] | None
    removed: Mapping[str, int]
    known_values_total: int
    known_values_surviving: int
    surviving: Mapping[str, int]
    surviving_examples: tuple[tuple[str, str], ...] = ()
    documents: int = 0


@dataclass(frozen=True)
class DefendedModel:
    """A defended variant: the spec that loads it plus its cost and guarantee reports."""

    name: str
    target_spec: str
    out_dir: Path
    training: TrainingReport | None = None
    privacy: PrivacyReport | None = None
    scrub: ScrubReport | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out_dir"] = str(self.out_dir)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DefendedModel":
        scrub = d.get("scrub")
        if scrub is not None:
            scrub = dict(scrub)
            scrub["entities"] = tuple(scrub["entities"]) if scrub.get("entities") is not None else None
            scrub["surviving_examples"] = tuple(tuple(x) for x in scrub.get("surviving_examples", ()))
            scrub = ScrubReport(**scrub)
        return cls(
            name=d["name"],
            target_spec=d["target_spec"],
            out_dir=Path(d["out_dir"]),
            training=TrainingReport(**d["training"]) if d.get("training") else None,
            privacy=PrivacyReport(**d["privacy"]) if d.get("privacy") else None,
            scrub=scrub,
            notes=tuple(d.get("notes", ())),
        )

    def save(self) -> Path:
        """Write `defended.json` last, so its presence marks a complete variant folder (resume)."""
        path = Path(self.out_dir) / RECORD_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(path)
        return path


def load_defended(out_dir: Path) -> DefendedModel | None:
    """The record of a complete variant folder, or None when training never finished there."""
    path = Path(out_dir) / RECORD_FILE
    if not path.is_file():
        return None
    try:
        return DefendedModel.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a valid defended-model record ({exc})") from None


def base_path(spec: str) -> Path:
    """The local folder of an `hf:PATH` base (a bare PATH is accepted); adapters cannot be a base."""
    text = spec[3:] if spec.startswith("hf:") else spec
    if ":adapter=" in text or (":" in text and not spec.startswith("hf:") and "://" in text):
        raise InputError(f"base: '{spec}' must be a local model folder (hf:PATH) without an adapter")
    return Path(text)


@dataclass(frozen=True)
class DefenseContext:
    """Everything a defense's `apply` may read, passed in one value (no globals, no signature probing).

    `base` is the base model's spec (`hf:PATH` or a bare folder); `corpus` a loaded
    `privaudit.data.corpus.Corpus`, `subjects` the loaded data subjects; `out_dir` the variant's own
    folder (created before `apply` runs); `seed` the run's seed (already folded into the params of a
    defense whose table has no `seed`). `inner` is the defended model a wrapping defense (output
    filter) serves: another variant in a comparison, the base model under `privaudit defend`.
    `corpus_path` / `subjects_path` name the files they were read from (a run's identity, and a
    wrapper's spec file that reloads the subjects).
    """

    base: str
    corpus: Any
    subjects: tuple[Any, ...]
    out_dir: Path
    seed: int = 0
    progress: ProgressReporter = field(default_factory=lambda: ProgressReporter(quiet=True))
    inner: DefendedModel | None = None
    corpus_path: Path | None = None
    subjects_path: Path | None = None

    @property
    def base_path(self) -> Path:
        """The base model's local folder (the `hf:` prefix removed)."""
        return base_path(self.base)


class Defense(ABC):
    """A train-time recipe (or inference-time wrapper) that yields a defended model.

    A subclass declares `name` (what compare.toml and `privaudit defend` call it) and `Params`
    (a frozen dataclass of its settings). `from_config` validates a config table into `Params`
    once, before anything trains, with errors that name the key path; `apply(ctx)` then builds the
    variant into `ctx.out_dir` and returns its record (saved last as `defended.json`). The shared
    steps around `apply` (resume a complete folder, check the folder's identity, create it) are
    `privaudit.defenses.variants.build_variant`, which `defend` and `compare` both call.
    """

    name: ClassVar[str]
    Params: ClassVar[type]

    def __init__(self, params: Any = None) -> None:
        self._params = params

    @property
    def params(self) -> Any:
        """The validated settings; an instance made without them (a registry lookup) has none."""
        if self._params is None:
            raise InputError(f"defense '{self.name}' has no settings: build it with from_config(table, where)")
        return self._params

    @classmethod
    def from_config(cls, mapping: Mapping[str, Any], where: str) -> "Defense":
        """Validate a config table into `Params`; unknown keys and wrong types name the key path."""
        return cls(dataclass_from_mapping(cls.Params, mapping, where))

    @classmethod
    def config_keys(cls) -> frozenset[str]:
        """The keys a config table may hold (a run's seed is offered where `seed` is one of them)."""
        return frozenset(f.name for f in fields(cls.Params) if f.init)

    def wrapped_variant(self) -> str | None:
        """The variant whose model this defense wraps (served to `apply` as `ctx.inner`), or None."""
        return None

    @abstractmethod
    def apply(self, ctx: DefenseContext) -> DefendedModel:
        """Build the defended variant into `ctx.out_dir` and return its saved record."""


def _check_defense(name: str, cls: type) -> None:
    """What compare and defend rely on: a class named `name` whose instances have `apply`."""
    if not isinstance(cls, type) or not callable(getattr(cls, "apply", None)):
        raise TypeError(f"defense '{name}': {cls!r} is not a class with an `apply` method")
    if getattr(cls, "name", None) != name:
        raise ValueError(f"defense '{name}': its class is named {getattr(cls, 'name', None)!r}")


# Built-in defense name -> module that registers it, imported on first use (torch, opacus and flwr
# are heavy); outside packages add defenses through the `privaudit.defenses` entry-point group.
DEFENSES: Registry[type] = Registry(
    "defense", "privaudit.defenses",
    builtins={
        "none": "privaudit.defenses.finetune",
        "scrub": "privaudit.defenses.scrub",
        "dp_sgd": "privaudit.defenses.dp_sgd",
        "output_filter": "privaudit.defenses.output_filter",
        "federated": "privaudit.defenses.federated",
        "federated_dp": "privaudit.defenses.federated",
        "rag": "privaudit.defenses.rag_store",
    },
    validate=_check_defense,
)


def register_defense(cls: type) -> type:
    """Class decorator: make a defense available by its `name` in compare.toml."""
    return DEFENSES.add(cls.name, cls)


def get_defense(name: str) -> Defense:
    """An instance of the defense registered as `name` (importing its module on first use)."""
    return DEFENSES.get(name)()


def available_defenses() -> list[str]:
    """Every known defense name (built-ins and allowed plugins), without importing their modules."""
    return DEFENSES.names()


def known_values_of(subjects: Sequence[Any]) -> dict[str, list[tuple[str, str]]]:
    """Per PII field, the (subject id, value) pairs of the subjects' known PII (for scrub reports)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for s in subjects:
        fields = s.pii_fields() if hasattr(s, "pii_fields") else {}
        for fname, value in dict(fields).items():
            if value:
                out.setdefault(fname, []).append((str(getattr(s, "id", "")), str(value)))
    return out


__all__ = [
    "DEFENSES", "DefendedModel", "Defense", "DefenseContext", "PrivacyReport", "ScrubReport", "TrainingReport",
    "available_defenses", "base_path", "get_defense", "known_values_of", "load_defended", "register_defense",
]
