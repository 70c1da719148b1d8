"""Making untrusted text (model outputs, record fields) safe to write and to show.

Model outputs are hostile input: they can carry lone surrogates (which cannot be encoded as
UTF-8 at all), ANSI escapes and other control characters (which a terminal or an XML parser
interprets), bidirectional overrides (which make text read differently from what it is) and
megabyte-long strings. HTML escaping is Jinja's job (autoescape); these functions make the
*characters* safe for every format and keep reports a readable size.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

import numpy as np

# C0/C1 controls except tab/newline/CR, DEL, bidi embeddings/overrides/isolates, BOM, and
# the non-characters XML 1.0 forbids.
_UNSAFE_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]")
DISPLAY_LIMIT = 2000


def fix_surrogates(text: str) -> str:
    """Replace lone surrogates (invalid Unicode that UTF-8 cannot encode) with U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def visible_controls(text: str) -> str:
    """Control and bidi-override characters spelled out as `\\x1b`, `\\u202e`, so none acts."""
    return _UNSAFE_RE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)


def truncate(text: str, limit: int = DISPLAY_LIMIT) -> str:
    """At most `limit` characters, saying how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit:,} more characters]"


def display_text(value: Any, limit: int = DISPLAY_LIMIT) -> str:
    """Any value as a short, valid, inert string for HTML, Markdown, XML and the terminal."""
    text = value if isinstance(value, str) else str(value)
    return truncate(visible_controls(fix_surrogates(text)), limit)


def to_jsonable(obj: Any) -> Any:
    """JSON-able copy: numpy scalars to Python, NaN/inf to None, lone surrogates fixed, tuples to lists."""
    if isinstance(obj, str):
        return fix_surrogates(obj)
    if isinstance(obj, bool) or obj is None:
        return obj
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, int):
        return obj
    if isinstance(obj, Mapping):
        return {fix_surrogates(str(k)): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    return fix_surrogates(str(obj))
