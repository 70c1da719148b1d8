"""The demo's defense comparison, run in a child process beside the audit's probes.

Why a second process: once the embedded setup exists the demo's two halves are independent (the
comparison trains its own variants from the public base), and run one after the other they kept
about 1.2 of the 2 cores busy (measured: 431 s of CPU in 367 s of wall time; the comparison's
Flower processes and tiny-model steps leave a core idle while the chat probes could use it).
A process, not a thread: both halves seed and draw from torch's global RNG (training, Opacus'
noise), and a thread would interleave those draws, so two runs of the demo would differ. The
comparison's progress goes to its log file, so the audit's terminal output stays readable.

Resumability is the comparison's own (its run folder resumes every finished variant and probe);
the child is stopped when the demo stops early, and on Linux it also dies with its parent, so a
killed demo leaves no writer behind in `compare/` (the run folder's lock refuses a second one).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from privaudit.errors import EXIT_CANNOT_MEASURE, EXIT_USAGE, PrivauditError

STOP_GRACE_S = 20.0  # a stopped comparison finishes its current write; then it is killed
# The child (and the Flower processes it starts) computes on one thread: beside the audit's 2-thread
# chat probes on a 2-core machine, a second 2-thread OpenMP pool oversubscribes the cores, and its
# threads spin at barriers while descheduled (a step then costs several times its CPU time).
CHILD_THREADS_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
CHILD_NICENESS = 10  # inherited by the Flower processes the comparison starts


class BackgroundComparisonError(PrivauditError):
    """The child comparison exited non-zero: the demo stops with its last log line."""


def _child_setup() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Lower the child's priority; on Linux, have the kernel SIGTERM it when the demo dies (even by kill -9).

    The audit's probes are the demo's longer half (the critical path), so the comparison takes the
    cycles they leave idle rather than slowing them: with equal priority the audit's probes ran 1.6x
    slower beside it (benchmarks/RESULTS.md).
    """
    os.nice(CHILD_NICENESS)
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class BackgroundComparison:
    """`python -m privaudit.demo_worker COMPARE_TOML` as a child, its output in `log_path`.

    Use as a context manager: entering starts it, leaving stops it if it still runs (the demo
    failed or was interrupted); `wait()` blocks until it ends and raises if it failed.
    """

    def __init__(self, compare_toml: Path, log_path: Path) -> None:
        self.compare_toml = Path(compare_toml)
        self.log_path = Path(log_path)
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "privaudit.demo_worker", str(self.compare_toml)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ, **CHILD_THREADS_ENV},
                preexec_fn=_child_setup if os.name == "posix" else None,
            )

    def wait(self) -> None:
        """Block until the comparison ends; a failure raises with the log's last line and path."""
        if self._proc is None:
            raise RuntimeError("BackgroundComparison.wait() before start()")
        code = self._proc.wait()
        if code != 0:
            error = BackgroundComparisonError(
                f"{self.log_path}: the defense comparison failed (exit {code}): {self.last_log_line()}")
            error.exit_code = code if code in (EXIT_USAGE, EXIT_CANNOT_MEASURE) else EXIT_USAGE
            raise error

    def last_log_line(self) -> str:
        try:
            lines = [ln.strip() for ln in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()]
        except OSError:
            return "(no log)"
        return next((ln for ln in reversed(lines) if ln), "(empty log)")

    def stop(self) -> None:
        """Terminate a still-running child, then kill it after STOP_GRACE_S."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> "BackgroundComparison":
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
