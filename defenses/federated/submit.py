"""Submitting the Flower app to a SuperLink with Flower's own CLI (`flwr run`), and watching the run.

Shared by the local deployment (`deployment.FlowerDeployment`, processes privaudit starts on
127.0.0.1) and the remote one (`remote.RemoteFederation`, a SuperLink someone else runs): both write
a private Flower config (`FLWR_HOME/config.toml`, never `~/.flwr`) naming exactly one SuperLink
connection, submit with `flwr run APP CONNECTION --format json`, and wait for the file the ServerApp
writes when it is done, while a caller-given check looks for failures.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from privaudit.errors import EXIT_USAGE, InputError, PrivauditError


class FlowerProcessError(PrivauditError):
    """A Flower process failed to start, a SuperLink could not be reached or a run failed.

    A PrivauditError, so the CLI prints it as one line (with the log file it names) and exits 2,
    like an unreachable target, instead of a traceback.
    """

    exit_code = EXIT_USAGE


def executable(name: str) -> str:
    """The Flower executable of the environment running privaudit first (its apps import this
    privaudit: a PATH entry of another interpreter, e.g. a pyenv shim, may not have it), else PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        raise InputError(f"federated: '{name}' not found on PATH (install flwr >= 1.41)")
    return found


def flower_env(flwr_home: Path) -> dict[str, str]:
    """The environment of every Flower command: a private FLWR_HOME, offline HF, no telemetry."""
    env = dict(os.environ)
    env.update({"FLWR_HOME": str(flwr_home), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
                "FLWR_DISABLE_UPDATE_CHECK": "1", "FLWR_TELEMETRY_ENABLED": "0"})
    # the processes Flower spawns itself (flwr-serverapp, flwr-clientapp) from this environment too
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def write_connection(flwr_home: Path, name: str, address: str, *, insecure: bool,
                     root_certificates: Path | None = None) -> Path:
    """A private Flower config whose only SuperLink connection is `name` (Flower's config.toml keys:
    `address`, `insecure`, `root-certificates`), so `flwr run` submits there and nowhere else."""
    flwr_home.mkdir(parents=True, exist_ok=True, mode=0o700)
    lines = ["[superlink]", f'default = "{name}"', "", f"[superlink.{name}]", f'address = "{address}"',
             f"insecure = {'true' if insecure else 'false'}"]
    if root_certificates is not None:
        lines.append(f"root-certificates = {json.dumps(str(Path(root_certificates).resolve()))}")
    path = flwr_home / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def submit_run(app_dir: Path, connection: str, env: dict[str, str], log_path: Path, timeout_s: float = 120) -> int:
    """`flwr run APP CONNECTION --format json`; returns the run id the SuperLink assigned."""
    with open(log_path, "wb") as log:
        try:
            res = subprocess.run([executable("flwr"), "run", str(app_dir), connection, "--format", "json"],
                                 stdout=subprocess.PIPE, stderr=log, env=env, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise FlowerProcessError(f"flwr run did not return within {timeout_s:.0f} s (log: {log_path})") from None
        log.write(res.stdout)
    out = res.stdout.decode("utf-8", errors="replace")
    payload = _last_json(out)
    if res.returncode != 0 or not payload.get("success"):
        reason = payload.get("error") or tail(log_path)
        raise FlowerProcessError(f"flwr run failed (exit {res.returncode}): {reason} (log: {log_path})")
    return int(payload["run-id"])


def run_status(run_id: int, connection: str, env: dict[str, str]) -> tuple[str, str]:
    """The run's status and its details as `flwr ls` reports them (e.g. ("finished:failed", "ServerApp
    failed with exception: ...")); ("", "") if unknown."""
    try:
        res = subprocess.run([executable("flwr"), "ls", connection, "--run-id", str(run_id), "--format", "json"],
                             capture_output=True, env=env, timeout=60)
    except subprocess.TimeoutExpired:
        return "", ""
    runs = _last_json(res.stdout.decode("utf-8", errors="replace")).get("runs") or []
    if not runs:
        return "", ""
    return str(runs[0].get("status") or ""), " ".join(str(runs[0].get("status-details") or "").split())


def save_run_log(run_id: int, connection: str, env: dict[str, str], path: Path) -> None:
    """`flwr log RUN_ID CONNECTION --show` into `path`: the ServerApp's log, which on a remote
    SuperLink is nowhere else the auditor can read (e.g. Flower's "central DP noise ... added")."""
    try:
        res = subprocess.run([executable("flwr"), "log", str(run_id), connection, "--show"], capture_output=True,
                             env=env, timeout=60)
    except (subprocess.TimeoutExpired, OSError):
        return
    path.write_bytes(res.stdout + res.stderr)


def stop_run(run_id: int, connection: str, env: dict[str, str]) -> None:
    """`flwr stop RUN_ID CONNECTION`: a run privaudit gave up on must not keep the federation busy."""
    try:
        subprocess.run([executable("flwr"), "stop", str(run_id), connection], capture_output=True, env=env,
                       timeout=60)
    except (subprocess.TimeoutExpired, OSError):
        pass


def wait_for(done_file: Path, timeout_s: float, failure: Callable[[], str | None], poll_s: float = 0.5,
             what: str = "federated run") -> None:
    """Block until `done_file` exists; raise FlowerProcessError with `failure()`'s message if it
    returns one, or after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not done_file.exists():
        message = failure()
        if message:
            raise FlowerProcessError(message)
        if time.monotonic() > deadline:
            raise FlowerProcessError(f"{what} did not finish within {timeout_s:.0f} s")
        time.sleep(poll_s)


def _last_json(text: str) -> dict:
    """The JSON object Flower's `--format json` prints (the last `{...}` block of stdout)."""
    start = text.find("{")
    if start < 0:
        return {}
    try:
        value = json.loads(text[start:])
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
