"""Scrubbing: Presidio anonymizes the training corpus, then the plain fine-tuning recipe runs on it.

Why scrubbing is not enough (Lukas et al., "Analyzing Leakage of Personally Identifiable
Information in Language Models", IEEE S&P 2023, Sec. 6): detectors miss PII they have no pattern
or NER for, so some values survive and are memorized as before. This module therefore reports,
besides the spans Presidio removed per entity type, which *known* subject values are still present
verbatim in the scrubbed training texts (a count per PII field and the (subject, field) pairs,
never the values), so a comparison shows what scrubbing missed.

Detectors: Presidio's pattern recognizers (email, phone, credit card, dates, URLs, ...), privaudit's
US street-address pattern, and an NER model for PERSON/ORGANIZATION/LOCATION when one is installed
(offline by default there is none; see `privaudit.pii`). `known_fields` adds the data subjects'
own values for the named fields as an exact-match recognizer: `["name"]` stands in for the missing
NER model; listing every field gives an oracle scrubber (an upper bound no real pipeline reaches,
because a real one does not know whose PII is in its data). The default is detectors only.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from privaudit.defenses.finetune import FinetuneConfig, finetune
from privaudit.defenses.registry import DefendedModel, Defense, DefenseContext, ScrubReport, register_defense
from privaudit.errors import InputError
from privaudit.progress import ProgressReporter

Operator = Literal["replace", "mask", "hash"]
SUBJECT_FIELDS_FOR_KNOWN = ("name", "email", "phone", "address", "birthdate", "employer")


@dataclass(frozen=True)
class ScrubConfig:
    """How to scrub: Presidio operator, entity types (None = every type the detectors know),
    subject fields added as exact-match known values, detector score threshold."""

    operator: Operator = "replace"
    entities: tuple[str, ...] | None = None
    known_fields: tuple[str, ...] = ()
    score_threshold: float = 0.4
    use_ner: bool | None = None  # None: use an installed spaCy NER model when there is one
    salt: str | None = None  # for operator "hash": a fixed salt makes pseudonyms consistent

    def __post_init__(self) -> None:
        if not 0 <= self.score_threshold <= 1:
            raise InputError(f"scrub: score_threshold must be in [0, 1], got {self.score_threshold}")


@dataclass(frozen=True)
class ScrubResult:
    """Scrubbed texts (same order as the input) and the report of what changed."""

    texts: list[str]
    report: ScrubReport


def known_values_by_entity(subjects: Sequence[Any], fields: Sequence[str]) -> dict[str, list[str]]:
    """Entity type -> literal values of `fields` of `subjects`, for Presidio's deny-list recognizer."""
    from privaudit.pii import SUBJECT_FIELD_ENTITIES

    out: dict[str, list[str]] = {}
    for s in subjects:
        values = {"name": s.name, **s.pii_fields()}
        for f in fields:
            if values.get(f):
                out.setdefault(SUBJECT_FIELD_ENTITIES.get(f, f.upper()), []).append(values[f])
    return out


def surviving_values(
    original: Sequence[str], scrubbed: Sequence[str], subjects: Sequence[Any]
) -> tuple[int, Counter[str], list[tuple[str, str]]]:
    """Known PII values present in the original texts and still present verbatim after scrubbing.

    Returns (values present before, surviving count per field, surviving (subject id, field) pairs).
    Pure: no Presidio here, only substring checks over the joined corpus.
    """
    before = "\n".join(original)
    after = "\n".join(scrubbed)
    present, surviving, examples = 0, Counter(), []
    for s in subjects:
        for fname, value in s.pii_fields().items():
            if value and value in before:
                present += 1
                if value in after:
                    surviving[fname] += 1
                    examples.append((s.id, fname))
    return present, surviving, examples


