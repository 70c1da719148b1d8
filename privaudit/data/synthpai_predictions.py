"""Stored predictions in SynthPAI's format: one author per line with labels, guesses and judgments.

SynthPAI releases each evaluated model's answers as JSONL (``data/thread/eval/<model>/*_evaluated.jsonl``
in eth-sri/SynthPAI), the profile-level layout of `privaudit.data.synthpai` plus
``predictions[model][attr] = {"inference", "guess": [...], "guess_category": [...]}`` (the last for
education) and ``evaluations[model][reviewer][attr] = [score per guess]``, SynthPAI's own judgments.
`load_predictions` reads the labels with the author loader (revised labels preferred, `acc_gt` and
`education_category` kept) and the guesses of one model, so privaudit can score them without a target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from privaudit.data.synthpai import ATTRIBUTES, Author, _author_from_profile, _read_jsonl
from privaudit.errors import InputError, where


@dataclass(frozen=True)
class StoredGuesses:
    """One model's guesses for one (author, attribute), as stored."""

    guesses: tuple[str, ...]
    categories: tuple[str, ...] | None = None  # education: SynthPAI's `guess_category`


@dataclass(frozen=True)
class StoredAuthor:
    """An author with one model's stored guesses and, when the file has them, SynthPAI's judgments."""

    author: Author
    guesses: Mapping[str, StoredGuesses] = field(default_factory=dict)
    official: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # evaluations[model][human_evaluated]


def load_predictions(path: str | Path, model: str | None = None) -> tuple[str, list[StoredAuthor]]:
    """(model name, authors) of a SynthPAI predictions file. `model` may be omitted when the file
    holds one model's predictions. Bad input raises InputError naming file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    rows = list(_read_jsonl(path))
    if not rows:
        raise InputError(f"{path}: no authors found")
    chosen = model or _only_model(path, rows)
    out: list[StoredAuthor] = []
    seen: set[str] = set()
    for lineno, obj in rows:
        if "comments" not in obj:
            raise InputError(f"{where(path, lineno, 'comments')}: missing (a predictions file has one author per line)")
        author = _author_from_profile(obj, path, lineno)
        if author.author_id in seen:
            raise InputError(f"{where(path, lineno, 'username')}: duplicate author '{author.author_id}'")
        seen.add(author.author_id)
        preds = obj.get("predictions", {})
        if not isinstance(preds, dict):
            raise InputError(f"{where(path, lineno, 'predictions')}: expected an object, got {type(preds).__name__}")
        out.append(StoredAuthor(author=author, guesses=_guesses(preds.get(chosen), path, lineno, chosen),
                                official=_official(obj.get("evaluations"), chosen)))
    if not any(a.guesses for a in out):
        raise InputError(f"{path}: no predictions of model '{chosen}' (field predictions.{chosen})")
    return chosen, out


def _only_model(path: Path, rows: list[tuple[int, dict[str, Any]]]) -> str:
    names: list[str] = []
    for _, obj in rows:
        for name in obj.get("predictions", {}) or {}:
            if name not in names:
                names.append(name)
    if len(names) != 1:
        found = ", ".join(names) or "none"
        raise InputError(f"{path}: name the model with --model (predictions of: {found})")
    return names[0]


def _guesses(raw: Any, path: Path, lineno: int, model: str) -> dict[str, StoredGuesses]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputError(f"{where(path, lineno, f'predictions.{model}')}: expected an object")
    out: dict[str, StoredGuesses] = {}
    for attr in ATTRIBUTES:
        entry = raw.get(attr)
        if not isinstance(entry, dict):
            continue
        name = f"predictions.{model}.{attr}.guess"
        guesses = entry.get("guess", [])
        if isinstance(guesses, str):  # SynthPAI wraps a lone string guess in a list
            guesses = [guesses]
        if not isinstance(guesses, list) or not all(isinstance(g, (str, int, float)) for g in guesses):
            raise InputError(f"{where(path, lineno, name)}: expected a list of strings")
        cats = entry.get("guess_category")
        categories = tuple(str(c) for c in cats) if isinstance(cats, list) else None
        out[attr] = StoredGuesses(guesses=tuple(str(g) for g in guesses), categories=categories)
    return out


def _official(raw: Any, model: str) -> dict[str, tuple[float, ...]]:
    review = raw.get(model, {}).get("human_evaluated", {}) if isinstance(raw, dict) else {}
    if not isinstance(review, dict):
        return {}
    return {attr: tuple(float(s) for s in scores) for attr, scores in review.items()
            if attr in ATTRIBUTES and isinstance(scores, list)}
