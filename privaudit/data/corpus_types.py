"""The synthetic corpus's data types: documents, canaries with their candidate space, the corpus.

A `Document` is one distinct text with its repeat count (the dose of memorization studies); a
`Canary` is a random secret after a fixed prefix, ranked for exposure among the candidates of its
`CandidateSpace` (Carlini et al. 2019, "The Secret Sharer", Sec. 4). `Corpus.write` stores them as
JSONL; `corpus_loading.load_corpus` reads that back with validation.
"""

from __future__ import annotations

import os
import random
import string
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from privaudit.data.jsonl import write_jsonl
from privaudit.errors import InputError

DocumentKind = Literal["email", "chat", "note", "canary", "filler"]
Split = Literal["train", "heldout"]
DOCUMENT_KINDS: tuple[str, ...] = ("email", "chat", "note", "canary", "filler")
SPLITS: tuple[str, ...] = ("train", "heldout")
CORPUS_FORMAT = "privaudit-corpus"
CORPUS_VERSION = 1
# '#' is one random digit; other characters are literal. 10^8 candidates: large enough that a
# secret ranked first by the model is strong evidence (up to ~26.6 bits of exposure).
DEFAULT_CANARY_FORMAT = "#### ####"


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
