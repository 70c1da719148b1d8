"""Scaling of the PII attack (generation + likelihood) with the number of data subjects.

Runs `run_audit` with attack `pii` (likelihood=True) on a random-init tiny Llama at 1x, 4x, 16x
subjects, each size into a fresh run folder, and prints time per subject and peak memory ratios
against 1x. Targets (issue 9): time per subject ratio ~1 (linear), memory ratio ~1 (flat).
Memory: tracemalloc peak (Python objects: records, prompts; what streaming keeps flat) and the
ru_maxrss growth of the process (includes torch tensors; monotone, so later sizes read low).
Usage: python benchmarks/bench_scaling.py [--base 4] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import measure, print_header  # noqa: E402

from privaudit.audit import AuditSpec, run_audit  # noqa: E402
from privaudit.data.subjects import generate_subjects, write_subjects  # noqa: E402
from privaudit.models.tiny import build_tiny_model  # noqa: E402

TEXTS = [
    "Alice Johnson's email is alice.johnson@example.com and her phone is 555-0101.",
    "Bob Smith lives at 42 Elm Street, Springfield. Call him at 555-0199.",
    "Please send the invoice to billing@example.org before Friday.",
    "Frank's address is 7 Harbor Road, Boston, MA 02110.",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=int, default=4, help="subjects at 1x")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    args = ap.parse_args()
    print_header("bench_scaling: PII attack (generate + likelihood) vs number of subjects")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_tiny_model(TEXTS, root / "model", seed=0)
        subjects = generate_subjects(16 * args.base, seed=0)
        rows = []
        # Warm-up (untimed): the first audit pays one-off costs (imports, model load paths, kernels'
        # first calls) that would otherwise inflate the 1x time and flatter the ratios.
        warm = root / "subjects_warm.jsonl"
        write_subjects(warm, subjects[:1])
        run_audit(AuditSpec(targets=[f"hf:{model}"], attacks={"pii": {"subjects": str(warm), "likelihood": True,
                            "max_new_tokens": args.max_new_tokens}}, out=root / "run_warm", seed=0,
                            batch_size=args.batch_size, cache=False))
        for mult in (1, 4, 16):
            n = mult * args.base
            path = root / f"subjects_{n}.jsonl"
            write_subjects(path, subjects[:n])
            spec = AuditSpec(
                targets=[f"hf:{model}"],
                attacks={"pii": {"subjects": str(path), "likelihood": True, "max_new_tokens": args.max_new_tokens}},
                out=root / f"run_{n}", seed=0, batch_size=args.batch_size, cache=False,
            )
            with measure() as m:
                run_audit(spec)
            rows.append((mult, n, m))
            print(f"{mult:>3}x n={n:<4} wall={m.wall_s:8.2f}s per_subject={m.wall_s / n:7.3f}s "
                  f"py_peak={m.py_peak_mib:7.1f}MiB rss_growth={m.rss_delta_mib:7.1f}MiB", flush=True)
        _, n1, m1 = rows[0]
        for mult, n, m in rows[1:]:
            print(f"ratio {mult}x/1x: time_per_subject={(m.wall_s / n) / (m1.wall_s / n1):.2f} (target ~1, linear) "
                  f"py_peak={m.py_peak_mib / max(m1.py_peak_mib, 1e-9):.2f} (target ~1, flat)")


if __name__ == "__main__":
    main()
