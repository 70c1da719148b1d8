"""report.html: one self-contained page (CSS and SVG inline, no script, no URL) for a privacy officer.

Rendered by Jinja2 with autoescape ON from the (already masked) summary, so every string that
came from a model or a record is escaped; charts are SVG strings whose text charts.py escapes.
`display_text` additionally neutralises control characters, bidi overrides and invalid Unicode
and shortens huge strings, so hostile model output is inert and the page stays readable.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from privaudit.reports import report_format
from privaudit.reports.charts import render_chart
from privaudit.reports.findings import defenses_view, executive_summary, headline_table, target_labels
from privaudit.reports.risk import RISK_TOP
from privaudit.reports.text import display_text

TEMPLATES = Path(__file__).parent / "templates"
TABLE_ROW_LIMIT = 200
CELL_LIMIT = 300
SUBJECT_TABLES = ("per_subject",)


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = fmt_number
    env.filters["text"] = lambda v, limit=CELL_LIMIT: display_text(v, limit)
    env.filters["pretty"] = lambda v: display_text(json.dumps(v, indent=2, ensure_ascii=False, sort_keys=True, default=str), 20_000)
    return env


def fmt_number(x: Any) -> str:
    """Numbers for people: 4 significant digits, '—' for missing or not measurable."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if x == 0:
            return "0"
        return f"{x:.4g}"
    return display_text(x, CELL_LIMIT)


def _is_estimate(v: Any) -> bool:
    return isinstance(v, Mapping) and "value" in v and "low" in v and "high" in v


def fmt_cell(v: Any) -> str:
    if _is_estimate(v):
        return f"{fmt_number(v['value'])} [{fmt_number(v['low'])}, {fmt_number(v['high'])}]"
    if isinstance(v, (dict, list)):
        return display_text(json.dumps(v, ensure_ascii=False, default=str), CELL_LIMIT)
    if isinstance(v, str):
        return display_text(v, CELL_LIMIT)
    return fmt_number(v)


def table_view(name: str, rows: Any) -> dict[str, Any]:
    """Columns in first-appearance order and formatted cells; long tables are cut with a note."""
    if not isinstance(rows, list):
        rows = [{"value": rows}]
    dict_rows = [r if isinstance(r, Mapping) else {"value": r} for r in rows]
    columns: list[str] = []
    for r in dict_rows:
        for k in r:
            if k not in columns:
                columns.append(k)
    shown = dict_rows[:TABLE_ROW_LIMIT]
    return {
        "name": display_text(name, 120),
        "columns": [display_text(c, 80) for c in columns],
        "rows": [[fmt_cell(r.get(c)) for c in columns] for r in shown],
        "more": len(dict_rows) - len(shown),
    }


def chart_views(charts: Any) -> list[dict[str, Any]]:
    items = charts.items() if isinstance(charts, Mapping) else enumerate(charts or [])
    out = []
    for key, chart in items:
        entries = chart if isinstance(chart, list) else [chart]
        for entry in entries:
            title = entry.get("title") if isinstance(entry, Mapping) else None
            out.append({"title": display_text(title or key, 200), "svg": render_chart(entry if isinstance(entry, Mapping) else {"data": entry})})
    return out


