"""Concurrency (issue 10, item 6): a second `privaudit run` on a folder in use is refused, not interleaved.

Two real processes: the first holds the run folder's lock (it runs against a real local HTTP server
that answers slowly), the second starts on the same folder and must exit 2 naming the lock.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from privaudit.data.subjects import generate_subjects, write_subjects
from privaudit.engine.store import read_records
from privaudit.errors import EXIT_USAGE
from privaudit.serve import OpenAIApp

from reliability.char_target import CharBigramTarget
from reliability.fault_server import FaultServer, slow


def run_cli(audit: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "privaudit.cli", "--quiet", "run", str(audit), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_second_run_on_the_same_folder_is_refused_naming_the_lock(tmp_path: Path):
    subjects = tmp_path / "subjects.jsonl"
    write_subjects(subjects, generate_subjects(2, seed=0))
    out = tmp_path / "run"
    with FaultServer(OpenAIApp(CharBigramTarget())) as srv:
        srv.set_script([], default=slow(0.3))  # every request takes 0.3 s: the first run holds the lock a while
        audit = tmp_path / "audit.toml"
        audit.write_text(f'targets = ["{srv.spec("score=false;timeout=10")}"]\ncache = false\nbatch_size = 2\n'
                         f'[attacks.pii]\nsubjects = "{subjects}"\nmax_new_tokens = 4\n')
        first = run_cli(audit, out)
        deadline = time.monotonic() + 120
        while not (out / ".lock").exists() or not (out / "manifest.json").exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "first run never took the lock"
            time.sleep(0.05)
        second = run_cli(audit, out)
        _, err = second.communicate(timeout=120)
        assert first.poll() is None, "the first run ended before the second tried: nothing was tested"
        assert second.returncode == EXIT_USAGE
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "lock" in lines[0] and str(out) in lines[0], err
        assert "another privaudit run" in lines[0]
        _, first_err = first.communicate(timeout=300)
        assert first.returncode == 0, first_err
    keys = [r["key"] for r in read_records(out)]
    assert keys and len(keys) == len(set(keys)), "records interleaved or duplicated"
    lines = (out / "results.jsonl").read_bytes().splitlines()
    assert all(line.startswith(b"{") and line.endswith(b"}") for line in lines), "a line mixes two writers"
