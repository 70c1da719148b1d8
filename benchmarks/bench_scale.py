"""Audits at the scale of a user base (issue 18): the PII attack through the load-test server.

Two parts, both against `python -m privaudit.loadtest` running as its own process (so its CPU and
memory are not the client's):

1. `--scaling`: throughput of the `openai:` client alone (`Target.generate` over many prompts) at
   several concurrency caps, with a fixed server latency and server cap: throughput should grow
   about linearly with concurrency up to the server's cap, and past it the adaptive window settles
   below the cap with 0 failed prompts.
2. `--sizes`: the whole audit (`privaudit run`: subjects file -> probes -> results.jsonl -> summary
   -> reports) at 1x, 10x, 100x data subjects, each in a fresh process, with injected 5xx and dropped
   connections; prints wall time, throughput, concurrency reached, peak RSS (of the audit process,
   from wait4) and checks 0 lost / 0 duplicated probes in results.jsonl.

Synthetic subjects come from the project's generator (`generate_subjects`); each subject gets a few
probes (one PII type, 3 templates), greedy, and the server answers synthetic completions.

    python benchmarks/bench_scale.py --scaling 4,32,128,256,512 --sizes 1000,10000,100000 --bias

3. `--bias`: the bias attack (a few personas and the control x `--bias-items` items per set, chat
   requests) through the same faulty server: records, wall time, concurrency, duplicates, peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALL_TEMPLATES = ("email-twin-1", "email-twin-2", "email-twin-3")
TEMPLATES = ALL_TEMPLATES  # --templates N keeps the first N
# Prompts per level = 32 x the concurrency cap (at least): slow start (window 16, doubling per round
# trip) and the tail then take a small share of the wall time, so the rate is the steady state.
PROMPTS_PER_SLOT = 32


def start_server(latency: float, cap: int, error_rate: float, drop_rate: float) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "privaudit.loadtest", "--latency", str(latency), "--cap", str(cap),
                             "--error-rate", str(error_rate), "--drop-rate", str(drop_rate)],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    port = int(proc.stdout.readline())  # type: ignore[union-attr]
    return proc, port


def server_stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=30) as resp:
        return json.loads(resp.read())


def scaling(concurrencies: list[int], prompts_per_level: int, latency: float, cap: int) -> list[dict]:
    """Client throughput at each concurrency cap (no faults), in this process, in the steady state.

    Each level first sends 4 x concurrency prompts untimed (slow start takes the window from 16 to the
    cap; the target keeps its window between calls), then times `max(prompts_per_level,
    PROMPTS_PER_SLOT x concurrency)` prompts, so slow start is not in the rate and the tail (the last
    round trip, partly empty) is at most 1/32 of it.
    """
    from privaudit.targets.base import GenerationConfig, load_target

    proc, port = start_server(latency, cap, 0.0, 0.0)
    rows = []
    try:
        cfg = GenerationConfig(max_new_tokens=16)
        for conc in concurrencies:
            target = load_target(f"openai:http://127.0.0.1:{port}/v1#loadtest;concurrency={conc};score=false;"
                                 "backoff=0.05;latency_factor=0")
            target.generate([f"warm-up {conc} {i}" for i in range(4 * conc)], cfg)  # untimed: slow start
            n = max(prompts_per_level, conc * PROMPTS_PER_SLOT)
            prompts = [f"scaling {conc} prompt {i}" for i in range(n)]
            before = server_stats(port)
            t0, c0 = time.perf_counter(), time.process_time()
            out = target.generate(prompts, cfg)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            after = server_stats(port)
            stats = target.client_stats()
            target.close()
            rows.append({"concurrency": conc, "prompts": n, "wall_s": wall, "rate": n / wall,
                         "cpu_ms": 1000 * cpu / n, "latency_ms": 1000 * (stats["smoothed_latency_s"] or 0.0),
                         "settled": stats["settled_concurrency"], "max_in_flight": stats["max_in_flight"],
                         "server_429": after["throttled"] - before["throttled"],
                         "failed": n - sum(1 for o in out if o and o[0]), "load": os.getloadavg()[0]})
            print(f"  {rows[-1]}", flush=True)
    finally:
        proc.terminate()
        proc.wait()
    base = rows[0]
    print(f"\nclient throughput vs concurrency, steady state (server latency {latency * 1000:.0f} ms, server cap {cap})")
    print("| concurrency cap | prompts | wall (s) | rate (prompts/s) | vs first | ideal | client CPU ms/prompt | "
          "latency seen (ms) | settled window | max in flight | 429s | failed | load (1 min) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        ideal = min(r["concurrency"], cap) / min(base["concurrency"], cap)
        print(f"| {r['concurrency']} | {r['prompts']} | {r['wall_s']:.1f} | {r['rate']:.1f} | "
              f"{r['rate'] / base['rate']:.1f}x | {ideal:.0f}x | {r['cpu_ms']:.2f} | {r['latency_ms']:.0f} | "
              f"{r['settled']} | {r['max_in_flight']} | {r['server_429']} | {r['failed']} | {r['load']:.2f} |")
    return rows


def write_audit(work: Path, n: int, spec: str, batch_size: int) -> Path:
    from privaudit.data.subjects import generate_subjects, write_subjects

    subjects = work / f"subjects_{n}.jsonl"
    if not subjects.exists():
        write_subjects(subjects, generate_subjects(n, seed=18))
    audit = work / f"audit_{n}.toml"
    audit.write_text(f'targets = ["{spec}"]\nseed = 18\nbatch_size = {batch_size}\ncache = false\n'
                     f'[attacks.pii]\nsubjects = "{subjects}"\npii_types = ["email"]\nlevels = [1]\n'
                     f'template_ids = {json.dumps(list(TEMPLATES))}\nmax_new_tokens = 16\n')
    return audit


def run_size(work: Path, n: int, port: int, concurrency: int, batch_size: int, batch: int) -> dict:
    spec = f"openai:http://127.0.0.1:{port}/v1#loadtest;concurrency={concurrency};score=false;backoff=0.05;max_retries=8;batch={batch}"
    audit = write_audit(work, n, spec, batch_size)
    out = work / f"run_{n}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "privaudit.cli", "--quiet", "run", str(audit), "--out", str(out),
                             "--fresh"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""  # type: ignore[union-attr]
    if status != 0:
        raise SystemExit(f"size {n}: privaudit run failed ({status}): {err[-2000:]}")
    keys: set[str] = set()
    lines = 0
    with open(out / "results.jsonl", "rb") as fh:
        for raw in fh:
            lines += 1
            keys.add(json.loads(raw)["key"])
    expected = n * len(TEMPLATES)
    manifest = json.loads((out / "manifest.json").read_text())
    client = next(iter(manifest.get("clients", {}).values()), {})
    summary = json.loads((out / "summary.json").read_text())
    metric = summary["results"][0]["metrics"]["probe_exact_match_rate"]
    return {"subjects": n, "probes": expected, "stored": lines, "lost": expected - len(keys),
            "duplicated": lines - len(keys), "wall_s": wall, "rate": expected / wall,
            "peak_rss_mib": usage.ru_maxrss / 1024, "cpu_ms": 1000 * (usage.ru_utime + usage.ru_stime) / expected, "settled": client.get("settled_concurrency"),
            "max_in_flight": client.get("max_in_flight"), "throttled": client.get("throttled"),
            "summary_n": metric["n"], "summary_bytes": (out / "summary.json").stat().st_size}


def _records(out: Path) -> tuple[dict[str, str], int]:
    """Each stored record by its probe key (as canonical JSON) and the number of lines stored."""
    records: dict[str, str] = {}
    lines = 0
    with open(out / "results.jsonl", "rb") as fh:
        for raw in fh:
            lines += 1
            row = json.loads(raw)
            records[row["key"]] = json.dumps(row, sort_keys=True)
    return records, lines


def kill_and_resume(work: Path, n: int, port: int, fraction: float) -> dict:
    """SIGKILL `privaudit run` of size `n` once `fraction` of its probes are stored, resume it, and
    compare the records and the summary's metrics with the uninterrupted run of `run_size` (same
    audit.toml; the load-test server's completions are a function of the prompt, faults included)."""
    import signal

    audit, done, out = work / f"audit_{n}.toml", work / f"run_{n}", work / f"run_{n}_killed"
    expected = n * len(TEMPLATES)
    cmd = [sys.executable, "-m", "privaudit.cli", "--quiet", "run", str(audit), "--out", str(out)]
    proc = subprocess.Popen([*cmd, "--fresh"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    stored = 0
    while proc.poll() is None:
        try:
            with open(out / "results.jsonl", "rb") as fh:
                stored = sum(1 for _ in fh)
        except FileNotFoundError:
            stored = 0
        if stored >= fraction * expected:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    if proc.returncode != -signal.SIGKILL:
        raise SystemExit(f"size {n}: the run ended ({proc.returncode}) before {fraction:.0%} of its probes were stored")
    t0 = time.perf_counter()
    resumed = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT, text=True)
    if resumed.returncode != 0:
        raise SystemExit(f"size {n}: the resumed run failed ({resumed.returncode}): {resumed.stderr[-2000:]}")
    (want, _), (got, lines) = _records(done), _records(out)
    metrics = [json.loads((d / "summary.json").read_text())["results"][0]["metrics"] for d in (done, out)]
    return {"subjects": n, "killed_at_records": stored, "resume_s": time.perf_counter() - t0,
            "lost": expected - len(got), "duplicated": lines - len(got), "records_identical": got == want,
            "metrics_identical": metrics[0] == metrics[1]}


def sizes(ns: list[int], a: argparse.Namespace, work: Path) -> list[dict]:
    concurrency, batch_size, latency, cap = a.concurrency, a.batch_size, a.latency, a.cap
    error_rate, drop_rate = a.error_rate, a.drop_rate
    proc, port = start_server(latency, cap, error_rate, drop_rate)
    rows = []
    try:
        for n in ns:
            rows.append(run_size(work, n, port, concurrency, batch_size, a.batch))
            print(f"  done {n} subjects: {rows[-1]}", flush=True)
        kills = [kill_and_resume(work, n, port, a.kill_at) for n in ns] if a.kill_at else []
        stats = server_stats(port)
    finally:
        proc.terminate()
        proc.wait()
    base = rows[0]["peak_rss_mib"]
    print(f"\nwhole audit (PII, {len(TEMPLATES)} probes/subject, server latency {latency * 1000:.0f} ms, cap {cap}, "
          f"{error_rate:.1%} 5xx + {drop_rate:.1%} dropped; client concurrency cap {concurrency}, "
          f"{a.batch} prompts/request, --batch-size {batch_size})")
    print("| subjects | probes | wall (s) | probes/s | CPU ms/probe | settled / max in flight | lost | duplicated | "
          "peak RSS (MiB) | RSS vs 1x |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['subjects']:,} | {r['probes']:,} | {r['wall_s']:.1f} | {r['rate']:.0f} | {r['cpu_ms']:.2f} | "
              f"{r['settled']} / "
              f"{r['max_in_flight']} | {r['lost']} | {r['duplicated']} | {r['peak_rss_mib']:.0f} | "
              f"{r['peak_rss_mib'] / base:.2f}x |")
    if kills:
        print(f"\nkill -9 once {a.kill_at:.0%} of the probes are stored, then resume (same server and faults)")
        print("| subjects | killed at (records) | resume (s) | lost | duplicated | records identical | metrics identical |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for k in kills:
            print(f"| {k['subjects']:,} | {k['killed_at_records']:,} | {k['resume_s']:.1f} | {k['lost']} | "
                  f"{k['duplicated']} | {k['records_identical']} | {k['metrics_identical']} |")
    print(f"server saw: {stats}")
    return rows


def bias_run(work: Path, a: argparse.Namespace) -> dict:
    """The bias attack (a few personas x items, chat requests) through the same server, with faults."""
    proc, port = start_server(a.latency, a.cap, a.error_rate, a.drop_rate)
    try:
        spec = (f"openai:http://127.0.0.1:{port}/v1#loadtest;concurrency={a.concurrency};score=false;"
                "backoff=0.05;max_retries=8")
        personas = json.dumps(BIAS_PERSONAS[: a.bias_personas])
        audit = work / "audit_bias.toml"
        audit.write_text(f'targets = ["{spec}"]\nseed = 18\nbatch_size = {a.batch_size}\ncache = false\n'
                         f'[attacks.bias]\npersonas = {personas}\nmax_items = {a.bias_items}\n'
                         'likelihood = false\nmax_new_tokens = 16\nutility_max_new_tokens = 16\n')
        out = work / "run_bias"
        t0 = time.perf_counter()
        run = subprocess.Popen([sys.executable, "-m", "privaudit.cli", "--quiet", "run", str(audit), "--out", str(out),
                                "--fresh"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
        _, status, usage = os.wait4(run.pid, 0)
        wall = time.perf_counter() - t0
        err = run.stderr.read().decode() if run.stderr else ""  # type: ignore[union-attr]
        if status != 0:
            raise SystemExit(f"bias: privaudit run failed ({status}): {err[-2000:]}")
        stats = server_stats(port)
    finally:
        proc.terminate()
        proc.wait()
    keys: set[str] = set()
    lines = 0
    with open(out / "results.jsonl", "rb") as fh:
        for raw in fh:
            lines += 1
            keys.add(json.loads(raw)["key"])
    client = next(iter(json.loads((out / "manifest.json").read_text()).get("clients", {}).values()), {})
    summary = json.loads((out / "summary.json").read_text())
    row = {"personas": a.bias_personas, "items": a.bias_items, "records": lines, "duplicated": lines - len(keys),
           "wall_s": wall, "rate": lines / wall, "peak_rss_mib": usage.ru_maxrss / 1024,
           "settled": client.get("settled_concurrency"), "max_in_flight": client.get("max_in_flight"),
           "metrics": len(summary["results"][0]["metrics"]), "server": stats}
    print(f"\nbias attack ({a.bias_personas} personas + control, max_items {a.bias_items}, chat requests; "
          f"server latency {a.latency * 1000:.0f} ms, cap {a.cap}, {a.error_rate:.1%} 5xx + {a.drop_rate:.1%} dropped)")
    print("| personas | records | wall (s) | records/s | settled / max in flight | duplicated | peak RSS (MiB) | metrics |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {row['personas']} | {row['records']:,} | {wall:.1f} | {row['rate']:.1f} | {row['settled']} / "
          f"{row['max_in_flight']} | {row['duplicated']} | {row['peak_rss_mib']:.0f} | {row['metrics']} |")
    print(f"server saw: {stats}")
    return row


BIAS_PERSONAS = ["gender_man", "gender_woman", "age_teenager", "gender_nonbinary"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scaling", default="4,32,128,256,512", help="concurrency caps for the client-only part ('' skips)")
    ap.add_argument("--scaling-prompts", type=int, default=256)
    ap.add_argument("--sizes", default="1000,10000,100000", help="subjects per audit ('' skips)")
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=2048, help="probes per target call (the run's --batch-size)")
    ap.add_argument("--batch", type=int, default=8, help="prompts per HTTP request (the openai: batch option)")
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--cap", type=int, default=256)
    ap.add_argument("--error-rate", type=float, default=0.025)
    ap.add_argument("--drop-rate", type=float, default=0.025)
    ap.add_argument("--templates", type=int, default=3, help="probes per subject (email twin templates, 1-3)")
    ap.add_argument("--kill-at", type=float, default=0.0,
                    help="after each size, rerun it, SIGKILL it once this share of probes is stored, resume, "
                         "and compare with the uninterrupted run (0 = skip)")
    ap.add_argument("--bias", action="store_true", help="also run the bias attack through the server")
    ap.add_argument("--bias-personas", type=int, default=3)
    ap.add_argument("--bias-items", type=int, default=4, help="the bias attack's max_items (per item set)")
    ap.add_argument("--work", default="", help="folder for subjects and runs (default: a temporary one)")
    args = ap.parse_args()
    global TEMPLATES
    TEMPLATES = ALL_TEMPLATES[: max(1, min(3, args.templates))]
    print(f"load average at start: {os.getloadavg()}, cpus: {os.cpu_count()}")
    if args.scaling:
        scaling([int(x) for x in args.scaling.split(",")], args.scaling_prompts, args.latency, args.cap)
    if args.sizes:
        ns = [int(x) for x in args.sizes.split(",")]
        if args.work:
            Path(args.work).mkdir(parents=True, exist_ok=True)
            sizes(ns, args, Path(args.work))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                sizes(ns, args, Path(tmp))
    if args.bias:
        with tempfile.TemporaryDirectory() as tmp:
            bias_run(Path(args.work or tmp), args)
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
