"""Masked training sentences and their candidates: the pure half of the reconstruction attack.

Lukas et al. ("Analyzing Leakage of Personally Identifiable Information in Language Models", IEEE
S&P 2023, Sec. 4.3-4.4) attack a sentence whose PII was masked, as a scrubbed dataset holds it:
"... email Jane Roe at [MASK]. ..." Each candidate value is filled into the mask and the *whole*
sentence is scored, so the text after the mask counts as much as the text before it (a left-to-right
extraction prompt sees only the prefix). This module builds those sentences from the training
corpus (or a user's template file), picks candidates out of generated text, and ranks candidates by
the sentence's likelihood. No model calls here.

Ranking: a candidate's score is the mean token log-probability of the filled-in sentence, i.e.
minus the log of its perplexity; Lukas et al. rank by perplexity of the full query (their
`PerplexityReconstructionAttack`), which does not favour short candidates the way a summed
log-probability does. Ties count against the truth (`metrics.rank_of_truth`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from privaudit.data.corpus_types import Corpus
from privaudit.data.subjects import DataSubject
from privaudit.errors import InputError
from privaudit.metrics import exposure_bits, rank_of_truth

MASK = "[MASK]"
# Sentence ends: . ! ? followed by whitespace, and line breaks (the corpus's e-mails are line-based).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class MaskedSentence:
    """One training sentence with one PII value masked: `template` holds `MASK` exactly once."""

    subject_id: str
    pii_type: str
    template: str
    truth: str
    source: str  # where it came from: "corpus:DOC_ID" or "templates:FILE:LINE"

    def __post_init__(self) -> None:
        if self.template.count(MASK) != 1:
            raise ValueError(f"{self.source}: a masked sentence needs exactly one {MASK}")

    @property
    def key(self) -> str:
        """Stable item key: subject, field and a hash of the masked sentence (a corpus edit changes it)."""
        digest = hashlib.sha256(self.template.encode()).hexdigest()[:12]
        return f"{self.subject_id}|{self.pii_type}|{digest}"

    @property
    def prefix(self) -> str:
        return self.template.split(MASK)[0]

    @property
    def suffix(self) -> str:
        return self.template.split(MASK)[1]

    def fill(self, value: str) -> str:
        """The sentence with `value` in the mask."""
        return self.template.replace(MASK, value)


def split_sentences(text: str) -> list[str]:
    """Sentences and lines of `text`, stripped, empty ones dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _placeholder(field: str) -> str:
    """What the scrub defense's `replace` operator writes for this field (Presidio's entity type)."""
    from privaudit.pii import SUBJECT_FIELD_ENTITIES

    return f"<{SUBJECT_FIELD_ENTITIES.get(field, field.upper())}>"


def mask_value(sentence: str, value: str, others: Mapping[str, str]) -> str:
    """`sentence` with the first `value` masked and the subject's *other* PII values as placeholders.

    The other values are replaced the way the scrub defense replaces them (`<PHONE_NUMBER>`), so the
    attacker gets no more of the subject's PII than a scrubbed corpus would give (Lukas et al. mask
    non-target PII too). The name stays: the attacker knows whom the sentence is about.
    """
    at = sentence.find(value)
    before, after = sentence[:at], sentence[at + len(value):]
    for field, other in sorted(others.items(), key=lambda kv: -len(kv[1])):
        if other:  # the target value again after the mask is a placeholder too: it would give the answer away
            before, after = before.replace(other, _placeholder(field)), after.replace(other, _placeholder(field))
    return f"{before}{MASK}{after}"


def _context_of(text: str, value: str) -> str | None:
    """The sentence holding `value`; its line when a sentence break falls inside the value
    ("12 Elm St. Springfield"); None when the value is not in `text`."""
    for sentence in split_sentences(text):
        if value in sentence:
            return sentence
    for line in text.splitlines():
        if value in line:
            return line.strip()
    return None


def corpus_sentences(corpus: Corpus, subjects: Sequence[DataSubject], *, pii_types: Sequence[str] = (),
                     split: str = "train", max_per_field: int = 1, context: str = "sentence") -> list[MaskedSentence]:
    """Masked sentences of the subjects' documents in `split`: one per (subject, field) by default.

    Only values that occur verbatim in a document count (what the training data actually exposed);
    identical masked sentences are kept once. `max_per_field` = 0 keeps every distinct sentence.
    `context="document"` masks the value in its whole document instead of its sentence (more text
    on both sides of the mask; Lukas et al. attack sentences).
    """
    by_id = {s.id: s for s in subjects}
    out: list[MaskedSentence] = []
    seen: dict[tuple[str, str], set[str]] = {}
    for doc in corpus.split_documents(split):
        subject = by_id.get(doc.subject_id or "")
        if subject is None:
            continue
        fields = subject.pii_fields()
        for field, value in fields.items():
            if pii_types and field not in pii_types:
                continue
            sentence = (doc.text if value in doc.text else None) if context == "document" else _context_of(doc.text, value)
            if sentence is None:
                continue
            template = mask_value(sentence, value, fields)
            done = seen.setdefault((subject.id, field), set())
            if template in done or (max_per_field and len(done) >= max_per_field):
                continue
            done.add(template)
            out.append(MaskedSentence(subject.id, field, template, value, f"corpus:{doc.id}"))
    return out


