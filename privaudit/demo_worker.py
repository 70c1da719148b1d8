"""`python -m privaudit.demo_worker COMPARE_TOML`: the demo's comparison as a child process.

privaudit.demo_background starts it beside the audit's probes. It runs exactly what
`privaudit compare COMPARE_TOML` runs (same spec, same resumable folder), with the demo's quiet
warnings, printing plain progress lines to its log (no live bars: the log is a file) and errors as
one line with the CLI's exit codes.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path


def main(argv: list[str]) -> int:
    from rich.console import Console

    from privaudit.compare import load_compare_spec, run_comparison
    from privaudit.demo import DEMO_QUIET_WARNINGS
    from privaudit.errors import EXIT_USAGE, PrivauditError, error_line
    from privaudit.progress import ProgressReporter

    if len(argv) != 1:
        print("usage: python -m privaudit.demo_worker COMPARE_TOML", file=sys.stderr)
        return EXIT_USAGE
    path = Path(argv[0])
    progress = ProgressReporter(console=Console(file=sys.stdout, force_terminal=False, highlight=False, width=120))
    with warnings.catch_warnings():
        for message in DEMO_QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        try:
            run_comparison(load_compare_spec(path), progress=progress, source=str(path))
        except PrivauditError as exc:
            print(error_line(exc), flush=True)
            return exc.exit_code
    print(f"comparison finished: {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
