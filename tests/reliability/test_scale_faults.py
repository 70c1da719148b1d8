"""Audits against a served model under load (issue 18), through the real load-test server on 127.0.0.1.

- past the server's concurrency cap the adaptive client settles near the cap with no failed prompt;
- with injected 5xx and dropped connections an audit loses and duplicates no probe (the chunked,
  streamed extraction path, with several chunks), and its manifest records the client's window;
- a `privaudit run` killed with SIGKILL mid-run resumes to the records of an uninterrupted run.
Throughput vs concurrency is a benchmark (benchmarks/bench_scale.py), never a timed test here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from privaudit.attacks import pii_extraction
from privaudit.audit import AuditSpec, run_audit
from privaudit.data.subjects import generate_subjects, write_subjects
from privaudit.engine.store import read_records
from privaudit.loadtest import LoadConfig, LoadServer, synthetic_completion
from privaudit.targets.base import GenerationConfig, load_target

TEMPLATES = ["email-twin-1", "email-twin-2", "email-twin-3"]


def _expected(prompt: str) -> list[str]:
    return [synthetic_completion(f"{prompt}\x1f0", LoadConfig().words)]


def _pii_attack(subjects: Path) -> dict:
    return {"subjects": str(subjects), "pii_types": ["email"], "levels": [1], "template_ids": TEMPLATES,
            "max_new_tokens": 8}


def _check_records(out: Path, n_probes: int) -> dict[str, dict]:
    recs = list(read_records(out))
    keys = [r["key"] for r in recs]
    assert len(keys) == len(set(keys)), "a probe was stored twice"
    assert len(keys) == n_probes, f"{n_probes - len(keys)} probes lost"
    for rec in recs:
        assert rec["outputs"] == _expected(rec["prompt"])  # the answer to its own prompt, not a neighbour's
    return {r["key"]: r for r in recs}


def test_past_the_server_cap_the_client_settles_near_it_with_no_failed_prompt():
    with LoadServer(LoadConfig(latency=0.05, cap=8, retry_after="0")) as srv:
        target = load_target(srv.spec("concurrency=32;score=false;backoff=0.01;max_retries=30"))
        try:
            prompts = [f"prompt {i}" for i in range(240)]
            out = target.generate(prompts, GenerationConfig(max_new_tokens=8))
            stats = target.client_stats()
        finally:
            target.close()
        assert out == [_expected(p) for p in prompts]  # every prompt answered, in order
        assert srv.stats.throttled > 0 and srv.stats.max_in_flight <= 8
        assert stats["decreases"] >= 1
        assert stats["settled_concurrency"] <= 8 + 2  # AIMD's sawtooth around the cap, far below 32


def test_injected_faults_lose_and_duplicate_no_probe(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(pii_extraction, "SUBJECT_CHUNK", 64)  # several chunks of the streamed path
    subjects = tmp_path / "subjects.jsonl"
    write_subjects(subjects, generate_subjects(200, seed=18))
    config = LoadConfig(latency=0.01, cap=64, error_rate=0.025, drop_rate=0.025, seed=3)
    with LoadServer(config) as srv:
        spec = AuditSpec(targets=[srv.spec("concurrency=32;batch=4;score=false;backoff=0.01;max_retries=12")],
                         attacks={"pii": _pii_attack(subjects)}, out=tmp_path / "run", batch_size=128, cache=False)
        results = run_audit(spec)
        assert srv.stats.errors > 0 and srv.stats.dropped > 0  # the faults really happened
    _check_records(spec.out, 600)
    assert results[0].metrics["probe_exact_match_rate"].n == 600
    manifest = json.loads((spec.out / "manifest.json").read_text())
    client = manifest["clients"][results[0].target]
    assert client["concurrency_cap"] == 32 and 1 <= client["settled_concurrency"] <= 32
    assert client["max_in_flight"] >= 1 and client["requests"] >= 150


def _write_audit(tmp_path: Path, port: int, name: str) -> Path:
    subjects = tmp_path / "subjects.jsonl"
    if not subjects.exists():
        write_subjects(subjects, generate_subjects(400, seed=21))
    spec = tmp_path / f"{name}.toml"
    target = f"openai:http://127.0.0.1:{port}/v1#loadtest;concurrency=16;score=false;backoff=0.01;max_retries=12"
    spec.write_text(f'targets = ["{target}"]\nseed = 7\nbatch_size = 32\ncache = false\n[attacks.pii]\n'
                    f'subjects = "{subjects}"\npii_types = ["email"]\nlevels = [1]\n'
                    f'template_ids = {json.dumps(TEMPLATES)}\nmax_new_tokens = 8\n')
    return spec


def _run(spec: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "privaudit.cli", "--quiet", "run", str(spec), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_sigkill_mid_run_under_faults_resumes_to_the_uninterrupted_records(tmp_path: Path):
    server = subprocess.Popen([sys.executable, "-m", "privaudit.loadtest", "--latency", "0.02", "--error-rate",
                               "0.025", "--drop-rate", "0.025", "--cap", "64"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())  # type: ignore[union-attr]
        spec = _write_audit(tmp_path, port, "audit")
        reference = _run(spec, tmp_path / "reference")
        assert reference.wait(timeout=300) == 0, reference.stdout.read()  # type: ignore[union-attr]

        out = tmp_path / "killed"
        proc = _run(spec, out)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "results.jsonl").exists() and (out / "results.jsonl").read_bytes().count(b"\n") >= 300:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        stored = (out / "results.jsonl").read_bytes().count(b"\n")
        assert 0 < stored < 1200

        resumed = _run(spec, out)
        assert resumed.wait(timeout=300) == 0, resumed.stdout.read()  # type: ignore[union-attr]
    finally:
        server.terminate()
        server.wait()
    assert _check_records(out, 1200) == _check_records(tmp_path / "reference", 1200)
    summaries = [json.loads((d / "summary.json").read_text())["results"][0]["metrics"] for d in (out, tmp_path / "reference")]
    assert summaries[0] == summaries[1]