def load_masked_templates(path: str | Path, subjects: Sequence[DataSubject]) -> list[MaskedSentence]:
    """A user's masked sentences: JSONL rows `{"subject_id", "pii_type", "template": "... [MASK] ..."}`.

    The truth is the subject's value of `pii_type`; every defect is a one-line error naming the line.
    """
    by_id = {s.id: s for s in subjects}
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read masked templates ({exc.strerror or exc})") from None
    out: list[MaskedSentence] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{where}: expected an object with subject_id, pii_type, template")
        for key in ("subject_id", "pii_type", "template"):
            if not isinstance(row.get(key), str) or not row[key]:
                raise InputError(f"{where}: {key}: a non-empty string is required")
        subject = by_id.get(row["subject_id"])
        if subject is None:
            raise InputError(f"{where}: subject_id: no subject '{row['subject_id']}' in the subjects file")
        truth = subject.pii_fields().get(row["pii_type"])
        if not truth:
            raise InputError(f"{where}: pii_type: subject '{subject.id}' has no '{row['pii_type']}'")
        if row["template"].count(MASK) != 1:
            raise InputError(f"{where}: template: needs exactly one {MASK}, found {row['template'].count(MASK)}")
        out.append(MaskedSentence(subject.id, row["pii_type"], row["template"], truth, f"templates:{path.name}:{number}"))
    if not out:
        raise InputError(f"{path}: no masked templates")
    return out


def sentence_score(token_logprobs: Sequence[float | None]) -> float:
    """Mean token log-probability of a sentence (= -log perplexity); -inf for an empty one."""
    values = [float(v) for v in token_logprobs if v is not None]
    return sum(values) / len(values) if values else -math.inf


@dataclass(frozen=True)
class Ranking:
    """Candidates by descending score, and where the truth landed (rank 0: not among them)."""

    ranked: tuple[tuple[str, float], ...]
    rank: int

    @property
    def num_candidates(self) -> int:
        return len(self.ranked)

    @property
    def top1(self) -> bool:
        return self.rank == 1

    @property
    def top5(self) -> bool:
        return 1 <= self.rank <= 5

    @property
    def exposure(self) -> float:
        """Exposure bits of the truth (Carlini et al. 2019, Sec. 4); NaN when it is not a candidate."""
        return exposure_bits(self.rank, self.num_candidates) if self.rank else math.nan


def same_value(a: str, b: str) -> bool:
    """Candidates compare with whitespace runs collapsed (as `pii_matching.exact_match` does)."""
    return _WS.sub(" ", a).strip() == _WS.sub(" ", b).strip()


def rank_candidates(truth: str, scores: Mapping[str, float]) -> Ranking:
    """Rank `scores` (candidate -> sentence score); the truth's rank counts ties against it.

    The ranked list puts the truth *after* any candidate that ties with it, so `ranked[0]` being the
    truth and `rank == 1` always agree.
    """
    truth_key = next((c for c in scores if same_value(c, truth)), None)
    others = [s for c, s in scores.items() if c != truth_key]
    rank = rank_of_truth(scores[truth_key], others) if truth_key is not None else 0
    ordered = sorted(scores.items(), key=lambda cs: (-cs[1], cs[0] == truth_key, cs[0]))
    return Ranking(ranked=tuple(ordered), rank=rank)


# Dates as people and Faker write them: 1968-03-05, 03/05/1968, March 5, 1968, 5 March 1968.
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?"
DATE_RE = re.compile(rf"\b(?:\d{{4}}-\d{{1,2}}-\d{{1,2}}|\d{{1,2}}/\d{{1,2}}/\d{{2,4}}|{_MONTH}\s+\d{{1,2}},?\s+\d{{4}}"
                     rf"|\d{{1,2}}\s+{_MONTH}\s+\d{{4}})\b")


def _detectors(pii_type: str) -> tuple[re.Pattern[str], ...]:
    """The patterns that find values of `pii_type` in text; empty when privaudit has none."""
    from privaudit.masking import EMAIL_RE, PHONE_RE
    from privaudit.pii import ADDRESS_PATTERNS

    return {"email": (EMAIL_RE,), "phone": (PHONE_RE,), "birthdate": (DATE_RE,),
            "address": tuple(re.compile(p) for p in ADDRESS_PATTERNS)}.get(pii_type, ())


def extract_candidates(pii_type: str, texts: Iterable[str], *, limit: int = 50) -> list[str]:
    """Distinct values of `pii_type` in generated `texts`, in order of first appearance.

    Lukas et al. tag generated text with an NER model; offline, privaudit's own patterns do it (the
    e-mail and phone patterns of `privaudit.masking`, the scrub defense's US-address patterns, a
    date pattern), the strongest pattern that finds anything first. A type without a pattern
    (employer, a user's extra field) takes the generated text up to the end of its first sentence.
    """
    texts = [t for t in texts if t and t.strip()]
    found: list[str] = []
    for pattern in _detectors(pii_type):
        found = [m.group(0).rstrip(".") for t in texts for m in pattern.finditer(t)]
        if found:
            break
    if not _detectors(pii_type):
        found = [s for t in texts if (s := (split_sentences(t) or [""])[0].rstrip(".,;"))]
    distinct = list(dict.fromkeys(_WS.sub(" ", v).strip() for v in found if v.strip()))
    return distinct[:limit]
