"""Progress reporting on every long step (rich), silenced by --quiet.

Attacks receive a Progress through their RunContext instead of creating bars themselves, so tests
and `--quiet` runs print nothing, and a future non-terminal reporter needs no attack changes.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class ProgressReporter:
    """A thin façade over rich.Progress: `with reporter.task("probing", total) as advance: advance(n)`."""

    def __init__(self, quiet: bool = False, console: Console | None = None) -> None:
        self.quiet = quiet
        self.console = console or Console(stderr=True, highlight=False)

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator:
        if self.quiet:
            yield lambda n=1: None
            return
        progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=self.console, transient=False,
        )
        with progress:
            task_id = progress.add_task(description, total=total)
            yield lambda n=1: progress.advance(task_id, n)

    def log(self, message: str) -> None:
        if not self.quiet:
            from privaudit.reports.text import display_text

            # Messages carry target names and data: escapes in them must not drive the terminal.
            self.console.print(display_text(message), markup=False)
