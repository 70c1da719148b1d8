"""Reports (installed as `privaudit.reports`): pure functions of a run's records and summaries.

`write_reports` builds the summary once (masked unless `show_pii`, gated when thresholds are
given) and renders every registered format from it: summary.json, report.html, junit.xml and
summary.md. Formats register themselves by name with `report_format` (privaudit.registry).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from privaudit.engine.store import write_text_atomic
from privaudit.registry import Registry

Renderer = Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class ReportFormat:
    """A report format: its name, the file it writes in the run folder, and its renderer."""

    name: str
    filename: str
    render: Renderer


def _check_format(name: str, fmt: ReportFormat) -> None:
    if not isinstance(fmt, ReportFormat):
        raise TypeError(f"report format '{name}': {fmt!r} is not a privaudit.reports.ReportFormat "
                        "(register a renderer with @report_format(name, filename))")
    if fmt.name != name:
        raise ValueError(f"report format '{name}': its ReportFormat is named '{fmt.name}'")
    if not fmt.filename or "/" in fmt.filename or "\\" in fmt.filename:
        raise ValueError(f"report format '{name}': filename must be a plain file name, got {fmt.filename!r}")


# Built-in format -> module that registers it (written in this order); outside packages add formats
# through the `privaudit.reports` entry-point group (a ReportFormat, or a module using the decorator).
FORMATS: Registry[ReportFormat] = Registry(
    "report format", "privaudit.reports",
    builtins={
        "json": "privaudit.reports.json",
        "html": "privaudit.reports.html",
        "junit": "privaudit.reports.junit",
        "markdown": "privaudit.reports.markdown",
    },
    validate=_check_format, sort=False,
)


def report_format(name: str, filename: str) -> Callable[[Renderer], Renderer]:
    """Register `render(summary) -> text` as format `name`, written to `filename` in the run folder."""

    def deco(fn: Renderer) -> Renderer:
        FORMATS.add(name, ReportFormat(name, filename, fn))
        return fn

    return deco


def available_formats() -> list[str]:
    """Every known format name: the built-ins in the order they are written, then the others."""
    return FORMATS.names()


def write_summary_formats(out: Path, summary: Mapping[str, Any], formats: Iterable[str] | None = None) -> dict[str, Path]:
    """Render `summary` in each format (all by default) into folder `out`; returns name -> path."""
    chosen = list(FORMATS.load_all().values()) if formats is None else [FORMATS.get(n) for n in formats]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for fmt in chosen:
        path = out / fmt.filename
        write_text_atomic(path, fmt.render(summary))
        written["summary" if fmt.name == "json" else fmt.name] = path
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
    root: Path | None = None,
) -> dict[str, Path]:
    """Write summary.json, report.html, junit.xml and summary.md (or `formats`) for `results`.

    Keys of the returned dict: "summary" (summary.json), "html", "junit", "markdown". `root` is the
    run folder holding results.jsonl (default `out`): evidence reads slim results' hits there.
    """
    from privaudit.reports.json import build_summary

    summary = build_summary(results, manifest, show_pii=show_pii, thresholds=thresholds, notes=notes,
                            root=Path(root or out))
    return write_summary_formats(Path(out), summary, formats)
