"""summary.json: the machine-readable result of a run (versioned schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from privaudit.engine.store import write_json_atomic

SCHEMA_VERSION = "1.0"


def build_summary(results: Sequence[Any], manifest: Mapping[str, Any], *, show_pii: bool = False) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "pii_shown": show_pii,
        "manifest": dict(manifest),
        "results": [r.to_summary() for r in results],
    }


def write_summary(out: Path, results: Sequence[Any], manifest: Mapping[str, Any], *, show_pii: bool = False) -> Path:
    path = Path(out) / "summary.json"
    write_json_atomic(path, build_summary(results, manifest, show_pii=show_pii))
    return path
