"""Audit canaries for text LMs, at the two privacy units DP-SGD offers, with their coin flips.

Steinke et al. (NeurIPS 2023, Sec. 3) need m canaries, each included in training by an independent
fair coin; the coins are the audit's ground truth. Here a canary is either
- "record": one document, a random secret in a natural template (like the corpus' exposure
  canaries: "our gate code is 4821 0937."), matching `privacy_unit = "document"`; or
- "subject": a canary data subject whose whole contribution (`docs` documents, each with its own
  secret, under one invented name) is in or out together, matching `privacy_unit = "subject"`.

The coins live only in the auditor's canary file (`write_canaries`); what a training pipeline gets
is `training_documents` (the included canaries' documents, no bit, no excluded canary), so the
model never sees which canaries were left out. Everything is seeded: same (n, unit, seed), same file.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

from privaudit.data.jsonl import read_jsonl, write_jsonl
from privaudit.errors import InputError, where

Unit = Literal["record", "subject"]
UNITS: tuple[str, ...] = ("record", "subject")
FILE_FORMAT = "privaudit-dp-canaries"
FILE_VERSION = 1
SECRET_FORMAT = "#### #### ####"  # 10^12 secrets: a memorized one is not a lucky guess
_SYLLABLES = ("ka", "lo", "mi", "ren", "tav", "sol", "bri", "dun", "vel", "nor", "pe", "zar", "qui", "mos")


@dataclass(frozen=True)
class AuditCanary:
    """One canary: its documents, its unit, and whether its coin put it in training."""

    id: str
    unit: str
    texts: tuple[str, ...]
    included: bool
    subject_id: str | None = None  # "subject" canaries: the invented data subject the texts belong to
    # Per text, the character where the scored part (the secret) starts; 0 scores the whole text.
    # The template before it is shared with the other canaries, so scoring it only adds noise.
    score_from: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.score_from:
            object.__setattr__(self, "score_from", (0,) * len(self.texts))

    def scored_parts(self) -> list[tuple[str, str]]:
        """(prompt, continuation) per text: the template as context, the secret as what is scored."""
        return [(t[:i], t[i:]) for t, i in zip(self.texts, self.score_from)]

    def to_json(self) -> dict[str, Any]:
        return {"record": "canary", "id": self.id, "unit": self.unit, "subject_id": self.subject_id,
                "included": self.included, "texts": list(self.texts), "score_from": list(self.score_from)}


def _templates() -> tuple[list[str], list[str]]:
    from privaudit.data.corpus_generation import _templates as corpus_templates

    data = corpus_templates()
    return list(data["canary_owners"]), list(data["canary_objects"])


def _secret(rng: random.Random) -> str:
    return "".join(str(rng.randrange(10)) if c == "#" else c for c in SECRET_FORMAT)


def _name(rng: random.Random) -> str:
    word = lambda: "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()  # noqa: E731
    return f"{word()} {word()}"


def generate_canaries(n: int, unit: str, seed: int = 0, docs: int = 3) -> list[AuditCanary]:
    """`n` canaries of `unit`, each with a fair coin (seeded); "subject" canaries have `docs` documents."""
    if unit not in UNITS:
        raise InputError(f"unit: expected record or subject, got {unit!r}")
    if n < 2:
        raise InputError(f"n: an audit needs at least 2 canaries, got {n}")
    if docs < 1:
        raise InputError(f"docs: must be >= 1, got {docs}")
    owners, objects = _templates()
    rng = random.Random(f"privaudit-dp-canaries:{unit}:{seed}")
    coins = random.Random(f"privaudit-dp-coins:{unit}:{seed}")  # a stream of its own: coins never shape texts
    out: list[AuditCanary] = []
    for i in range(n):
        cid = f"dpc-{unit[0]}{i:04d}"
        if unit == "record":
            prefixes = [f"{rng.choice(owners).capitalize()} {rng.choice(objects)}"]
            subject = None
        else:
            name = _name(rng)
            prefixes = [f"Note from {name}: {rng.choice(owners)} {rng.choice(objects)}" for _ in range(docs)]
            subject = cid
        texts = tuple(f"{p} {_secret(rng)}." for p in prefixes)
        out.append(AuditCanary(cid, unit, texts, coins.random() < 0.5, subject, tuple(len(p) for p in prefixes)))
    return out


def write_canaries(path: Path, canaries: Sequence[AuditCanary], seed: int) -> int:
    """The auditor's file: a meta line, then every canary with its inclusion bit (user-only, atomic)."""
    units = sorted({c.unit for c in canaries})
    meta = {"record": "meta", "format": FILE_FORMAT, "version": FILE_VERSION, "unit": units[0] if units else None,
            "seed": seed, "n": len(canaries), "included": sum(c.included for c in canaries)}
    return write_jsonl(path, [meta, *(c.to_json() for c in canaries)])


