"""A synthetic personal corpus with known PII, controlled repetition, a held-out split and canaries.

Why each part exists:
- Personal documents (emails, chats, notes) mention a subject's name next to their email / phone /
  address in natural phrasings, so extraction attacks (ProPILE, Kim et al. 2023) have ground truth.
- Each training subject's documents are repeated `repeats` times: memorization grows with
  duplication (Kandpal et al. 2022; Carlini et al. 2023, "Quantifying Memorization"), so repeats
  are the dose in dose-response curves.
- Held-out subjects' documents come from the same templates but never enter training: the
  non-members for membership inference and the "not trained on" control for extraction.
- Canaries are random secrets after a fixed prefix ("my bank PIN is 4829 1736") inserted with
  chosen repeat counts; exposure ranks the secret among candidates of the same format
  (Carlini et al. 2019, "The Secret Sharer", Sec. 4).
- Filler documents without PII in both splits measure utility (perplexity) separately from leakage.

Templates are data (`privaudit/data/bundled/corpus_templates.json`). Generation uses only a seeded
`random.Random`, so the same subjects and seed give the same corpus on every machine.
"""

from __future__ import annotations

import json
import os
import random
import re
import string
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from itertools import product
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from privaudit.data.jsonl import json_type, read_jsonl, write_jsonl
from privaudit.data.subjects import STANDARD_PII_FIELDS, DataSubject
from privaudit.errors import InputError, where

DocumentKind = Literal["email", "chat", "note", "canary", "filler"]
Split = Literal["train", "heldout"]
DOCUMENT_KINDS: tuple[str, ...] = ("email", "chat", "note", "canary", "filler")
SPLITS: tuple[str, ...] = ("train", "heldout")
CORPUS_FORMAT = "privaudit-corpus"
CORPUS_VERSION = 1
# '#' is one random digit; other characters are literal. 10^8 candidates: large enough that a
# secret ranked first by the model is strong evidence (up to ~26.6 bits of exposure).
DEFAULT_CANARY_FORMAT = "#### ####"
_NAMED_FIELD_SLOTS = ("email", "phone", "address", "employer", "birthdate")
_PLACEHOLDER_RE = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Document:
    """One distinct document. `repeats` is how many copies enter its split (training duplication).

    `mentions` lists the subject's PII fields that appear verbatim in `text` (e.g. ("email",
    "phone")), so an attack knows which values the training data actually exposed.
    """

    id: str
    subject_id: str | None
    kind: str
    text: str
    split: str
    repeats: int = 1
    mentions: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"record": "document", "id": self.id, "subject_id": self.subject_id, "kind": self.kind,
                "split": self.split, "repeats": self.repeats, "mentions": list(self.mentions),
                "text": self.text}


@dataclass(frozen=True)
class CandidateSpace:
    """The set a canary secret is drawn from: `fmt` with each '#' one symbol of `alphabet`."""

    fmt: str = DEFAULT_CANARY_FORMAT
    alphabet: str = string.digits

    @property
    def slots(self) -> int:
        return self.fmt.count("#")

    @property
    def size(self) -> int:
        """Number of possible secrets |R| (exposure = log2 |R| - log2 rank)."""
        return len(self.alphabet) ** self.slots

    def describe(self) -> str:
        return (f"'{self.fmt}' with each '#' one of {len(self.alphabet)} symbols "
                f"({self.size:,} candidates)")

    def draw(self, rng: random.Random) -> str:
        return "".join(rng.choice(self.alphabet) if c == "#" else c for c in self.fmt)

    def matches(self, value: str) -> bool:
        return len(value) == len(self.fmt) and all(
            (v in self.alphabet) if f == "#" else (v == f) for v, f in zip(value, self.fmt))

    def from_index(self, index: int) -> str:
        """The index-th secret in lexicographic order (for exhaustive sampling of small spaces)."""
        symbols: list[str] = []
        for _ in range(self.slots):
            index, r = divmod(index, len(self.alphabet))
            symbols.append(self.alphabet[r])
        it = iter(reversed(symbols))
        return "".join(next(it) if c == "#" else c for c in self.fmt)


