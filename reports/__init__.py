"""Reports (installed as `privaudit.reports`): pure functions of a run's records and summaries.

`write_reports` builds the summary once (masked unless `show_pii`, gated when thresholds are
given) and renders every registered format from it: summary.json, report.html, junit.xml and
summary.md. Formats register themselves by name with `report_format`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from privaudit.engine.store import write_text_atomic

Renderer = Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class ReportFormat:
    """A report format: its name, the file it writes in the run folder, and its renderer."""

    name: str
    filename: str
    render: Renderer


_FORMATS: dict[str, ReportFormat] = {}


def report_format(name: str, filename: str) -> Callable[[Renderer], Renderer]:
    """Register `render(summary) -> text` as format `name`, written to `filename`."""

    def deco(fn: Renderer) -> Renderer:
        _FORMATS[name] = ReportFormat(name, filename, fn)
        return fn

    return deco


def available_formats() -> list[str]:
    _register_builtin()
    return list(_FORMATS)


def _register_builtin() -> None:
    if _FORMATS:
        return
    from privaudit.reports.html import render_html
    from privaudit.reports.json import render_json
    from privaudit.reports.junit import render_junit
    from privaudit.reports.markdown import render_markdown

    report_format("json", "summary.json")(render_json)
    report_format("html", "report.html")(render_html)
    report_format("junit", "junit.xml")(render_junit)
    report_format("markdown", "summary.md")(render_markdown)


def write_summary_formats(out: Path, summary: Mapping[str, Any], formats: Iterable[str] | None = None) -> dict[str, Path]:
    """Render `summary` in each format (all by default) into folder `out`; returns name -> path."""
    _register_builtin()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = list(formats) if formats is not None else list(_FORMATS)
    unknown = [n for n in names if n not in _FORMATS]
    if unknown:
        from privaudit.errors import InputError

        raise InputError(f"unknown report format '{unknown[0]}' (known: {', '.join(_FORMATS)})")
    written: dict[str, Path] = {}
    for name in names:
        fmt = _FORMATS[name]
        path = out / fmt.filename
        write_text_atomic(path, fmt.render(summary))
        written["summary" if name == "json" else name] = path
    return written


def write_reports(
    out: Path,
    results: Sequence[Any],
    manifest: Mapping[str, Any],
    *,
    show_pii: bool = False,
    thresholds: Mapping[str, Any] | None = None,
    formats: Iterable[str] | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Path]:
    """Write summary.json, report.html, junit.xml and summary.md (or `formats`) for `results`.

    Keys of the returned dict: "summary" (summary.json), "html", "junit", "markdown".
    """
    from privaudit.reports.json import build_summary

    summary = build_summary(results, manifest, show_pii=show_pii, thresholds=thresholds, notes=notes)
    return write_summary_formats(Path(out), summary, formats)
