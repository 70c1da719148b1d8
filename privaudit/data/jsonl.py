"""Strict JSONL reading and atomic, user-only JSONL writing for every data file privaudit handles.

Data files hold personal information and are edited by hand, so reading is strict (a bad line is
a one-line `InputError` naming FILE:LINE, never a traceback or a silently skipped record) and
writing is atomic with user-only permissions (a crash never leaves half a file readable by others).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from privaudit.errors import InputError, where

_BOM = b"\xef\xbb\xbf"


def _reject_constant(name: str) -> Any:
    # NaN/Infinity are not JSON; Python accepts them by default, which would let bad files through.
    raise ValueError(f"{name} is not valid JSON")


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; any defect is an InputError naming FILE:LINE.

    Rejects a missing or unreadable file, an empty file (no records), bytes that are not UTF-8,
    a line that is not JSON, and a line that is JSON but not an object. Blank lines are skipped.
    Line numbers are 1-based and count blank lines, so they match what an editor shows.
    """
    path = Path(path)
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a JSONL file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    records = 0
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{where(path, lineno)}: not UTF-8 text (byte {exc.start})") from None
            if not text.strip():
                continue
            try:
                obj = json.loads(text, parse_constant=_reject_constant)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where(path, lineno)}: invalid JSON ({exc.msg} at column {exc.colno})") from None
            except (ValueError, RecursionError) as exc:
                reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
                raise InputError(f"{where(path, lineno)}: invalid JSON ({reason})") from None
            if not isinstance(obj, dict):
                raise InputError(f"{where(path, lineno)}: expected a JSON object, got {json_type(obj)}")
            records += 1
            yield lineno, obj
    if records == 0:
        raise InputError(f"{path}: empty file (no JSON records)")


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> int:
    """Write rows as JSONL atomically (temp file + fsync + rename), readable by the owner only.

    Returns the number of rows written. Parent folders are created. Non-ASCII text is kept as is.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    count = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            for row in rows:
                fh.write(json.dumps(dict(row), ensure_ascii=False, allow_nan=False))
                fh.write("\n")
                count += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.chmod(path, 0o600)
    return count


def json_type(obj: Any) -> str:
    """The JSON name of a parsed value's type, for messages ('array', not 'list')."""
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null", dict: "object"}.get(type(obj), type(obj).__name__)