@dataclass(frozen=True)
class Canary:
    """A random secret after a fixed prefix, inserted `repeats` times into training (0 = a control)."""

    id: str
    prefix: str
    secret: str
    repeats: int
    fmt: str = DEFAULT_CANARY_FORMAT

    @property
    def text(self) -> str:
        """The inserted training text: prefix, one space, secret."""
        return f"{self.prefix} {self.secret}"

    @property
    def prompt(self) -> str:
        """What exposure scoring conditions on."""
        return self.prefix

    def continuation(self, secret: str | None = None) -> str:
        """The scored continuation for `secret` (default: the true one), with its leading space."""
        return f" {self.secret if secret is None else secret}"

    def candidate_space(self) -> CandidateSpace:
        return CandidateSpace(self.fmt)

    def to_json(self) -> dict[str, Any]:
        return {"record": "canary", "id": self.id, "prefix": self.prefix, "secret": self.secret,
                "repeats": self.repeats, "format": self.fmt}


def sample_canary_candidates(canary: Canary, n: int, seed: int = 0) -> list[str]:
    """`n` distinct secrets of the canary's format, never the true secret; deterministic for a seed.

    Exposure estimates the secret's rank among these (Secret Sharer, Sec. 4.2 "sampling").
    """
    space = canary.candidate_space()
    if n < 0 or n > space.size - 1:
        raise InputError(f"canary '{canary.id}': cannot sample {n} candidates from {space.describe()}")
    rng = random.Random(f"privaudit-canary-candidates:{seed}:{canary.id}")
    if n > space.size // 2:  # dense: enumerate and shuffle instead of rejection sampling
        pool = [s for s in (space.from_index(i) for i in range(space.size)) if s != canary.secret]
        rng.shuffle(pool)
        return pool[:n]
    seen: set[str] = {canary.secret}
    out: list[str] = []
    while len(out) < n:
        cand = space.draw(rng)
        if cand not in seen:
            seen.add(cand)
            out.append(cand)
    return out


@dataclass(frozen=True)
class Corpus:
    """Documents (each distinct, with its repeat count) and the canaries planted among them."""

    documents: tuple[Document, ...]
    canaries: tuple[Canary, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "documents", tuple(self.documents))
        object.__setattr__(self, "canaries", tuple(self.canaries))

    def split_documents(self, split: str) -> list[Document]:
        """Distinct documents of one split, in corpus order."""
        return [d for d in self.documents if d.split == split]

    def train_texts(self) -> list[str]:
        """Training texts with each document repeated `repeats` times, copies spread out in rounds.

        Round r holds every document with more than r repeats, so duplicates are not adjacent.
        """
        train = self.split_documents("train")
        rounds = max((d.repeats for d in train), default=0)
        return [d.text for r in range(rounds) for d in train if d.repeats > r]

    def heldout_texts(self) -> list[str]:
        """Held-out texts, each once (they are never trained on)."""
        return [d.text for d in self.split_documents("heldout")]

    def documents_for(self, subject_id: str) -> list[Document]:
        return [d for d in self.documents if d.subject_id == subject_id]

    def subject_ids(self, split: str) -> list[str]:
        """Subjects whose documents are in `split` (a subject is in exactly one split)."""
        return list(dict.fromkeys(d.subject_id for d in self.documents
                                  if d.split == split and d.subject_id is not None))

    def train_subject_ids(self) -> list[str]:
        return self.subject_ids("train")

    def heldout_subject_ids(self) -> list[str]:
        return self.subject_ids("heldout")

    def repeats_of(self, subject_id: str) -> int:
        """How many times a subject's documents were trained on (0 for held-out subjects)."""
        return max((d.repeats for d in self.documents_for(subject_id) if d.split == "train"), default=0)

    def canary(self, canary_id: str) -> Canary:
        for c in self.canaries:
            if c.id == canary_id:
                return c
        raise KeyError(canary_id)

    def write(self, path: str | os.PathLike[str]) -> int:
        """Write as JSONL (meta line, canaries, documents); atomic and user-only."""
        rows: list[dict[str, Any]] = [
            {"record": "meta", "format": CORPUS_FORMAT, "version": CORPUS_VERSION, **dict(self.meta)}]
        rows += [c.to_json() for c in self.canaries]
        rows += [d.to_json() for d in self.documents]
        return write_jsonl(path, rows)


# --- loading -------------------------------------------------------------------------------------

def _str_field(row: Mapping[str, Any], key: str, path: Any, line: int, *, optional: bool = False) -> str | None:
    value = row.get(key)
    if value is None:
        if optional:
            return None
        raise InputError(f"{where(path, line, key)}: required field is missing")
    if not isinstance(value, str):
        raise InputError(f"{where(path, line, key)}: expected a string, got {json_type(value)}")
    if not value.strip():
        raise InputError(f"{where(path, line, key)}: empty value")
    return value


def _int_field(row: Mapping[str, Any], key: str, path: Any, line: int, minimum: int, default: int | None = None) -> int:
    value = row.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{where(path, line, key)}: expected an integer, got {json_type(value)}")
    if value < minimum:
        raise InputError(f"{where(path, line, key)}: must be >= {minimum}, got {value}")
    return value


