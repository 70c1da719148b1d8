"""summary.md: a short Markdown summary fit for a pull-request comment.

GitHub renders HTML inside Markdown, so every untrusted string is escaped here: HTML-special
characters become entities and Markdown-special characters (table pipes, emphasis, links,
backticks) are backslash-escaped, and control characters are spelled out.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

from privaudit.reports import report_format
from privaudit.reports.text import display_text

_MD_SPECIAL = re.compile(r"([\\`*_\[\]()!|~])")
_ICON = {"pass": "✅ pass", "fail": "❌ FAIL", "unmeasured": "⚠️ unmeasured"}
# Which way a metric is worse (its declared direction), marked after its name.
_DIRECTION_MARK = {"higher_is_worse": "↑", "lower_is_worse": "↓", "two_sided": "±"}
METRIC_ROW_LIMIT = 60


def md_escape(value: Any, limit: int = 200) -> str:
    """Text that Markdown and GitHub's HTML sanitizer show literally, on one line."""
    text = display_text("" if value is None else value, limit)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return " ".join(text.split())


def _num(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, float):
        return f"{x:.4g}"
    return md_escape(x, 40)


def _sample(est: Mapping[str, Any]) -> str:
    """`540 probe (40 subject)`: the records, their unit, and the clusters the interval is computed over."""
    n = est.get("n")
    text = _num(n)
    if est.get("unit") and isinstance(n, int) and n:
        text += f" {md_escape(est['unit'], 30)}"
    clusters = est.get("clusters")
    if isinstance(clusters, int) and clusters != n and n:
        text += f" ({clusters} {md_escape(est.get('cluster') or 'clusters', 30)})"
    return text


@report_format("markdown", "summary.md")
def render_markdown(summary: Mapping[str, Any]) -> str:
    gate = summary.get("gate")
    lines = ["## privaudit: privacy audit", ""]
    if not gate:
        lines.append("**No thresholds configured**: metrics below are informational.")
    elif gate.get("error"):
        lines.append(f"**Gate configuration error** (exit 2): {md_escape(gate['error'], 500)}")
    else:
        checks = gate.get("checks") or []
        failed = sum(c.get("status") == "fail" for c in checks)
        unmeasured = sum(c.get("status") == "unmeasured" for c in checks)
        if failed:
            lines.append(f"**❌ Gate FAILED**: {failed} of {len(checks)} checks failed.")
        elif unmeasured:
            lines.append(f"**⚠️ Could not measure** {unmeasured} of {len(checks)} checks.")
        else:
            lines.append(f"**✅ Gate passed**: all {len(checks)} checks passed.")
        lines += ["", "| Check | Condition | Compared | Value \\[95% interval\\] | Result |", "|---|---|---:|---|---|"]
        for c in checks:
            name = md_escape(f"{c.get('attack')}.{c.get('metric')}@{c.get('target')}")
            cond = md_escape(f"{c.get('compared_as') or c.get('bound')} {c.get('op')} {c.get('threshold')}")
            value = f"{_num(c.get('value'))} \\[{_num(c.get('low'))}, {_num(c.get('high'))}\\]"
            lines.append(f"| {name} | {cond} | {_num(c.get('compared'))} | {value} | "
                         f"{_ICON.get(c.get('status'), md_escape(c.get('status')))} |")
    lines += ["", "| Attack | Target | Metric | Value | 95% interval | n |", "|---|---|---|---:|---|---:|"]
    rows = 0
    for res in summary.get("results") or []:
        for name, est in (res.get("metrics") or {}).items():
            est = est if isinstance(est, Mapping) else {"value": est}
            rows += 1
            if rows > METRIC_ROW_LIMIT:
                continue
            mark = _DIRECTION_MARK.get(str(est.get("direction")), "")
            lines.append(f"| {md_escape(res.get('attack'))} | {md_escape(res.get('target'))} | {md_escape(name)}"
                         f"{' ' + mark if mark else ''} | {_num(est.get('value'))} | "
                         f"\\[{_num(est.get('low'))}, {_num(est.get('high'))}\\] | {_sample(est)} |")
    if rows > METRIC_ROW_LIMIT:
        lines.append(f"\n_{rows - METRIC_ROW_LIMIT} more metrics in summary.json._")
    if rows:
        lines.append("\n↑ higher is worse, ↓ lower is worse, ± two-sided (judged on its size); "
                     "n counts records, with the independent units in parentheses where they differ.")
    lines.append("")
    lines.append("PII is shown in this summary (--show-pii)." if summary.get("pii_shown")
                 else "PII masked. Full report: `report.html` in the run folder.")
    return "\n".join(lines) + "\n"
