"""The Defense contract, the records a defended model carries, and the registry of defenses by name.

A defense turns (base model, personal corpus, its config) into a *defended model*: a target spec
the attacks can load plus what it cost (training report) and what it guarantees (privacy report for
DP-SGD, scrub report for Presidio scrubbing). `privaudit compare` runs the same attacks on every
defended variant and puts these reports next to the leakage numbers, so a privacy gain is never
shown without its utility cost.

Defenses register by decorator (as attacks and targets do) so `compare.toml` names them as data.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from privaudit.errors import InputError
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


@runtime_checkable
class Defense(Protocol):
    """A train-time recipe (or inference-time wrapper) that yields a defended model.

    `cfg` is the defense's own table from compare.toml (validated by the defense); `corpus` is a
    `privaudit.data.corpus.Corpus` (train/held-out texts and the subjects' known PII values).
    """

    name: str

    def apply(self, base: Path, corpus: Any, cfg: Mapping[str, Any], out_dir: Path) -> DefendedModel: ...


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
    "DEFENSES", "DefendedModel", "Defense", "PrivacyReport", "ScrubReport", "TrainingReport", "available_defenses",
    "get_defense", "known_values_of", "load_defended", "register_defense",
]