def load_corpus(path: str | os.PathLike[str]) -> Corpus:
    """Read and validate a corpus JSONL file written by `Corpus.write` (or by hand).

    Checks record types, kinds, splits, repeat counts, duplicate ids, that a subject sits in one
    split only, and that each canary's secret fits its format and is inserted as a document.
    """
    documents: list[Document] = []
    canaries: list[Canary] = []
    meta: dict[str, Any] = {}
    ids: dict[str, int] = {}  # document ids
    subject_split: dict[str, tuple[str, int]] = {}
    canary_lines: dict[str, int] = {}
    for line, row in read_jsonl(path):
        record = row.get("record", "document")
        if record == "meta":
            if row.get("format", CORPUS_FORMAT) != CORPUS_FORMAT:
                raise InputError(f"{where(path, line, 'format')}: not a privaudit corpus ({row.get('format')!r})")
            meta = {k: v for k, v in row.items() if k not in ("record", "format", "version")}
            continue
        if record not in ("document", "canary"):
            raise InputError(f"{where(path, line, 'record')}: expected 'meta', 'document' or 'canary', got {record!r}")
        rid = _str_field(row, "id", path, line)
        assert rid is not None
        seen = canary_lines if record == "canary" else ids
        if rid in seen:
            raise InputError(f"{where(path, line, 'id')}: duplicate {record} id '{rid}' (first on line {seen[rid]})")
        if record == "canary":
            fmt = _str_field(row, "format", path, line, optional=True) or DEFAULT_CANARY_FORMAT
            if "#" not in fmt:
                raise InputError(f"{where(path, line, 'format')}: a canary format needs at least one '#'")
            canary = Canary(id=rid, prefix=_str_field(row, "prefix", path, line) or "",
                            secret=_str_field(row, "secret", path, line) or "",
                            repeats=_int_field(row, "repeats", path, line, minimum=0), fmt=fmt)
            if not canary.candidate_space().matches(canary.secret):
                raise InputError(f"{where(path, line, 'secret')}: does not match format '{fmt}'")
            canaries.append(canary)
            canary_lines[rid] = line
            continue
        kind = _str_field(row, "kind", path, line)
        if kind not in DOCUMENT_KINDS:
            raise InputError(f"{where(path, line, 'kind')}: expected one of {', '.join(DOCUMENT_KINDS)}, got {kind!r}")
        split = _str_field(row, "split", path, line)
        if split not in SPLITS:
            raise InputError(f"{where(path, line, 'split')}: expected 'train' or 'heldout', got {split!r}")
        subject_id = _str_field(row, "subject_id", path, line, optional=True)
        mentions = row.get("mentions", [])
        if not isinstance(mentions, list) or not all(isinstance(m, str) for m in mentions):
            raise InputError(f"{where(path, line, 'mentions')}: expected an array of field names")
        doc = Document(id=rid, subject_id=subject_id, kind=kind, text=_str_field(row, "text", path, line) or "",
                       split=split, repeats=_int_field(row, "repeats", path, line, minimum=1, default=1),
                       mentions=tuple(mentions))
        if subject_id is not None:
            prev = subject_split.setdefault(subject_id, (split, line))
            if prev[0] != split:
                raise InputError(f"{where(path, line, 'split')}: subject '{subject_id}' is in '{prev[0]}' "
                                 f"on line {prev[1]} and in '{split}' here (a subject belongs to one split)")
        documents.append(doc)
        ids[rid] = line
    inserted = {d.id: d for d in documents if d.kind == "canary"}
    for c in canaries:
        doc = inserted.get(c.id)
        if c.repeats > 0 and (doc is None or doc.text != c.text or doc.repeats != c.repeats or doc.split != "train"):
            raise InputError(f"{where(path, canary_lines[c.id], 'repeats')}: canary '{c.id}' needs a training "
                             f"document with the same id, text and {c.repeats} repeats")
    return Corpus(documents=tuple(documents), canaries=tuple(canaries), meta=meta)


# --- generation ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Template:
    kind: str
    text: str
    fields: frozenset[str]  # subject fields the template needs


@lru_cache(maxsize=1)
def _templates() -> dict[str, Any]:
    raw = resources.files("privaudit.data").joinpath("bundled/corpus_templates.json").read_text("utf-8")
    return json.loads(raw)


def _needed_fields(text: str) -> frozenset[str]:
    return frozenset(p for p in _PLACEHOLDER_RE.findall(text) if p in _NAMED_FIELD_SLOTS)


