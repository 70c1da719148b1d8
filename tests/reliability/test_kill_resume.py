"""Kill and resume: a run killed with SIGKILL at random points and resumed ends with exactly the
records of an uninterrupted run (same seed), with no probe computed twice and none lost."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from privaudit.data.subjects import generate_subjects, write_subjects

pytestmark = pytest.mark.slow


def _write_audit(tmp_path: Path, model_dir: Path) -> Path:
    subjects = tmp_path / "subjects.jsonl"
    write_subjects(subjects, generate_subjects(6, seed=3))
    spec = tmp_path / "audit.toml"
    spec.write_text(
        f'targets = ["hf:{model_dir}"]\nseed = 7\nbatch_size = 2\ncache = false\n'
        f'[attacks.pii]\nsubjects = "{subjects}"\nnum_samples = 2\ndo_sample = true\nmax_new_tokens = 6\n'
        f'levels = [1, 2]\n'
    )
    return spec


def _run(spec: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "privaudit.cli", "--quiet", "run", str(spec), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)


def _records(out: Path) -> dict[str, dict]:
    lines = (out / "results.jsonl").read_bytes().splitlines()
    recs = [json.loads(line) for line in lines]
    keys = [r["key"] for r in recs]
    assert len(keys) == len(set(keys)), "a probe was stored twice"
    return {r["key"]: r for r in recs}


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_sigkill_at_random_points_then_resume_gives_the_uninterrupted_results(tmp_path, tiny_model_dir):
    spec = _write_audit(tmp_path, tiny_model_dir)
    reference_out = tmp_path / "reference"
    proc = _run(spec, reference_out)
    output = proc.communicate(timeout=600)[0].decode()
    assert proc.returncode == 0, output
    reference = _records(reference_out)
    assert len(reference) >= 12

    kills = 0
    for seed in (1, 2, 3):
        rng = random.Random(seed)
        out = tmp_path / f"killed{seed}"
        kill_after = rng.randint(1, len(reference) - 1)
        proc = _run(spec, out)
        deadline = time.monotonic() + 300
        while _lines(out / "results.jsonl") < kill_after and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        killed = proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        partial = _lines(out / "results.jsonl")
        if killed and seed == 3 and partial:
            _tear_last_line(out / "results.jsonl", rng)  # as if the kill landed inside a write
            partial -= 1
        kills += killed and 0 < partial < len(reference)
        resumed = _run(spec, out)
        output = resumed.communicate(timeout=600)[0].decode()
        assert resumed.returncode == 0, output
        got = _records(out)
        assert got.keys() == reference.keys(), f"seed {seed}: lost or extra probes after resume"
        assert got == reference, f"seed {seed}: resumed records differ from the uninterrupted run"
        assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    assert kills >= 2, "the runs finished before the kills: the test did not exercise resume"


def _tear_last_line(path: Path, rng: random.Random) -> None:
    """Cut the file inside its last record, leaving a partial line without its newline."""
    data = path.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: start + rng.randint(1, len(data) - start - 2)])
