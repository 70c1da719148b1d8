"""Masking of PII in everything a report shows: known subject values plus pattern-detected PII.

An audit report holds the very PII it found, so every report format masks it by default
(`jane.roe@example.com` -> `j***@e***.com`) and `--show-pii` opts in. Two sources are masked:
the *known* values (the truth columns of each attack's records, declared by `Attack.pii_record_fields`),
matched case-insensitively wherever they occur, longest first; and PII-looking strings (emails,
phone numbers) that a model produced about anyone, found by `privaudit.pii.detect_pii` when that
module is available and by conservative regexes in any case.

A mask keeps just enough to tell findings apart (first letters, last two phone digits) and never
the value itself.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

MASK = "***"

# Parts bounded by RFC 5321's lengths (local part 64, label 63): an unbounded `[...]+@` retries
# from every start position and is quadratic on a megabyte of letters without an '@'.
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,8}\.[A-Za-z]{2,24}")
# North-American style and international numbers with separators, the shapes Faker and people
# write. Bounded on both sides by non-word characters so hashes, versions and ISO dates (which
# have a different digit grouping) are not taken for phones.
PHONE_RE = re.compile(
    r"(?<![\w+])(?:"
    r"(?:(?:\+|00)?\d{1,3}[\s.\-]?)?\(?\d{3}\)?[\s.\-]?\d{3}[\s.\-]?\d{4}"  # +1-555-123-4567, 5551234567
    r"|\(\d{3}\)\s?\d{3}[\s.\-]?\d{4}"  # (555) 123-4567
    r"|\d{3}[\s.\-]\d{4}"  # 555-0101 (seven digits)
    r"|\+\d{1,3}(?:[\s.\-]?\d{2,4}){2,5}"  # +44 20 7946 0958
    r")(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?!\w)"
)
_NAME_RE = re.compile(r"^[A-Z][A-Za-z'\-.]*(?:\s+[A-Z][A-Za-z'\-.]*){1,3}$")
_PHONEISH_RE = re.compile(r"^[\d\s().+\-x]+$")
# Short known values (an age, a two-letter state) are only masked as whole words; longer ones
# anywhere, so "contactjane.roe@example.comnow" is masked too.
_SUBSTRING_MIN_LEN = 6
_KNOWN_MIN_LEN = 2
_EAGER_VALUES = 2000  # more known values than this: the regex is built per tree, over the candidates


def mask_value(value: str) -> str:
    """Mask one PII value by its shape: email, phone, person name, or anything else."""
    s = value.strip()
    if not s:
        return value
    if EMAIL_RE.fullmatch(s):
        return _mask_email(s)
    digits = re.sub(r"\D", "", s)
    if _PHONEISH_RE.match(s) and len(digits) >= 7:
        return MASK + digits[-2:]
    if _NAME_RE.match(s):
        return " ".join(part[0] + MASK for part in s.split())
    return s[0] + MASK if len(s) > 3 else MASK


def _mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    labels = domain.split(".")
    return f"{local[:1]}{MASK}@{labels[0][:1]}{MASK}.{labels[-1]}"


def _presidio_detector() -> Callable[[list[str]], list[list[tuple[int, int]]]] | None:
    """Batched email/phone spans from privaudit.pii.detect_pii (Presidio patterns), if installed."""
    try:
        from privaudit.pii import detect_pii
    except ImportError:
        return None

    def detect(texts: list[str]) -> list[list[tuple[int, int]]]:
        found = detect_pii(texts, entities=["EMAIL_ADDRESS", "PHONE_NUMBER"])
        return [[(span.start, span.end) for span in spans] for spans in found]

    return detect


def _may_hold_contact(text: str) -> bool:
    """Cheap pre-filter: only texts with an '@' or 7+ digits can hold an email or a phone."""
    return "@" in text or sum(ch.isdigit() for ch in text) >= 7


@dataclass
class Masker:
    """Masks known values (longest first, case-insensitive) and pattern-detected PII in strings.

    `use_detector` adds privaudit.pii.detect_pii (Presidio's email/phone recognizers) to the
    regexes. It is off by default for reports: building the analyzer took ~28 s on the 2-core
    CI machine, and its phone recognizer (score 0.4) also takes decimals such as
    "0.613809583977621" for phone numbers, which would mangle numbers shown in reports; the
    regexes cover the email and phone shapes that Faker, people and models write.
    """

    known_values: Iterable[str] = ()
    patterns: bool = True
    use_detector: bool = False
    _known: list[str] = field(init=False, repr=False)
    _known_re: re.Pattern[str] | None = field(init=False, repr=False)
    _masks: dict[str, str] = field(init=False, repr=False)
    _detector: Callable[[list[str]], list[list[tuple[int, int]]]] | None = field(init=False, repr=False)
    _detected: dict[str, list[tuple[int, int]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        unique = {v.strip() for v in self.known_values if isinstance(v, str) and len(v.strip()) >= _KNOWN_MIN_LEN}
        self._known = sorted(unique, key=lambda v: (-len(v), v))
        self._masks = {v.casefold(): mask_value(v) for v in self._known}
        # A user base's worth of values (100k subjects) is compiled only when a string needs it:
        # `mask_tree` first narrows the values to those that can occur in the tree (`_candidates`).
        self._known_re = _known_regex(self._known) if len(self._known) <= _EAGER_VALUES else None
        self._detector = _presidio_detector() if self.use_detector else None
        self._detected = {}

    @property
    def known(self) -> tuple[str, ...]:
        """The known values this masker hides (longest first)."""
        return tuple(self._known)

    def __call__(self, text: str) -> str:
        return self.mask_text(text)

    def mask_text(self, text: str) -> str:
        """`text` with every known value and every detected email/phone replaced by its mask."""
        if not isinstance(text, str) or not text:
            return text
        spans: list[tuple[int, int, str]] = []
        if self._known_re is None and self._known:
            self._known_re = _known_regex(self._known)
        if self._known_re is not None:
            for m in self._known_re.finditer(text):
                spans.append((m.start(), m.end(), self._masks.get(m.group(0).casefold()) or mask_value(m.group(0))))
        if self.patterns:
            for regex in ((EMAIL_RE, PHONE_RE) if "@" in text else (PHONE_RE,)):
                for m in regex.finditer(text):
                    spans.append((m.start(), m.end(), mask_value(m.group(0))))
            if self._detector is not None and _may_hold_contact(text):
                if text not in self._detected:
                    self.prepare([text])
                for start, end in self._detected.get(text, ()):
                    spans.append((start, end, mask_value(text[start:end])))
        if not spans:
            return text
        return _apply(text, _merge(spans, text))

    def prepare(self, texts: Iterable[str]) -> None:
        """Run the Presidio detector once, batched, over the texts that may hold contacts."""
        if self._detector is None:
            return
        todo = list(dict.fromkeys(t for t in texts if t not in self._detected and _may_hold_contact(t)))
        if todo:
            self._detected.update(zip(todo, self._detector(todo)))

    def mask_tree(self, obj: Any) -> Any:
        """A copy of JSON-able `obj` with every string (dict keys included) masked."""
        if self._detector is not None:
            self.prepare(_strings(obj))
        if len(self._known) > _EAGER_VALUES:
            return mask_tree(obj, self._narrowed(list(_strings(obj))))
        return mask_tree(obj, self)

    def _narrowed(self, texts: list[str]) -> "Masker":
        """This masker over only the known values that can occur in `texts` (same masks on them).

        Alternation takes the first alternative that matches; dropping alternatives that match
        nowhere in `texts` changes no match. A value is kept unless it is ASCII, 4+ characters
        and, lower-cased, occurs nowhere in the lower-cased, all-ASCII texts (a 4-gram set screens
        first, so the substring search runs only for values whose first 4 characters occur).
        """
        joined = "\x00".join(texts).lower()
        if not joined.isascii():
            return self  # IGNORECASE equates some non-ASCII letters with ASCII ones: no shortcut
        grams = {joined[i:i + 4] for i in range(len(joined) - 3)}
        keep = [v for v in self._known if len(v) < 4 or not v.isascii()
                or (v[:4].lower() in grams and v.lower() in joined)]
        narrowed = Masker(keep, patterns=self.patterns)
        narrowed._detector, narrowed._detected = self._detector, self._detected
        return narrowed


def _known_regex(known: list[str]) -> re.Pattern[str] | None:
    alternatives = []
    for v in known:
        esc = re.escape(v)
        alternatives.append(esc if len(v) >= _SUBSTRING_MIN_LEN else rf"(?<![\w.]){esc}(?!\w|\.\d)")
    # Python's alternation takes the first alternative that matches, so longest-first order
    # masks "Jane Roe-Smith" whole rather than "Jane Roe" plus a tail.
    return re.compile("|".join(alternatives), re.IGNORECASE) if alternatives else None


# A model also writes *parts* of PII (a phone's first digits, an address number, an email cut off
# before its domain) that no whole known value or pattern matches. Evidence excerpts show raw model
# text around a hit, so there every run of 3+ digits and every token with an '@' is masked too.
_DIGIT_RUN_RE = re.compile(r"\+?\(?\d[\d().\-/ ]*\d|\d")
_AT_TOKEN_RE = re.compile(r"[^\s<>\"']*@[^\s<>\"']*")


def mask_fragments(text: str) -> str:
    """`text` with digit runs of 3+ digits -> `***` and @-tokens masked (already masked ones kept)."""
    if not isinstance(text, str) or not text:
        return text

    def digits(m: re.Match[str]) -> str:
        return MASK if sum(ch.isdigit() for ch in m.group(0)) >= 3 else m.group(0)

    def at_token(m: re.Match[str]) -> str:
        tok = m.group(0)
        return tok if MASK in tok else (tok[:1] + MASK + "@" + MASK)

    return _AT_TOKEN_RE.sub(at_token, _DIGIT_RUN_RE.sub(digits, text))


def _merge(spans: list[tuple[int, int, str]], text: str) -> list[tuple[int, int, str]]:
    """Overlapping spans become one span covering them all, masked by its widest member's rule."""
    spans.sort(key=lambda s: (s[0], -(s[1] - s[0])))
    merged: list[tuple[int, int, str]] = []
    for start, end, repl in spans:
        if merged and start < merged[-1][1]:
            p_start, p_end, p_repl = merged[-1]
            if end > p_end:
                merged[-1] = (p_start, end, mask_value(text[p_start:end]))
            continue
        merged.append((start, end, repl))
    return merged


def _apply(text: str, spans: list[tuple[int, int, str]]) -> str:
    out, pos = [], 0
    for start, end, repl in spans:
        out.append(text[pos:start])
        out.append(repl)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def mask_tree(obj: Any, masker: Masker | Callable[[str], str] | None = None) -> Any:
    """Recursively mask every string of JSON-able data (dicts, lists, tuples); other leaves pass."""
    masker = masker or Masker()
    fn = masker.mask_text if isinstance(masker, Masker) else masker
    return _walk(obj, fn)


# Keys of the summary's own structure (estimates, results): never PII, and masking one (a subject
# value that happens to equal "low") would break every reader of the schema.
STRUCTURAL_KEYS = frozenset({
    "value", "low", "high", "n", "method", "attack", "target", "metrics", "tables", "charts",
    "assumptions", "provenance", "num_records", "kind", "title", "points", "label", "x", "y",
    "evidence", "text", "leak", "prompt", "output", "left", "right", "note", "subject_risk", "subjects",
    "subject_id", "rank", "headline",
})


def _walk(obj: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(obj, str):
        return fn(obj)
    if isinstance(obj, Mapping):
        return {(fn(k) if isinstance(k, str) and k not in STRUCTURAL_KEYS else k): _walk(v, fn)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_walk(v, fn) for v in obj]
    return obj


def _strings(obj: Any) -> Iterable[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            if isinstance(k, str):
                yield k
            yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _strings(v)


def known_values_from(values: Iterable[Any]) -> list[str]:
    """Every string inside `values` (nested lists/dicts flattened), for building a Masker."""
    out: list[str] = []
    stack = list(values)
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, Mapping):
            stack.extend(v.values())
        elif isinstance(v, (list, tuple, set, frozenset)):
            stack.extend(v)
        elif isinstance(v, float) and math.isnan(v):
            continue
    return out


def pii_values_of(result: Any) -> list[str]:
    """The raw PII values in one AttackResult's records: every string in its attack's `pii_record_fields`.

    An attack whose class is not installed contributes nothing here; pattern masking still applies.
    """
    from privaudit.attacks.base import get_attack
    from privaudit.errors import InputError

    try:
        fields = get_attack(result.attack).pii_record_fields
    except InputError:
        return []
    records = getattr(result, "records", None)
    if records is None or not len(records):
        return []
    return known_values_from(
        records[col].tolist() for col in sorted(fields) if col in records.columns
    )


def masker_for_results(results: Iterable[Any], extra_values: Iterable[str] = ()) -> Masker:
    """One Masker over the known PII of every result, so a name found by one attack is masked in all."""
    values: list[str] = list(extra_values)
    for result in results:
        values.extend(pii_values_of(result))
    return Masker(values)
