#!/usr/bin/env python
"""Write docs/report.png: a headless-Chromium screenshot of a run folder's report.html.

Usage: python docs/make_screenshot.py RUN_DIR [--out docs/report.png] [--width 1280] [--height 2000]

The run folder's report.html is used as is (masked by default); with --rerender it is first
re-rendered from the run's records (`privaudit report RUN_DIR`). Needs the `chromium` binary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from privaudit.reports.browser import find_chromium, screenshot


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "report.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=2000)
    parser.add_argument("--rerender", action="store_true", help="re-render report.html from the run's records first")
    args = parser.parse_args(argv)
    if find_chromium() is None:
        print("make_screenshot: no chromium binary on PATH (apt-get install chromium)", file=sys.stderr)
        return 2
    if args.rerender:
        from privaudit.reports.rundir import render_run

        render_run(args.run_dir, formats=["html"])
    html = args.run_dir / "report.html"
    if not html.is_file():
        print(f"make_screenshot: {html}: no such file (run `privaudit report {args.run_dir}` first)", file=sys.stderr)
        return 2
    png = screenshot(html, args.out, width=args.width, height=args.height)
    print(f"wrote {png} ({png.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