def training_documents(canaries: Iterable[AuditCanary]) -> list[dict[str, Any]]:
    """What the training pipeline adds to its data: the included canaries' documents, nothing else."""
    return [{"id": f"{c.id}/{j}", "subject_id": c.subject_id, "text": text}
            for c in canaries if c.included for j, text in enumerate(c.texts)]


def load_canaries(path: Path) -> list[AuditCanary]:
    """Read an auditor's canary file; any defect is a one-line InputError naming FILE:LINE: field."""
    canaries: list[AuditCanary] = []
    seen: dict[str, int] = {}
    unit: str | None = None
    for line, row in read_jsonl(path):
        record = row.get("record")
        if record == "meta":
            if row.get("format") != FILE_FORMAT:
                raise InputError(f"{where(path, line, 'format')}: expected '{FILE_FORMAT}' "
                                 "(write one with `privaudit data canaries`)")
            continue
        if record != "canary":
            raise InputError(f"{where(path, line, 'record')}: expected 'meta' or 'canary', got {record!r}")
        cid = row.get("id")
        if not isinstance(cid, str) or not cid:
            raise InputError(f"{where(path, line, 'id')}: expected a non-empty string")
        if cid in seen:
            raise InputError(f"{where(path, line, 'id')}: canary '{cid}' already on line {seen[cid]}")
        seen[cid] = line
        if row.get("unit") not in UNITS:
            raise InputError(f"{where(path, line, 'unit')}: expected record or subject, got {row.get('unit')!r}")
        if unit is not None and row["unit"] != unit:
            raise InputError(f"{where(path, line, 'unit')}: '{row['unit']}' in a file of '{unit}' canaries")
        unit = row["unit"]
        included = row.get("included")
        if not isinstance(included, bool):
            raise InputError(f"{where(path, line, 'included')}: expected true or false, got {included!r}")
        texts = row.get("texts")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise InputError(f"{where(path, line, 'texts')}: expected a non-empty array of non-empty strings")
        subject = row.get("subject_id")
        if subject is not None and not isinstance(subject, str):
            raise InputError(f"{where(path, line, 'subject_id')}: expected a string or null")
        score_from = row.get("score_from", [0] * len(texts))
        if (not isinstance(score_from, list) or len(score_from) != len(texts)
                or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(t)
                           for i, t in zip(score_from, texts))):
            raise InputError(f"{where(path, line, 'score_from')}: expected one character offset per text, "
                             "inside it")
        canaries.append(AuditCanary(cid, unit, tuple(texts), included, subject, tuple(score_from)))
    if len(canaries) < 2:
        raise InputError(f"{path}: an audit needs at least 2 canaries, found {len(canaries)}")
    if all(c.included for c in canaries) or not any(c.included for c in canaries):
        raise InputError(f"{path}: every canary has the same inclusion bit; the audit needs both members and "
                         "non-members")
    return canaries


def add_to_corpus(corpus: Any, canaries: Sequence[AuditCanary]) -> Any:
    """The corpus plus each included canary's documents (train split, once each, kind "canary").

    A "subject" canary's documents share its subject id, so `privacy_unit = "subject"` clips them as
    one example; a "record" canary has no subject, so each is its own example under either unit.
    """
    from privaudit.data.corpus import Document

    docs = [Document(id=d["id"], subject_id=d["subject_id"], kind="canary", text=d["text"], split="train")
            for d in training_documents(canaries)]
    meta = {**dict(corpus.meta), "dp_audit_canaries": len(docs)}
    return replace(corpus, documents=(*corpus.documents, *docs), meta=meta)

