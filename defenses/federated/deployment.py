"""Start a real Flower deployment on 127.0.0.1 (one SuperLink, N SuperNodes), submit a run, tear it down.

Flower's deployment engine runs the server and every client as separate processes, which is what
makes a federated experiment real (the simulation engine would need Ray). Each process gets its own
session (process group), so stopping one also stops the SuperExec/ServerApp/ClientApp children it
spawned; teardown happens in `__exit__`, hence also on errors and KeyboardInterrupt. Ports are
picked free at start, FLWR_HOME is private to the run (no shared ~/.flwr state), and every process
logs into the output folder.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Mapping, Sequence

from privaudit.defenses.federated.submit import (
    FlowerProcessError, executable, flower_env, submit_run, tail, wait_for, write_connection,
)

LOOPBACK = "127.0.0.1"
CONNECTION = "local-deployment"
__all__ = ["FlowerDeployment", "FlowerProcessError", "free_port", "group_alive"]


def free_port() -> int:
    """An unused TCP port on loopback (the OS picks it; tiny race window, checked again on start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((LOOPBACK, port)) == 0


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen
    log_path: Path
    log: IO[bytes]


@dataclass
class FlowerDeployment:
    """A SuperLink and one SuperNode per entry of `node_configs`, alive inside a `with` block."""

    log_dir: Path
    node_configs: Sequence[Mapping[str, int | str]]
    startup_timeout_s: float = 60.0
    procs: list[_Proc] = field(default_factory=list)
    superlink_port: int = 0

    def __post_init__(self) -> None:
        self.log_dir = Path(self.log_dir)
        self.flwr_home = self.log_dir / "flwr_home"

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> "FlowerDeployment":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def env(self) -> dict[str, str]:
        return flower_env(self.flwr_home)

    @property
    def pids(self) -> list[int]:
        """Process ids (= process-group ids) of every process this deployment started."""
        return [p.popen.pid for p in self.procs]

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.flwr_home.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.log_dir / "pids.txt").unlink(missing_ok=True)
        self.superlink_port = free_port()
        self._spawn("superlink", [executable("flower-superlink"), "--insecure", "--host", LOOPBACK,
                                  "--port", str(self.superlink_port), "--isolation", "subprocess",
                                  "--disable-runtime-dependency-installation"])
        self._wait_for_port("superlink", self.superlink_port)
        ports = []
        for i, node_config in enumerate(self.node_configs):  # started together, then awaited: startup overlaps
            cfg = " ".join(f"{k}={_toml_value(v)}" for k, v in node_config.items())
            ports.append(free_port())
            self._spawn(f"supernode_{i}", [executable("flower-supernode"), "--insecure",
                                           "--superlink", f"{LOOPBACK}:{self.superlink_port}",
                                           "--host", LOOPBACK, "--port", str(ports[-1]),
                                           "--isolation", "subprocess", "--node-config", cfg])
        for i, port in enumerate(ports):
            self._wait_for_port(f"supernode_{i}", port, self.procs[1 + i])
        self._write_connection()

    def stop(self) -> None:
        """SIGTERM every process group we started, then SIGKILL what is left after a grace period."""
        for p in self.procs:
            _signal_group(p.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10.0
        for p in self.procs:
            try:
                p.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in self.procs:
            _signal_group(p.popen.pid, signal.SIGKILL)  # also kills children left in the group
            try:
                p.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            p.log.close()
        # Killed grandchildren (ClientApp processes) may take a moment to die: return only once no
        # process of any group is running (bounded).
        deadline = time.monotonic() + 10.0
        while any(group_alive(p.popen.pid) for p in self.procs) and time.monotonic() < deadline:
            time.sleep(0.05)

    # -- running -----------------------------------------------------------------------------

    def run_app(self, app_dir: Path, timeout_s: float, done_file: Path) -> None:
        """Submit the Flower app in `app_dir` with `flwr run` and wait until `done_file` appears.

        Raises FlowerProcessError when the submission fails, a process dies or the run times out.
        """
        submit_run(app_dir, CONNECTION, self.env, self.log_dir / "flwr_run.log")
        wait_for(done_file, timeout_s, self._failure, what=f"federated run (logs: {self.log_dir})")

    def _failure(self) -> str | None:
        for p in self.procs:
            if p.popen.poll() is not None:
                return (f"{p.name} exited with code {p.popen.returncode} during the run: "
                        f"{tail(p.log_path)} (log: {p.log_path})")
        if self._serverapp_failed():
            return f"the ServerApp failed: {tail(self.procs[0].log_path, 5)} (logs: {self.log_dir})"
        return None

    # -- internals ---------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        log_path = self.log_dir / f"{name}.log"
        log = open(log_path, "wb")
        try:
            popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env, cwd=self.log_dir, start_new_session=True)
        except OSError as exc:
            log.close()
            raise FlowerProcessError(f"could not start {name} ({argv[0]}): {exc}") from None
        self.procs.append(_Proc(name, popen, log_path, log))
        with open(self.log_dir / "pids.txt", "a", encoding="utf-8") as f:  # lets a caller verify teardown
            f.write(f"{popen.pid} {name}\n")

    def _wait_for_port(self, name: str, port: int, proc: _Proc | None = None) -> None:
        proc = proc or self.procs[-1]
        deadline = time.monotonic() + self.startup_timeout_s
        while not _port_open(port):
            if proc.popen.poll() is not None:
                raise FlowerProcessError(f"{name} failed to start (exit {proc.popen.returncode}): "
                                         f"{tail(proc.log_path)} (log: {proc.log_path})")
            if time.monotonic() > deadline:
                raise FlowerProcessError(f"{name} did not listen on {LOOPBACK}:{port} within "
                                         f"{self.startup_timeout_s:.0f} s (log: {proc.log_path})")
            time.sleep(0.2)

    def _serverapp_failed(self) -> bool:
        text = self.procs[0].log_path.read_text(encoding="utf-8", errors="replace") if self.procs else ""
        return "ServerApp failed" in text or "Run finished" in text and "FAILED" in text

    def _write_connection(self) -> None:
        write_connection(self.flwr_home, CONNECTION, f"{LOOPBACK}:{self.superlink_port}", insecure=True)


def _toml_value(v: int | str) -> str:
    return str(v) if isinstance(v, int) else '"' + str(v).replace('"', '\\"') + '"'


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the group of a process we started with start_new_session=True
    except (ProcessLookupError, PermissionError):
        pass


def group_alive(pgid: int) -> bool:
    """Whether any process of the process group `pgid` is still running.

    Zombies do not count: a killed grandchild (a ClientApp process) is reparented to init, and
    reaping it is init's job, which some container inits never do; it holds no resources but a PID
    slot, yet `killpg(pgid, 0)` still succeeds on it. On Linux the group's members and their states
    are read from /proc; elsewhere `killpg` is the (zombie-counting) fallback.
    """
    proc = Path("/proc")
    if proc.is_dir():
        for stat in proc.glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()  # after "(comm)": state ppid pgrp ...
            except (OSError, IndexError):
                continue  # the process exited while we looked
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