def _fill(text: str, values: Mapping[str, str], rng: random.Random) -> str:
    slots = _templates()["slots"]

    chosen = dict(values)  # one value per slot per document, so e.g. a chat's times agree

    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in chosen:
            chosen[key] = rng.choice(slots[key])
        return chosen[key]

    return _PLACEHOLDER_RE.sub(sub, text)


def _candidates(subject: DataSubject) -> list[tuple[_Template, dict[str, str], frozenset[str]]]:
    """Every (template, bindings, PII fields mentioned) usable for this subject."""
    data = _templates()
    pii = subject.pii_fields()
    base = {"name": subject.name, "first": subject.first_name, "last": subject.name.split()[-1]}
    out = []
    for t in data["personal"]:
        need = _needed_fields(t["text"])
        if need <= pii.keys():
            out.append((_Template(t["kind"], t["text"], need), {**base, **{k: pii[k] for k in need}}, need))
    for key, value in pii.items():
        if key in _NAMED_FIELD_SLOTS:
            continue
        label = key.replace("_", " ").replace("-", " ")
        for t in data["extra"]:
            out.append((_Template(t["kind"], t["text"], frozenset({key})),
                        {**base, "label": label, "value": value}, frozenset({key})))
    return out


def _subject_documents(subject: DataSubject, k: int, split: str, repeats: int, rng: random.Random) -> list[Document]:
    """`k` distinct documents for one subject that together mention its email, phone and address
    (when k allows), then as many other PII fields as they can; otherwise templates at random."""
    pool = _candidates(subject)
    uncovered = set(subject.pii_fields())
    docs: list[Document] = []
    used: set[int] = set()
    for j in range(k):
        avail = [i for i in range(len(pool)) if i not in used]
        if not avail:  # more documents than templates: reuse templates (slots still vary the text)
            used.clear()
            avail = list(range(len(pool)))
        if not avail:
            name_only = _templates()["name_only"]
            t = name_only[j % len(name_only)]
            tmpl, values, fields_ = _Template(t["kind"], t["text"], frozenset()), {
                "name": subject.name, "first": subject.first_name}, frozenset()
        else:
            # Email, phone and address first (what extraction probes ask for), then the extras.
            core = [i for i in avail if pool[i][2] & uncovered & set(STANDARD_PII_FIELDS)]
            covering = [i for i in avail if pool[i][2] & uncovered]
            i = rng.choice(core or covering or avail)
            used.add(i)
            tmpl, values, fields_ = pool[i]
        uncovered -= fields_
        text = _fill(tmpl.text, values, rng)
        docs.append(Document(id=f"{subject.id}/{tmpl.kind}-{j}", subject_id=subject.id, kind=tmpl.kind,
                             text=text, split=split, repeats=repeats,
                             mentions=tuple(f for f in subject.pii_fields() if f in fields_)))
    return docs


def _canary_prefixes(n: int, rng: random.Random) -> list[str]:
    data = _templates()
    combos = [f"{owner} {obj}" for owner, obj in product(data["canary_owners"], data["canary_objects"])]
    if n > len(combos):
        raise InputError(f"at most {len(combos)} canaries are supported, asked for {n}")
    return rng.sample(combos, n)


def assign_repeats(subjects: Sequence[DataSubject], levels: Sequence[int], seed: int = 0) -> dict[str, int]:
    """Spread repeat levels evenly over subjects (seeded), for dose-response within one corpus."""
    if not levels or any(int(lv) < 1 for lv in levels):
        raise InputError(f"repeat levels must be integers >= 1, got {list(levels)}")
    order = list(range(len(subjects)))
    random.Random(f"privaudit-repeats:{seed}").shuffle(order)
    return {subjects[i].id: int(levels[rank % len(levels)]) for rank, i in enumerate(order)}


