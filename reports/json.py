"""summary.json: the machine-readable result of a run, and the one data model every report renders.

Every format (HTML, JUnit, Markdown) is a pure function of this summary, so they can never
disagree, and PII is masked in exactly one place (here) before any of them sees it. The schema
is versioned and documented in reports/SCHEMA.md.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from privaudit.errors import InputError
from privaudit.reports.text import fix_surrogates, to_jsonable, truncate

SCHEMA_VERSION = "1.0"
SUMMARY_FILE = "summary.json"
# Strings in the summary are cut to this length (after masking); results.jsonl keeps them whole.
SUMMARY_STRING_LIMIT = 10_000
REQUIRED_RESULT_KEYS = ("attack", "target", "metrics", "tables", "charts", "assumptions", "provenance", "num_records")


def build_summary(
    results: Sequence[Any],
    manifest: Mapping[str, Any],
    *,
    show_pii: bool = False,
    thresholds: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
    masker: Any = None,
) -> dict[str, Any]:
    """The summary of `results` (AttackResult objects): masked unless `show_pii`, gated if thresholds.

    `masker` defaults to one built from the results' own records (`Attack.pii_fields`).
    """
    from privaudit import __version__
    from privaudit.masking import masker_for_results

    entries = [to_jsonable(r.to_summary()) for r in results]
    summary: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "generator": {"name": "privaudit", "version": __version__},
        "pii_shown": bool(show_pii),
        "masking": None,
        "notes": [str(n) for n in notes],
        "manifest": to_jsonable(dict(manifest)),
        "results": entries,
        "gate": None,
    }
    if thresholds:
        summary["gate"] = gate_section(summary, thresholds)
    if not show_pii:
        masker = masker if masker is not None else masker_for_results(results)
        summary = masker.mask_tree(summary)
        summary["masking"] = {"masked": True, "known_values": len(masker.known), "patterns": ["email", "phone"]}
    else:
        summary["masking"] = {"masked": False, "known_values": 0, "patterns": []}
    return _cut_strings(summary)


def gate_section(summary: Mapping[str, Any], thresholds: Mapping[str, Any]) -> dict[str, Any]:
    """The gate's verdict for the summary; a usage error is recorded (exit 2) rather than raised."""
    from privaudit.gate import evaluate

    raw = to_jsonable(dict(thresholds))
    try:
        outcome = evaluate(summary, thresholds)
    except InputError as exc:
        return {"thresholds": raw, "passed": False, "status": "error", "exit_code": exc.exit_code,
                "error": str(exc), "checks": []}
    return {"thresholds": raw, "error": None, **outcome.to_dict()}


def _cut_strings(obj: Any) -> Any:
    if isinstance(obj, str):
        return truncate(obj, SUMMARY_STRING_LIMIT)
    if isinstance(obj, dict):
        return {k: _cut_strings(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cut_strings(v) for v in obj]
    return obj


def render_json(summary: Mapping[str, Any]) -> str:
    """The summary as strict JSON text (no NaN: non-finite numbers are null)."""
    return json.dumps(summary, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def read_summary(path: Path) -> dict[str, Any]:
    """Read and structurally validate a summary.json; problems name the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    validate_summary(data, str(path))
    return data


def validate_summary(data: Any, where: str = SUMMARY_FILE) -> None:
    """Check the parts of the schema that readers rely on; raise InputError naming the field."""
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a JSON object")
    version = data.get("schema_version")
    if not isinstance(version, str) or version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise InputError(f"{where}: field 'schema_version': unsupported {version!r} (expected {SCHEMA_VERSION})")
    if not isinstance(data.get("results"), list):
        raise InputError(f"{where}: field 'results': expected a list")
    for i, res in enumerate(data["results"]):
        if not isinstance(res, dict):
            raise InputError(f"{where}: field 'results[{i}]': expected an object")
        for key in ("attack", "target", "metrics"):
            if key not in res:
                raise InputError(f"{where}: field 'results[{i}].{key}': missing")
        if not isinstance(res["metrics"], dict):
            raise InputError(f"{where}: field 'results[{i}].metrics': expected an object")
        for name, est in res["metrics"].items():
            if not isinstance(est, dict) or "value" not in est:
                raise InputError(f"{where}: field 'results[{i}].metrics.{name}': expected {{value, low, high, n}}")


def estimate_or_nan(d: Mapping[str, Any]) -> dict[str, Any]:
    """A metric entry with null numbers turned back into NaN (for rebuilding Estimate objects)."""
    out = dict(d)
    for k in ("value", "low", "high"):
        if out.get(k) is None:
            out[k] = math.nan
    out["n"] = int(out.get("n") or 0)
    return out


__all__ = ["SCHEMA_VERSION", "SUMMARY_FILE", "build_summary", "render_json", "read_summary",
           "validate_summary", "fix_surrogates"]