def scrub_texts(texts: Sequence[str], subjects: Sequence[Any], cfg: ScrubConfig) -> ScrubResult:
    """Anonymize `texts` with Presidio per `cfg`; report removed spans and surviving known values.

    Detection is `privaudit.pii.detect_pii` (the project's one definition of "PII found");
    identical texts (a corpus repeats documents) are analysed once, and removed spans are counted
    over the corpus as trained on, i.e. with repeats.
    """
    from presidio_analyzer import RecognizerResult
    from presidio_anonymizer import AnonymizerEngine

    from privaudit.pii import detect_pii, operator_config

    fields_known = set(SUBJECT_FIELDS_FOR_KNOWN) | {f for s in subjects for f in s.pii_fields()}
    unknown = [f for f in cfg.known_fields if f not in fields_known]
    if unknown:
        raise InputError(f"scrub: known_fields: '{unknown[0]}' is not a field of the data subjects")
    distinct = list(dict.fromkeys(texts))
    known = known_values_by_entity(subjects, cfg.known_fields) if cfg.known_fields else None
    spans = detect_pii(distinct, entities=list(cfg.entities) if cfg.entities else None, known_values=known,
                       score_threshold=cfg.score_threshold, use_ner=cfg.use_ner)
    engine, operator = AnonymizerEngine(), operator_config(cfg.operator, cfg.salt)
    multiplicity = Counter(texts)
    removed: Counter[str] = Counter()
    cleaned: list[str] = []
    for text, found in zip(distinct, spans):
        if not found:
            cleaned.append(text)
            continue
        result = engine.anonymize(
            text=text, analyzer_results=[RecognizerResult(s.entity_type, s.start, s.end, s.score) for s in found],
            operators={"DEFAULT": operator})
        cleaned.append(result.text)
        for item in result.items:
            removed[item.entity_type] += multiplicity[text]
    mapping = dict(zip(distinct, cleaned))
    present, surviving, examples = surviving_values(distinct, cleaned, subjects)
    report = ScrubReport(
        operator=cfg.operator, entities=cfg.entities, removed=dict(sorted(removed.items())),
        known_values_total=present, known_values_surviving=sum(surviving.values()),
        surviving=dict(sorted(surviving.items())), surviving_examples=tuple(examples), documents=len(texts),
    )
    return ScrubResult(texts=[mapping[t] for t in texts], report=report)


def train_scrubbed(
    base: Path,
    train_texts: Sequence[str],
    heldout_texts: Sequence[str],
    subjects: Sequence[Any],
    scrub_cfg: ScrubConfig,
    ft_cfg: FinetuneConfig,
    out_dir: Path,
    progress: ProgressReporter | None = None,
    *,
    name: str = "scrub",
) -> DefendedModel:
    """Scrub the training texts, fine-tune on them with the plain recipe, attach the scrub report.

    Held-out texts stay unscrubbed: utility is measured on the text users will really send.
    """
    progress = progress or ProgressReporter(quiet=True)
    progress.log(f"scrubbing {len(train_texts)} training texts with Presidio ({scrub_cfg.operator})")
    scrubbed = scrub_texts(train_texts, subjects, scrub_cfg)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    record = finetune(base, scrubbed.texts, heldout_texts, ft_cfg, out_dir, progress, name=name)
    record = dataclasses.replace(record, scrub=scrubbed.report)
    record.save()
    return record


@dataclass(frozen=True)
class ScrubParams:
    """A `scrub` table's two halves: what Presidio removes, and how the plain recipe then trains."""

    scrub: ScrubConfig = ScrubConfig()
    finetune: FinetuneConfig = FinetuneConfig()


SCRUB_KEYS = frozenset(f.name for f in dataclasses.fields(ScrubConfig))
FINETUNE_KEYS = frozenset(f.name for f in dataclasses.fields(FinetuneConfig))


def split_config(cfg: Mapping[str, Any], where: str) -> tuple[ScrubConfig, FinetuneConfig]:
    """Split one flat table into scrub settings and fine-tuning settings; unknown keys name the key."""
    from privaudit.config import _key, dataclass_from_mapping

    if not isinstance(cfg, Mapping):
        raise InputError(f"{where}: expected a table, got {type(cfg).__name__}")
    scrub_keys, ft_keys = SCRUB_KEYS, FINETUNE_KEYS
    unknown = sorted(set(cfg) - scrub_keys - ft_keys)
    if unknown:
        raise InputError(f"{_key(where, unknown[0])}: unknown key (known: {', '.join(sorted(scrub_keys | ft_keys))})")
    scrub_cfg = dataclass_from_mapping(ScrubConfig, {k: v for k, v in cfg.items() if k in scrub_keys}, where)
    ft_cfg = dataclass_from_mapping(FinetuneConfig, {k: v for k, v in cfg.items() if k in ft_keys}, where)
    return scrub_cfg, ft_cfg


@register_defense
class ScrubDefense(Defense):
    """Presidio scrubbing of the training corpus, then the plain fine-tuning recipe."""

    name = "scrub"
    Params = ScrubParams

    @classmethod
    def from_config(cls, mapping: Mapping[str, Any], where: str) -> "ScrubDefense":
        """One flat table (scrub and fine-tuning keys side by side), validated into both halves."""
        return cls(ScrubParams(*split_config(mapping, where)))

    @classmethod
    def config_keys(cls) -> frozenset[str]:
        return SCRUB_KEYS | FINETUNE_KEYS

    def apply(self, ctx: DefenseContext) -> DefendedModel:
        corpus = ctx.corpus
        return train_scrubbed(ctx.base_path, corpus.train_texts(), corpus.heldout_texts(), ctx.subjects,
                              self.params.scrub, self.params.finetune, ctx.out_dir, ctx.progress, name=self.name)
