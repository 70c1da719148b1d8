"""The demo's comparison child process: failures are one line, and it never outlives the demo.

Real processes throughout: the child is `python -m privaudit.demo_worker` on a real compare.toml
(the demo's own, over the session's embedded setup); nothing is stubbed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from privaudit.demo import DemoOptions, demo_compare_spec, write_compare_spec
from privaudit.demo_background import BackgroundComparison, BackgroundComparisonError


def _alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a reaped or exited child reads as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.2)
    return not _alive(pid)


def _demo_compare_toml(tmp_path: Path, setup) -> Path:
    spec = demo_compare_spec(DemoOptions(out=tmp_path), setup)
    return write_compare_spec(spec, tmp_path / "compare.toml")


def test_a_failing_comparison_stops_the_demo_with_its_one_line_error(tmp_path: Path) -> None:
    toml = tmp_path / "compare.toml"
    toml.write_text(textwrap.dedent(f"""\
        base = "hf:{tmp_path / 'no-such-model'}"
        corpus = "{tmp_path / 'missing-corpus.jsonl'}"
        subjects = "{tmp_path / 'missing-subjects.jsonl'}"
        out = "{tmp_path / 'compare'}"
        """), encoding="utf-8")
    background = BackgroundComparison(toml, tmp_path / "compare.log")
    with background:
        with pytest.raises(BackgroundComparisonError) as caught:
            background.wait()
    message = str(caught.value)
    assert "\n" not in message
    assert str(tmp_path / "compare.log") in message and "exit 2" in message
    assert "missing-corpus.jsonl" in message or "no-such-model" in message, message
    assert caught.value.exit_code == 2
    assert not background.running


@pytest.mark.slow
def test_leaving_early_stops_the_comparison(tmp_path: Path, memorized_setup) -> None:
    """The demo failed or was interrupted while the child trained: leaving the block ends the child."""
    background = BackgroundComparison(_demo_compare_toml(tmp_path, memorized_setup), tmp_path / "compare.log")
    with background:
        pid = background.pid
        time.sleep(3.0)  # the child is importing torch or training its first variant
        assert background.running
    assert _wait_gone(pid, 1.0)
    assert not background.running


@pytest.mark.slow
def test_the_comparison_dies_with_a_killed_demo(tmp_path: Path, memorized_setup) -> None:
    """kill -9 of the demo's process leaves no writer behind in compare/ (Linux: PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("parent-death signal is Linux-only")
    toml = _demo_compare_toml(tmp_path, memorized_setup)
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""\
            import time
            from privaudit.demo_background import BackgroundComparison
            b = BackgroundComparison({str(toml)!r}, {str(tmp_path / 'compare.log')!r})
            b.start()
            print(b.pid, flush=True)
            time.sleep(600)
            """)],
        stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
        time.sleep(2.0)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert _wait_gone(child, 20.0), "the comparison outlived the killed demo"
    finally:
        if parent.poll() is None:
            parent.kill()
