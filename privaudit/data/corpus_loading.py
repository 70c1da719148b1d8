"""Reading a corpus JSONL file (`Corpus.write`'s layout, or one written by hand) with validation.

Every error names the file, line and field: record types, kinds, splits, repeat counts, duplicate
ids, a subject in two splits, and canaries whose secret does not fit its format or that are not
inserted as a training document.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from privaudit.data.corpus_types import (
    CORPUS_FORMAT,
    DEFAULT_CANARY_FORMAT,
    DOCUMENT_KINDS,
    SPLITS,
    Canary,
    Corpus,
    Document,
)
from privaudit.data.jsonl import json_type, read_jsonl
from privaudit.errors import InputError, where


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
