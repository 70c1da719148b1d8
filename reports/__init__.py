"""Reports (installed as `privaudit.reports`): pure functions of a run's records and summaries."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence


def write_reports(
    out: Path,
    results: Sequence[Any],
    manifest: Mapping[str, Any],
    *,
    show_pii: bool = False,
    thresholds: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write summary.json (and, as the reports package grows, HTML, JUnit XML and Markdown)."""
    from privaudit.reports.json import write_summary

    return {"summary": write_summary(Path(out), results, manifest, show_pii=show_pii)}
