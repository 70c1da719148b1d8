"""Wall time of the full `privaudit demo` (issue 9: measured on 2 CPU cores, quiet machine).

Runs the CLI in a subprocess (fresh interpreter: import and model-load costs count, as for a user)
into a temporary folder and prints the wall time. Usage: python benchmarks/bench_demo.py [-- extra demo args]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_header  # noqa: E402


def main() -> None:
    print_header("bench_demo: privaudit demo wall time")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "privaudit.cli", "demo", "--out", str(Path(tmp) / "demo"), *sys.argv[1:]]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
    print(f"command: {' '.join(cmd[1:])}")
    print(f"exit={proc.returncode} wall={wall:.1f}s")
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
