"""Secrets and PII at rest (issue 10, item 5).

A real OpenAI-compatible server on 127.0.0.1 requires an API key; the CLI gets it only through an
env var named in the target spec. After a full audit (a real subprocess, reports included), the key
must appear in no file of the run folder and nowhere in stdout/stderr; reports mask PII by
default; the run folder and everything in it are user-only.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from privaudit.data.subjects import generate_subjects, write_subjects
from privaudit.serve import OpenAIApp

from reliability.char_target import CharBigramTarget
from reliability.fault_server import FaultServer

SECRET = "sk-test-PLANTED-9d2e71c4b0"
KEY_VAR = "PRIVAUDIT_SECRET_TEST_KEY"


def test_api_key_never_reaches_any_output_and_run_folder_is_user_only(tmp_path: Path):
    subjects = tmp_path / "subjects.jsonl"
    people = generate_subjects(3, seed=0)
    write_subjects(subjects, people)
    out = tmp_path / "run"
    with FaultServer(OpenAIApp(CharBigramTarget(), api_key=SECRET)) as srv:
        audit = tmp_path / "audit.toml"
        audit.write_text(f'targets = ["{srv.spec(f"api_key_env={KEY_VAR}")}"]\nout = "{out}"\n'
                         f'[attacks.pii]\nsubjects = "{subjects}"\nmax_new_tokens = 8\nlikelihood = true\n'
                         f'num_candidates = 3\n')
        env = {**os.environ, KEY_VAR: SECRET}
        proc = subprocess.run([sys.executable, "-m", "privaudit.cli", "run", str(audit)],
                              capture_output=True, text=True, env=env, timeout=300)
        assert srv.auth_headers and srv.auth_headers[-1] == f"Bearer {SECRET}"  # the key was really used
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout and SECRET not in proc.stderr
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"results.jsonl", "manifest.json", "report.html", "summary.json"} <= {p.name for p in files}
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), f"API key written to {path}"
    # User-only permissions, whatever the umask: 0700 folders, 0600 files.
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for path in out.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is readable by others ({oct(mode)})"
    # Reports mask PII by default: no subject's email appears in any report.
    reports = [out / n for n in ("report.html", "summary.json", "summary.md", "junit.xml") if (out / n).exists()]
    for person in people:
        for report in reports:
            assert person.email not in report.read_text(encoding="utf-8"), f"{report.name} shows raw PII"