def report_view(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The template's data: verdict, per-attack sections, per-subject view, provenance."""
    gate = summary.get("gate")
    checks_by_metric: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for c in (gate or {}).get("checks") or []:
        checks_by_metric.setdefault((c.get("attack"), c.get("metric"), c.get("target")), []).append(c)

    attacks: dict[str, list[dict[str, Any]]] = {}
    subjects: list[dict[str, Any]] = []
    overview: list[dict[str, Any]] = []
    for res in summary.get("results") or []:
        attack, target = str(res.get("attack")), str(res.get("target"))
        metrics = []
        for name, est in (res.get("metrics") or {}).items():
            est = est if isinstance(est, Mapping) else {"value": est}
            checks = checks_by_metric.get((attack, name, target), [])
            status = _worst([c.get("status") for c in checks])
            row = {"name": display_text(name, 120), "value": fmt_number(est.get("value")),
                   "low": fmt_number(est.get("low")), "high": fmt_number(est.get("high")),
                   "n": fmt_number(est.get("n")), "method": display_text(est.get("method", ""), 40),
                   "unit": _unit_text(est), "worse": _WORSE.get(str(est.get("direction")), ""),
                   "status": status, "checks": "; ".join(display_text(c.get("message", ""), 200) for c in checks)}
            metrics.append(row)
            overview.append({"attack": display_text(attack, 80), "target": display_text(target, 200), **row})
        tables = []
        for tname, rows in (res.get("tables") or {}).items():
            view = table_view(tname, rows)
            if tname in SUBJECT_TABLES:
                subjects.append({"attack": display_text(attack, 80), "target": display_text(target, 200), "table": view})
            else:
                tables.append(view)
        attacks.setdefault(attack, []).append({
            "target": display_text(target, 200),
            "anchor": _anchor(attack, target),
            "metrics": metrics,
            "tables": tables,
            "charts": chart_views(res.get("charts") or {}),
            "evidence": evidence_view(res.get("evidence") or []),
            "assumptions": [display_text(a, 1000) for a in res.get("assumptions") or []],
            "provenance": [(display_text(k, 80), fmt_cell(v)) for k, v in (res.get("provenance") or {}).items()],
            "num_records": fmt_number(res.get("num_records")),
        })
    manifest = summary.get("manifest") or {}
    status = {key: _worst([c.get("status") for c in checks]) for key, checks in checks_by_metric.items()}
    defenses = defenses_view(summary)
    if defenses is not None and defenses["chart"] is not None:
        chart = defenses["chart"]
        defenses["chart"] = {"title": display_text(chart.get("title") or "Privacy vs utility", 200), "svg": render_chart(chart)}
    env_info = manifest.get("environment") or {}
    return {
        "summary": summary,
        "pii_shown": bool(summary.get("pii_shown")),
        "masking": summary.get("masking") or {},
        "notes": [display_text(n, 1000) for n in summary.get("notes") or []],
        "verdict": _verdict(gate),
        "gate_error": display_text(gate.get("error"), 1000) if gate and gate.get("error") else None,
        "checks": [{**{k: display_text(v, 300) if isinstance(v, str) else v for k, v in c.items()},
                    "compared_as": display_text(c.get("compared_as") or c.get("bound") or "", 40)}
                   for c in (gate or {}).get("checks") or []],
        "overview": overview,
        "executive_summary": executive_summary(summary),
        "headline": headline_table(summary, status),
        "defenses": defenses,
        "risk": risk_view(summary.get("subject_risk") or []),
        "attacks": [{"name": display_text(a, 80), "runs": runs} for a, runs in attacks.items()],
        "subjects": subjects,
        "targets": [(display_text(k, 200), display_text(v, 200)) for k, v in (manifest.get("targets") or {}).items()],
        "manifest_facts": [(label, display_text(manifest.get(key), 200)) for label, key in (
            ("Status", "status"), ("Seed", "seed"), ("Config hash", "config_hash"), ("Created", "created"),
            ("Started", "started"), ("Finished", "finished")) if manifest.get(key) is not None],
        "config": manifest.get("config"),
        "environment": [(display_text(k, 80), display_text(v, 200)) for k, v in env_info.items() if k != "packages"],
        "packages": [(display_text(k, 80), display_text(v, 80)) for k, v in (env_info.get("packages") or {}).items()],
        "generator": summary.get("generator") or {},
    }


def _segments(parts: Any) -> list[dict[str, Any]]:
    return [{"text": display_text(p.get("text"), 2000), "leak": bool(p.get("leak"))}
            for p in parts or [] if isinstance(p, Mapping)]


def evidence_view(items: list[Any]) -> list[dict[str, Any]]:
    """Evidence items (already masked in the summary) as escaped text segments for the template."""
    out = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        view = {"kind": display_text(item.get("kind"), 40), "title": display_text(item.get("title"), 200),
                "prompt": display_text(item.get("prompt") or "", 1000), "note": display_text(item.get("note") or "", 300),
                "output": _segments(item.get("output"))}
        for side in ("left", "right"):
            part = item.get(side)
            if isinstance(part, Mapping):
                view[side] = {"label": display_text(part.get("label"), 200), "output": _segments(part.get("output"))}
        out.append(view)
    return out


def risk_view(blocks: list[Any]) -> list[dict[str, Any]]:
    """The top of each target's subject ranking (the whole ranking is in summary.json)."""
    blocks = [b for b in blocks if isinstance(b, Mapping)]
    labels = target_labels([str(b.get("target")) for b in blocks])
    # the target that leaks most comes first (and opens): usually the personalized model, not its base
    blocks = sorted(blocks, key=lambda b: -sum(int(r.get("fields_leaked") or 0) for r in b.get("subjects") or []
                                               if isinstance(r, Mapping)))
    out = []
    for block in blocks:
        if not isinstance(block, Mapping):
            continue
        rows = [r for r in block.get("subjects") or [] if isinstance(r, Mapping)]
        out.append({"target": display_text(block.get("target"), 200), "label": display_text(labels[str(block.get("target"))], 60),
                    "rows": [{"rank": fmt_number(r.get("rank")), "subject": display_text(r.get("subject_id"), 80),
                              "leaked": f"{r.get('fields_leaked', 0)} of {r.get('fields_probed', 0)}",
                              "fields": display_text(", ".join(map(str, r.get("leaked_fields") or [])), 200),
                              "best_rank": (f"{r['best_likelihood_rank']} of {r['likelihood_candidates']}"
                                            if r.get("best_likelihood_rank") is not None and r.get("likelihood_candidates")
                                            else fmt_number(r.get("best_likelihood_rank"))),
                              "membership": fmt_number(r.get("membership_score"))} for r in rows[:RISK_TOP]],
                    "more": max(0, len(rows) - RISK_TOP)})
    return out


_WORSE = {"higher_is_worse": "higher", "lower_is_worse": "lower", "two_sided": "either way (size)"}


def _unit_text(est: Mapping[str, Any]) -> str:
    """`probe` or `probe, 40 subjects`: the unit of the value and the clusters of its interval."""
    unit = display_text(est.get("unit") or "", 40)
    clusters, n = est.get("clusters"), est.get("n")
    if isinstance(clusters, int) and clusters != n and n:
        unit += f", {clusters:,} {display_text(est.get('cluster') or 'clusters', 40)}"
    return unit


def _anchor(attack: str, target: str) -> str:
    return "r-" + "".join(ch if ch.isalnum() else "-" for ch in f"{attack}-{target}")[:80]


def _worst(statuses: list[Any]) -> str | None:
    for s in ("fail", "unmeasured", "pass"):
        if s in statuses:
            return s
    return None


def _verdict(gate: Mapping[str, Any] | None) -> dict[str, str]:
    if not gate:
        return {"status": "none", "headline": "No thresholds configured",
                "detail": "Add a [thresholds] table to the audit TOML to turn these metrics into a pass/fail gate."}
    if gate.get("error"):
        return {"status": "error", "headline": "Gate configuration error", "detail": "The thresholds could not be applied (exit 2)."}
    checks = gate.get("checks") or []
    failed = sum(c.get("status") == "fail" for c in checks)
    unmeasured = sum(c.get("status") == "unmeasured" for c in checks)
    if failed:
        return {"status": "fail", "headline": f"FAIL: {failed} of {len(checks)} privacy checks failed",
                "detail": "At least one metric's conservative bound is beyond its threshold (exit 1)."}
    if unmeasured:
        return {"status": "unmeasured", "headline": f"COULD NOT MEASURE {unmeasured} of {len(checks)} checks",
                "detail": "Some metrics have no samples; absence of evidence is not a pass (exit 3)."}
    return {"status": "pass", "headline": f"PASS: all {len(checks)} privacy checks passed",
            "detail": "Each metric's conservative bound of its 95% interval is within its threshold (exit 0)."}


@report_format("html", "report.html")
def render_html(summary: Mapping[str, Any]) -> str:
    """The report page for a summary (masked or not, as the summary says)."""
    view = report_view(summary)
    css = Markup((TEMPLATES / "report.css").read_text(encoding="utf-8"))
    return _env().get_template("report.html").render(css=css, **view)
