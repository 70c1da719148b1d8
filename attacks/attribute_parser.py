"""A robust parser for attribute-inference answers in the Beyond Memorization format.

The adversary is asked for blocks of the form::

    Type: age
    Inference: ...
    Guess: 34; 30-35; 40

Real models drift from it (SynthPAI needed a GPT-4 "fix" pass for this, ``src/thread/normalize.py``):
bullets, numbering, bold markers, other casing, synonyms for the attribute ("Location", "Gender"),
guesses split by commas or spread over numbered lines, a missing Type line with a bare attribute
header, preambles and trailing chatter. This parser accepts all of those without a model and never
raises: what it cannot read is simply absent from the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from privaudit.attacks.attribute_scoring import ATTRIBUTES, LOCATION_ATTRIBUTES

MAX_GUESSES = 3

# Lower-cased, space-normalized names a model may use for each attribute.
ATTRIBUTE_SYNONYMS: dict[str, str] = {
    **{a: a for a in ATTRIBUTES},
    **{a.replace("_", " "): a for a in ATTRIBUTES},
    "gender": "sex",
    "location": "city_country",
    "current location": "city_country",
    "city": "city_country",
    "residence": "city_country",
    "place of living": "city_country",
    "current place of living": "city_country",
    "city country": "city_country",
    "place of birth": "birth_city_country",
    "birth place": "birth_city_country",
    "birthplace": "birth_city_country",
    "birth city": "birth_city_country",
    "hometown": "birth_city_country",
    "income": "income_level",
    "income level": "income_level",
    "relationship": "relationship_status",
    "relationship status": "relationship_status",
    "marital status": "relationship_status",
    "married": "relationship_status",
    "education level": "education",
    "highest level of education": "education",
    "job": "occupation",
    "profession": "occupation",
}

# Decoration a line may start with: bullets, numbering ("1.", "2)", "(3)"), markdown headers, quotes.
_LEAD = r"^[\s>*#\-\u2022+]*(?:\(?\d{1,2}[.)]\s*)?[\s*_#]*"
_KEY_LINE = re.compile(_LEAD + r"(type|inference|reasoning|guess(?:es)?|top\s*3\s*guesses|answer)\s*[*_]*\s*[:=\-]\s*[*_]*\s*(.*)$",
                       re.IGNORECASE)
_ENUM_ITEM = re.compile(r"^[\s>*\-\u2022+]*(?:\(?\d{1,2}[.)]|[a-c][.)])\s*(.+)$")
_BULLET_ITEM = re.compile(r"^\s*[*\-\u2022+]\s+(.+)$")
_INLINE_ENUM = re.compile(r"(?:^|\s)\(?([1-9])[.)]\s+")
_PREFIX_CHATTER = re.compile(
    r"^(?:my\s+)?(?:top\s*(?:3|three)\s*)?(?:guess(?:es)?|answers?|predictions?)\s*(?:are|is|would be)?\s*[:\-]?\s*",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ParsedAttribute:
    """What the adversary said about one attribute: its reasoning and up to three ranked guesses."""

    attribute: str
    inference: str
    guesses: tuple[str, ...]


def attribute_name(text: str) -> str | None:
    """The canonical attribute a free-form name refers to ('Gender' -> 'sex'), or None."""
    key = re.sub(r"[^a-z ]+", " ", text.lower().replace("_", " "))
    key = re.sub(r"\s+", " ", key).strip()
    return ATTRIBUTE_SYNONYMS.get(key)


def _header_attribute(line: str) -> str | None:
    """A line that is only an attribute name ('**Age**', '2. Location:'), i.e. a block without 'Type:'."""
    stripped = re.sub(_LEAD, "", line).strip().strip("*_#:").strip()
    if not stripped or len(stripped) > 40 or ":" in stripped:  # "Age: 34" is a one-line block
        return None
    if re.search(r"\d", stripped):
        return None
    return attribute_name(stripped)


def _clean_guess(text: str) -> str:
    text = text.strip().strip("*_`\"'").strip()
    text = _PREFIX_CHATTER.sub("", text)
    text = re.sub(r"\s*\((?:most likely|likely|less likely|least likely|unlikely|probable|possible)[^)]*\)\s*$", "",
                  text, flags=re.IGNORECASE)
    return text.strip().strip("*_`\"'").rstrip(".;,").strip()


def split_guesses(text: str, attribute: str) -> list[str]:
    """Split a guess line into ranked guesses: by ';', inline numbering, '|', or (not for places) ','."""
    text = text.strip()
    if not text:
        return []
    if ";" in text:
        parts = text.split(";")
    elif len(_INLINE_ENUM.findall(text)) >= 2:
        parts = _INLINE_ENUM.split(text)[2::2]
    elif "|" in text:
        parts = text.split("|")
    elif attribute not in LOCATION_ATTRIBUTES and "," in text:
        parts = text.split(",")
    else:
        parts = [text]
    if attribute not in LOCATION_ATTRIBUTES:  # "Doctor or Paramedic" inside one ';' slot
        parts = [q for p in parts for q in re.split(r"\s+or\s+", p)]
    return [g for g in (_clean_guess(p) for p in parts) if g]


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for item in items:
        seen.setdefault(item.lower(), item)
    return tuple(seen.values())[:MAX_GUESSES]


def parse_answer(text: str, attributes: Sequence[str] = ATTRIBUTES) -> dict[str, ParsedAttribute]:
    """Parse a free-text answer into {attribute: ParsedAttribute} for the requested attributes.

    The first block with guesses wins when a model repeats an attribute. Attributes that the answer
    does not mention are absent; an attribute mentioned without guesses has empty `guesses`.
    """
    wanted = set(attributes)
    inference: dict[str, list[str]] = {}
    guesses: dict[str, list[str]] = {}
    current: str | None = None
    mode: str | None = None  # "inference" | "guess" | None: what continuation lines belong to

    for raw_line in str(text).splitlines():
        line = raw_line.rstrip()
        if not line.strip():
            mode = None if mode == "guess" and guesses.get(current or "") else mode
            continue
        key_match = _KEY_LINE.match(line)
        if key_match:
            key, value = key_match.group(1).lower(), key_match.group(2).strip()
            if key == "type":
                current = attribute_name(value.strip("*_ ."))
                mode = None
            elif current is None:
                continue
            elif key in ("inference", "reasoning"):
                mode = "inference"
                inference.setdefault(current, []).append(value)
            else:  # guess / guesses / top 3 guesses / answer
                mode = "guess"
                if current not in guesses or not guesses[current]:
                    guesses[current] = split_guesses(value, current)
            continue
        header = _header_attribute(line)
        if header is not None:
            current, mode = header, None
            continue
        inline = re.match(_LEAD + r"([A-Za-z _]{2,40}?)\s*[*_]*\s*:\s*(.+)$", line)
        if inline and attribute_name(inline.group(1)) and mode != "inference":
            # "Age: 34; 35; 40" as a one-line block.
            name = attribute_name(inline.group(1))
            current, mode = name, None
            if name and not guesses.get(name):
                guesses[name] = split_guesses(inline.group(2), name)
            continue
        if current is None:
            continue
        if mode == "guess":
            item = _ENUM_ITEM.match(line) or _BULLET_ITEM.match(line)
            if item and len(guesses.get(current, [])) < MAX_GUESSES:
                guesses.setdefault(current, []).extend(split_guesses(item.group(1), current))
            elif not guesses.get(current):
                guesses[current] = split_guesses(line, current)
            else:
                mode = None
        elif mode == "inference":
            inference.setdefault(current, []).append(line.strip())

    out: dict[str, ParsedAttribute] = {}
    for attr in [a for a in ATTRIBUTES if a in wanted]:
        if attr in guesses or attr in inference:
            out[attr] = ParsedAttribute(
                attribute=attr,
                inference=" ".join(s for s in inference.get(attr, []) if s).strip(),
                guesses=_dedupe(guesses.get(attr, [])),
            )
    return out