def generate_corpus(
    subjects: Sequence[DataSubject],
    *,
    repeats: int | Mapping[str, int] = 1,
    seed: int = 0,
    heldout_subject_fraction: float = 0.2,
    docs_per_subject: int = 3,
    canaries: int | Sequence[int] = 0,
    filler_docs: int = 20,
    canary_format: str = DEFAULT_CANARY_FORMAT,
) -> Corpus:
    """Generate a corpus over `subjects`; deterministic for (subjects, parameters, seed).

    `repeats`: copies of each training subject's documents (an int for all, or a count per subject
    id; held-out subjects' counts are ignored). `canaries`: an int n plants n canaries inserted
    once each; a sequence plants one canary per entry with that repeat count (0 = never inserted, a
    control). A `heldout_subject_fraction` share of subjects (at least one when the fraction is > 0
    and there are two or more subjects) and of filler documents goes to the held-out split.
    """
    if docs_per_subject < 1:
        raise InputError(f"docs_per_subject must be >= 1, got {docs_per_subject}")
    if not 0.0 <= heldout_subject_fraction < 1.0:
        raise InputError(f"heldout_subject_fraction must be in [0, 1), got {heldout_subject_fraction}")
    if filler_docs < 0:
        raise InputError(f"filler_docs must be >= 0, got {filler_docs}")
    if "#" not in canary_format:
        raise InputError(f"canary format '{canary_format}' needs at least one '#'")
    ids = [s.id for s in subjects]
    if len(set(ids)) != len(ids):
        raise InputError("subjects have duplicate ids")
    if isinstance(repeats, Mapping):
        missing = [i for i in ids if i not in repeats]
        if missing:
            raise InputError(f"repeats: no count for subject '{missing[0]}'")
        per_subject = {i: repeats[i] for i in ids}
    else:
        per_subject = {i: repeats for i in ids}
    for sid, count in per_subject.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InputError(f"repeats for subject '{sid}' must be an integer >= 1, got {count!r}")
    canary_repeats = [1] * canaries if isinstance(canaries, int) else [int(c) for c in canaries]
    if any(c < 0 for c in canary_repeats):
        raise InputError(f"canary repeat counts must be >= 0, got {canary_repeats}")

    rng = random.Random(f"privaudit-corpus:{seed}")
    n_heldout = round(len(subjects) * heldout_subject_fraction)
    if heldout_subject_fraction > 0 and len(subjects) >= 2:
        n_heldout = min(max(n_heldout, 1), len(subjects) - 1)
    heldout = set(rng.sample(ids, n_heldout))

    documents: list[Document] = []
    for subject in subjects:
        split = "heldout" if subject.id in heldout else "train"
        count = 1 if split == "heldout" else per_subject[subject.id]
        documents += _subject_documents(subject, docs_per_subject, split, count, rng)

    n_filler_heldout = round(filler_docs * heldout_subject_fraction)
    if heldout_subject_fraction > 0 and filler_docs >= 2:
        n_filler_heldout = min(max(n_filler_heldout, 1), filler_docs - 1)
    filler_texts = _filler_texts(filler_docs, rng)
    for i, text in enumerate(filler_texts):
        split = "heldout" if i >= filler_docs - n_filler_heldout else "train"
        documents.append(Document(id=f"filler/{i}", subject_id=None, kind="filler", text=text, split=split))

    planted: list[Canary] = []
    space = CandidateSpace(canary_format)
    secrets: set[str] = set()
    for i, (prefix, count) in enumerate(zip(_canary_prefixes(len(canary_repeats), rng), canary_repeats)):
        secret = space.draw(rng)
        while secret in secrets:
            secret = space.draw(rng)
        secrets.add(secret)
        canary = Canary(id=f"canary-{i:02d}", prefix=prefix, secret=secret, repeats=count, fmt=canary_format)
        planted.append(canary)
        if count > 0:
            documents.append(Document(id=canary.id, subject_id=None, kind="canary", text=canary.text,
                                      split="train", repeats=count))
    meta = {"generator": "privaudit.data.corpus.generate_corpus", "seed": seed,
            "docs_per_subject": docs_per_subject, "heldout_subject_fraction": heldout_subject_fraction,
            "filler_docs": filler_docs, "num_subjects": len(subjects)}
    return Corpus(documents=tuple(documents), canaries=tuple(planted), meta=meta)


def _filler_texts(n: int, rng: random.Random) -> list[str]:
    """`n` distinct PII-free texts (templates x slots give thousands of combinations)."""
    templates = _templates()["filler"]
    out: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n:
        text = _fill(rng.choice(templates), {}, rng)
        attempts += 1
        if text in seen and attempts < 50 * (n + 10):
            continue
        seen.add(text)
        out.append(text)
    return out


def corpus_summary(corpus: Corpus) -> dict[str, Any]:
    """Counts for CLI output and validation messages."""
    kinds: dict[str, int] = {}
    for d in corpus.documents:
        kinds[d.kind] = kinds.get(d.kind, 0) + 1
    return {
        "documents": len(corpus.documents),
        "train_texts": len(corpus.train_texts()),
        "heldout_texts": len(corpus.heldout_texts()),
        "train_subjects": len(corpus.train_subject_ids()),
        "heldout_subjects": len(corpus.heldout_subject_ids()),
        "canaries": len(corpus.canaries),
        "kinds": kinds,
    }
