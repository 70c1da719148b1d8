"""Scoring stored SynthPAI predictions (issue 20): `privaudit attack attributes --predictions FILE`
end to end (CLI, loader, official rules, run store, summary and reports) must take under a minute
on 2 cores for a released model's file (294 authors, 700 labelled pairs, ~1600 guesses).

Runs the real command in a fresh process (the import of privaudit and its report stack included,
as a user pays it), once, into a new run folder, and prints wall time and the ratio to the
60-second target.
Usage: python benchmarks/bench_attribute_predictions.py [--predictions FILE]
       (default: ../shared/data/synthpai_dev/mixtral_8x7b_revised_human_evaluated.jsonl, never committed)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 60.0
DEV = Path("shared", "data", "synthpai_dev", "mixtral_8x7b_revised_human_evaluated.jsonl")


def _default() -> Path:
    return next((p / DEV for p in Path(__file__).resolve().parents if (p / DEV).is_file()), DEV)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictions", type=Path, default=_default())
    args = ap.parse_args()
    if not args.predictions.is_file():
        sys.exit(f"{args.predictions}: no such file (pass --predictions)")
    privaudit = Path(sys.executable).with_name("privaudit")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        t0 = time.perf_counter()
        subprocess.run([str(privaudit), "--quiet", "attack", "attributes", "--predictions", str(args.predictions),
                        "-o", str(out)], check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        records = sum(1 for line in (out / "results.jsonl").read_text().splitlines() if '"attack"' in line)
        n = json.loads((out / "summary.json").read_text())["results"][0]["metrics"]["top1"]["n"]
    print(f"file: {args.predictions.name}  pairs: {n}  guess records: {records}")
    print(f"wall: {wall:.2f} s  ({records / wall:.0f} guesses/s)  wall / {TARGET_S:.0f} s target = {wall / TARGET_S:.3f}")


if __name__ == "__main__":
    main()
