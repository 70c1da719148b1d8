"""Generating the synthetic personal corpus: documents with known PII, repeats, held-out split, canaries.

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
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from itertools import product
from typing import Any, Mapping, Sequence

from privaudit.data.corpus_types import DEFAULT_CANARY_FORMAT, CandidateSpace, Canary, Corpus, Document
from privaudit.data.subjects import STANDARD_PII_FIELDS, DataSubject
from privaudit.errors import InputError

_NAMED_FIELD_SLOTS = ("email", "phone", "address", "employer", "birthdate")
_PLACEHOLDER_RE = re.compile(r"\{([a-z_]+)\}")


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
