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
from privaudit.metrics import DIRECTIONS, KINDS
from privaudit.reports import report_format
from privaudit.reports.text import fix_surrogates, to_jsonable, truncate

SCHEMA_VERSION = "2.1"  # 2.0: every metric carries its contract; 2.1: headline flag, evidence, subject_risk
SUMMARY_FILE = "summary.json"
# Strings in the summary are cut to this length (after masking); results.jsonl keeps them whole.
SUMMARY_STRING_LIMIT = 10_000
REQUIRED_RESULT_KEYS = ("attack", "target", "metrics", "tables", "charts", "assumptions", "provenance", "num_records")
# What every metric of a 2.x summary holds: its numbers and its declared contract (the gate reads both).
METRIC_KEYS = ("value", "low", "high", "n", "clusters", "method", "kind", "direction", "unit", "cluster", "pattern", "headline", "name")


def build_summary(
    results: Sequence[Any],
    manifest: Mapping[str, Any],
    *,
    show_pii: bool = False,
    thresholds: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
    masker: Any = None,
    root: Path | None = None,
) -> dict[str, Any]:
    """The summary of `results` (AttackResult objects): masked unless `show_pii`, gated if thresholds.

    `root` is the run folder holding the results' records (evidence reads slim results' hits there).

    `masker` defaults to one built from the results' own records (`Attack.pii_record_fields`).
    """
    from privaudit import __version__
    from privaudit.masking import masker_for_results

    from privaudit.reports.evidence import evidence_of
    from privaudit.reports.risk import subject_risk

    entries = [to_jsonable({**r.to_summary(), "evidence": evidence_of(r, root=root)}) for r in results]
    summary: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "generator": {"name": "privaudit", "version": __version__},
        "pii_shown": bool(show_pii),
        "masking": None,
        "notes": [str(n) for n in notes],
        "manifest": to_jsonable(dict(manifest)),
        "results": entries,
        "subject_risk": to_jsonable(subject_risk(results)),
        "gate": None,
    }
    if thresholds:
        summary["gate"] = gate_section(summary, thresholds)
    if not show_pii:
        from privaudit.masking import mask_fragments
        from privaudit.reports.evidence import mask_evidence

        masker = masker if masker is not None else masker_for_results(results)
        summary = masker.mask_tree(summary)
        for entry in summary["results"]:
            entry["evidence"] = mask_evidence(entry.get("evidence") or [], mask_fragments)
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


@report_format("json", "summary.json")
def render_json(summary: Mapping[str, Any]) -> str:
    """The summary as strict JSON text (no NaN: non-finite numbers are null)."""
    return json.dumps(summary, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def read_summary(path: Path, *, accept_older: bool = False) -> dict[str, Any]:
    """Read and structurally validate a summary.json; problems name the file and the field.

    `accept_older` lets a re-render read a 1.x summary (whose metrics carry no contract) for what
    it keeps besides the metrics; the gate never does, since 1.x cannot say which way is worse.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    validate_summary(data, str(path), accept_older=accept_older)
    return data


def validate_summary(data: Any, where: str = SUMMARY_FILE, *, accept_older: bool = False) -> None:
    """Check the parts of the schema that readers rely on; raise InputError naming the field."""
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a JSON object")
    version = data.get("schema_version")
    major = version.split(".")[0] if isinstance(version, str) else None
    current = SCHEMA_VERSION.split(".")[0]
    older = accept_older and major is not None and major.isdigit() and 1 <= int(major) < int(current)
    if major != current and not older:
        hint = "; re-render the run folder with `privaudit report RUN_DIR` to upgrade it" if major == "1" else ""
        raise InputError(f"{where}: field 'schema_version': unsupported {version!r} (expected {SCHEMA_VERSION}){hint}")
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
            if older:
                continue
            for key, allowed in (("kind", KINDS), ("direction", DIRECTIONS)):
                if est.get(key) not in allowed:
                    got = "missing" if key not in est else f"{est[key]!r} is not one of {', '.join(allowed)}"
                    raise InputError(f"{where}: field 'results[{i}].metrics.{name}.{key}': {got} (schema "
                                     f"{SCHEMA_VERSION} metrics carry their kind and direction)")


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
