"""The persona-bias probe's data files: personas, safety requests, multiple-choice questions, names
and the culture lexicon, each validated with errors that name the file, line and field.

The shipped files live under `attacks/data/`; every loader takes a user file of the same layout in
their place (`personas_file`, `safety_file`, ... in `[attacks.bias]`).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Mapping

from privaudit.attacks.answer_extraction import LETTERS
from privaudit.errors import InputError

CONTROL = "control"  # the no-persona control's id (reserved: no persona file may use it)


@dataclass(frozen=True)
class Persona:
    """A user identity; `text` completes "I am {text}." (empty for the control)."""

    id: str
    axis: str
    text: str


@dataclass(frozen=True)
class SafetyItem:
    id: str
    kind: Literal["unsafe", "benign"]
    category: str
    text: str


@dataclass(frozen=True)
class ChoiceItem:
    """A multiple-choice question; `answer` is the letter of the correct option."""

    id: str
    category: str
    question: str
    options: tuple[str, ...]
    answer: str


@dataclass(frozen=True)
class NameTemplate:
    id: str
    named: str  # contains "{name}"
    control: str


@dataclass(frozen=True)
class NameProbeSet:
    templates: tuple[NameTemplate, ...]
    names: Mapping[str, tuple[str, ...]]  # culture -> names


def _read_json(path: Path | None, default_name: str) -> tuple[Any, str]:
    """Load a user file or the shipped one; JSON errors name file and line."""
    if path is None:
        text = resources.files("privaudit.attacks").joinpath("data", default_name).read_text(encoding="utf-8")
        where = f"attacks/data/{default_name}"
    else:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
        where = str(path)
    try:
        return json.loads(text), where
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}:{exc.lineno}: invalid JSON ({exc.msg})") from None


def _field(obj: Any, key: str, where: str, kind: type = str) -> Any:
    if not isinstance(obj, Mapping) or key not in obj:
        raise InputError(f"{where}: field '{key}' is missing")
    value = obj[key]
    if not isinstance(value, kind) or (kind is str and not value.strip() and key != "text"):
        raise InputError(f"{where}: field '{key}' must be a non-empty {kind.__name__}")
    return value


def load_personas(path: Path | None = None, extra_path: Path | None = None) -> tuple[Persona, list[Persona]]:
    """The control and the personas: the shipped set (or `path`), plus personas from `extra_path`."""
    data, where = _read_json(path, "personas.json")
    control = data.get("control", {"id": CONTROL, "axis": CONTROL, "text": ""}) if isinstance(data, Mapping) else None
    personas = _parse_personas(data, where)
    if extra_path is not None:
        extra, extra_where = _read_json(extra_path, "personas.json")
        personas += _parse_personas(extra, extra_where)
    seen: set[str] = set()
    for p in personas:
        if p.id in seen or p.id == CONTROL:
            raise InputError(f"persona id '{p.id}' is duplicated or reserved (field 'id')")
        seen.add(p.id)
    text = control.get("text", "") if isinstance(control, Mapping) else ""
    return Persona(CONTROL, CONTROL, text), personas


def _parse_personas(data: Any, where: str) -> list[Persona]:
    entries = data.get("personas") if isinstance(data, Mapping) else None
    if not isinstance(entries, list):
        raise InputError(f"{where}: field 'personas' must be a list")
    out = []
    for i, entry in enumerate(entries):
        loc = f"{where}: personas[{i}]"
        text = _field(entry, "text", loc)
        if not text.strip():
            raise InputError(f"{loc}: field 'text' must be a non-empty string")
        out.append(Persona(_field(entry, "id", loc), str(entry.get("axis", "other")), text.strip().rstrip(".")))
    return out


def load_safety_items(path: Path | None = None) -> tuple[list[SafetyItem], list[SafetyItem]]:
    """(unsafe, benign) requests."""
    data, where = _read_json(path, "safety_prompts.json")
    groups = []
    for kind in ("unsafe", "benign"):
        entries = data.get(kind) if isinstance(data, Mapping) else None
        if not isinstance(entries, list):
            raise InputError(f"{where}: field '{kind}' must be a list")
        groups.append([
            SafetyItem(_field(e, "id", f"{where}: {kind}[{i}]"), kind, str(e.get("category", "")),
                       _field(e, "text", f"{where}: {kind}[{i}]"))
            for i, e in enumerate(entries)
        ])
    return groups[0], groups[1]


def load_choice_items(path: Path | None = None) -> list[ChoiceItem]:
    data, where = _read_json(path, "utility_mcq.json")
    entries = data.get("items") if isinstance(data, Mapping) else None
    if not isinstance(entries, list):
        raise InputError(f"{where}: field 'items' must be a list")
    items = []
    for i, e in enumerate(entries):
        loc = f"{where}: items[{i}]"
        options = _field(e, "options", loc, list)
        if not 2 <= len(options) <= len(LETTERS) or not all(isinstance(o, str) and o.strip() for o in options):
            raise InputError(f"{loc}: field 'options' must hold 2-{len(LETTERS)} non-empty strings")
        answer = _field(e, "answer", loc).strip().upper()
        if answer not in LETTERS[: len(options)]:
            raise InputError(f"{loc}: field 'answer' must be one of {LETTERS[:len(options)]}, got {e['answer']!r}")
        items.append(ChoiceItem(_field(e, "id", loc), str(e.get("category", "")), _field(e, "question", loc),
                                tuple(options), answer))
    return items


def load_name_probe(path: Path | None = None) -> NameProbeSet:
    data, where = _read_json(path, "names.json")
    templates = []
    for i, e in enumerate(data.get("templates", []) if isinstance(data, Mapping) else []):
        loc = f"{where}: templates[{i}]"
        named = _field(e, "named", loc)
        if "{name}" not in named:
            raise InputError(f"{loc}: field 'named' must contain '{{name}}'")
        templates.append(NameTemplate(_field(e, "id", loc), named, _field(e, "control", loc)))
    cultures = data.get("cultures") if isinstance(data, Mapping) else None
    if not templates or not isinstance(cultures, Mapping) or not cultures:
        raise InputError(f"{where}: fields 'templates' and 'cultures' must be non-empty")
    names = {}
    for culture, lst in cultures.items():
        if not isinstance(lst, list) or not all(isinstance(n, str) and n.strip() for n in lst):
            raise InputError(f"{where}: field 'cultures.{culture}' must be a list of names")
        names[str(culture)] = tuple(lst)
    return NameProbeSet(tuple(templates), names)


@dataclass(frozen=True)
class CultureLexicon:
    """Culture -> marker words; `find` returns, per culture, the markers a text contains.

    Matching folds case and accents and requires whole words (an optional plural s/es is allowed),
    so "tacos" matches "taco" but "Romeo" does not match "rome".
    """

    markers: Mapping[str, tuple[str, ...]]
    _patterns: Mapping[str, re.Pattern] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        patterns = {}
        for culture, words in self.markers.items():
            alternatives = sorted({_fold(w) for w in words if w.strip()}, key=len, reverse=True)
            body = "|".join(re.escape(w) for w in alternatives) or r"(?!x)x"
            patterns[culture] = re.compile(rf"(?<![\w-])(?:{body})(?:s|es)?(?![\w-])")
        object.__setattr__(self, "_patterns", patterns)

    def find(self, text: str) -> dict[str, list[str]]:
        folded = _fold(text or "")
        found = {}
        for culture, pattern in self._patterns.items():
            hits = sorted({m.group(0) for m in pattern.finditer(folded)})
            if hits:
                found[culture] = hits
        return found


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.replace("\u2019", "'"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def load_lexicon(path: Path | None = None) -> CultureLexicon:
    data, where = _read_json(path, "culture_lexicon.json")
    cultures = data.get("cultures") if isinstance(data, Mapping) else None
    if not isinstance(cultures, Mapping) or not cultures:
        raise InputError(f"{where}: field 'cultures' must be a non-empty table")
    markers = {}
    for culture, groups in cultures.items():
        words: list[str] = []
        values = groups.values() if isinstance(groups, Mapping) else [groups]
        for group in values:
            if not isinstance(group, list) or not all(isinstance(w, str) for w in group):
                raise InputError(f"{where}: field 'cultures.{culture}' must map categories to lists of words")
            words += group
        markers[str(culture)] = tuple(words)
    return CultureLexicon(markers)

