"""One batch size (issue 19, item 7): does raising `--batch-size` alone make forward passes bigger?

Runs `run_audit` with the PII attack (greedy generation, no likelihood) on a real model, four ways:
  A. the run's batch size at its default (16), the target's at its default;
  B. the run's batch size raised (`--batch-size N`), the target's left at its default;
  C. both raised (`--batch-size N` and `TARGET:batch_size=N`, what users had to do before);
  D. `--batch-size N` with the target pinned at 16 rows (`:batch_size=16`): what B did before.
Before issue 19, B ran forward passes of 16 rows like A (B/A ~1) and only C was faster; with the
engine sizing forward passes from the run's batch size, B should match C (B/C ~1) and beat D.
Each configuration is its own run folder (cache off), one untimed warm-up run first.
Usage: python benchmarks/bench_batch_size.py [--target builtin:smollm2-135m] [--prompts 160] [--batch-size 32]
       [--repeats 2]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import measure, print_header  # noqa: E402

from privaudit.attacks.pii_probes import build_probes, load_templates  # noqa: E402
from privaudit.audit import AuditSpec, run_audit  # noqa: E402
from privaudit.data.subjects import generate_subjects, write_subjects  # noqa: E402

PII_TYPE = "email"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="builtin:smollm2-135m")
    ap.add_argument("--prompts", type=int, default=160, help="about this many probes (whole subjects)")
    ap.add_argument("--batch-size", type=int, default=32, help="the raised batch size (B and C)")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=1, help="rounds over the configurations; the fastest counts")
    args = ap.parse_args()
    print_header(f"bench_batch_size: --batch-size alone vs both batch sizes, {args.target}")
    per_subject = len(build_probes(generate_subjects(1, seed=0), load_templates(), pii_types=[PII_TYPE]))
    subjects = generate_subjects(math.ceil(args.prompts / per_subject), seed=0)
    n_probes = len(build_probes(subjects, load_templates(), pii_types=[PII_TYPE]))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / "subjects.jsonl"
        write_subjects(path, subjects)
        attack = {"pii": {"subjects": str(path), "pii_types": [PII_TYPE], "max_new_tokens": args.max_new_tokens}}

        def run(name: str, target: str, batch_size: int, max_subjects: int = 0) -> tuple[float, float]:
            """Wall and CPU seconds (all threads) of one audit; CPU time is the steadier on a shared machine."""
            table = {"pii": {**attack["pii"], "max_subjects": max_subjects}} if max_subjects else attack
            spec = AuditSpec(targets=[target], attacks=table, out=root / name, seed=0, batch_size=batch_size,
                             cache=False)
            cpu0 = time.process_time()
            with measure(trace_python=False) as m:  # tracemalloc would slow the Python side
                run_audit(spec)
            return m.wall_s, time.process_time() - cpu0

        run("warm", args.target, 16, max_subjects=1)  # untimed: imports, model files into the page cache
        n = args.batch_size
        configs = [("A", args.target, 16, "--batch-size 16 (defaults)"),
                   ("B", args.target, n, f"--batch-size {n} only"),
                   ("C", f"{args.target}:batch_size={n}", n, f"--batch-size {n} and :batch_size={n}"),
                   ("D", f"{args.target}:batch_size=16", n, f"--batch-size {n}, :batch_size=16 (B before)")]
        walls: dict[str, float] = {}
        cpus: dict[str, float] = {}
        # Round-robin, so a change in the machine's load hits every configuration alike; the fastest
        # round counts (noise on a shared machine only ever adds time).
        for rnd in range(args.repeats):
            for key, target, bs, label in configs:
                wall, cpu = run(f"{key}{rnd}", target, bs)
                walls[key], cpus[key] = min(walls.get(key, wall), wall), min(cpus.get(key, cpu), cpu)
                print(f"{key}: {label:<44} {n_probes} probes  wall={wall:7.2f}s  cpu={cpu:7.2f}s  "
                      f"(round {rnd + 1}, load {os.getloadavg()[0]:.1f})", flush=True)
        for a, b, meaning in (("B", "A", "before issue 19 ~1: the run's size alone changed nothing"),
                              ("B", "C", "target ~1: one batch size is enough"),
                              ("C", "A", "what a bigger forward pass buys on this machine"),
                              ("B", "D", f"--batch-size {n} alone, now vs before; < 1 is the gain")):
            print(f"ratio {a}/{b} = {walls[a] / walls[b]:.2f} wall, {cpus[a] / cpus[b]:.2f} cpu ({meaning})")


if __name__ == "__main__":
    main()
