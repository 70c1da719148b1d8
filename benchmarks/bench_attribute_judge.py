"""What an offline judge does for the guesses SynthPAI's rules leave undecided (issue 20).

Runs `privaudit attack attributes --predictions FILE --judge JUDGE --max-authors N` once in a fresh
process (or reads an existing run folder with --run), then prints, from its results.jsonl: how many
judge prompts and guesses were asked, how many replies were readable (`rule = judge` vs
`judge_unparsed`), the judge's agreement with SynthPAI's official per-guess scores on the guesses it
decided, how often it said 'yes' where the official score is not 1, and per attribute top-1/top-3
rules only (judge verdicts taken back to undecided) vs rules + judge vs official.
Slow with a local model on 2 cores (SmolLM2-135M: about 19 min for 20 authors, contended).
Usage: python benchmarks/bench_attribute_judge.py [--predictions FILE] [--judge SPEC] [--max-authors N] [--run DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench_attribute_predictions import _default

JUDGED = ("judge", "judge_unparsed")


def _topk(records: list[dict], key: str) -> dict[str, tuple[int, float, float]]:
    pairs: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        pairs[(r["author"], r["attribute"])].append(r)
    acc: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for (_, attr), rows in pairs.items():
        s = [r[key] for r in sorted(rows, key=lambda r: r["rank"])]
        acc[attr].append((s[0] == 1.0, any(x == 1.0 for x in s[:3])))
    return {a: (len(v), sum(t1 for t1, _ in v) / len(v), sum(t3 for _, t3 in v) / len(v)) for a, v in acc.items()}


def report(records: list[dict]) -> None:
    """Print the judge's counts and agreement and the top-k table of one run's guess records."""
    asked = [r for r in records if r["rule"] in JUDGED]
    decided = [r for r in asked if r["rule"] == "judge" and r["official_score"] is not None]
    prompts = {(r["author"], r["attribute"]) for r in asked}
    readable = {(r["author"], r["attribute"]) for r in asked if r["rule"] == "judge"}
    agree = sum(r["score"] == r["official_score"] for r in decided)
    false_yes = sum(r["score"] == 1.0 and r["official_score"] != 1.0 for r in decided)
    print(f"judge prompts: {len(prompts)}  guesses asked: {len(asked)}  readable replies: {len(readable)}")
    print(f"decided guesses with an official score: {len(decided)}  agreement: "
          f"{agree / len(decided):.3f}" if decided else "decided guesses with an official score: 0  agreement: undefined")
    print(f"judge 'yes' where official is not 1: {false_yes}")
    rules_only = [{**r, "score": None} if r["rule"] in JUDGED else r for r in records]
    rows = zip(sorted(_topk(rules_only, "score").items()), sorted(_topk(records, "score").items()),
               sorted(_topk(records, "official_score").items()))
    print("attribute            pairs  top1 rules/+judge/official   top3 rules/+judge/official")
    for (attr, (n, r1, r3)), (_, (_, j1, j3)), (_, (_, o1, o3)) in rows:
        print(f"{attr:20s} {n:5d}  {r1:.3f} / {j1:.3f} / {o1:.3f}      {r3:.3f} / {j3:.3f} / {o3:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictions", type=Path, default=_default())
    ap.add_argument("--judge", default="builtin:smollm2-135m")
    ap.add_argument("--max-authors", type=int, default=20)
    ap.add_argument("--run", type=Path, default=None, help="Read this run folder instead of running.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.run
        if out is None:
            if not args.predictions.is_file():
                sys.exit(f"{args.predictions}: no such file (pass --predictions)")
            out = Path(tmp) / "run"
            t0 = time.perf_counter()
            subprocess.run([str(Path(sys.executable).with_name("privaudit")), "--quiet", "attack", "attributes",
                            "--predictions", str(args.predictions), "--judge", args.judge,
                            "--max-authors", str(args.max_authors), "-o", str(out)],
                           check=True, stdout=subprocess.DEVNULL)
            print(f"wall: {time.perf_counter() - t0:.1f} s  judge: {args.judge}  authors: {args.max_authors}")
        lines = (out / "results.jsonl").read_text().splitlines()
        report([r for r in map(json.loads, lines) if r.get("attack") == "attributes" and "rank" in r])


if __name__ == "__main__":
    main()
