"""An existing Flower federation: submit privaudit's app to a SuperLink that someone else runs.

`privaudit defend federated --superlink HOST:PORT` starts no process: the SuperLink and the
SuperNodes were started by their hosts' owners with Flower's own commands (`flower-superlink`,
`flower-supernode --superlink HOST:PORT --node-config "partition-id=K"`, README "Federated
personalization"). privaudit writes a private Flower config with that one connection (TLS verified
against `root_certificates`, Flower's `root-certificates`; `insecure` only for test setups), submits
with `flwr run`, polls `flwr ls` for a failed or stopped run, keeps the run's log (`flwr log`, into
`logs/serverapp.log`), and on timeout, error or Ctrl-C asks the SuperLink to stop the run
(`flwr stop`) so the federation is not left busy.

What the apps read on the other hosts: the settings file, the partitions and the base model are named
by absolute paths inside the output folder, and the ServerApp writes the global model there; every
host must see the output folder and the base model at the same paths (a shared mount). An auditor
needs that anyway: auditing the personalized models means reading the personal parts back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from privaudit.defenses.federated.submit import (
    FlowerProcessError, flower_env, run_status, save_run_log, stop_run, submit_run, wait_for, write_connection,
)
from privaudit.errors import InputError

CONNECTION = "remote-federation"
SERVERAPP_LOG = "serverapp.log"  # the run's log as the SuperLink has it (`flwr log --show`)
STATUS_POLL_S = 10.0  # each `flwr ls` is a Python process start: poll rarely


@dataclass
class RemoteFederation:
    """A SuperLink at `address` (HOST:PORT) with SuperNodes already connected; usable in a `with` block."""

    address: str
    log_dir: Path
    root_certificates: Path | None = None
    insecure: bool = False
    run_id: int | None = None

    def __post_init__(self) -> None:
        self.log_dir = Path(self.log_dir)
        self.flwr_home = self.log_dir / "flwr_home"
        if self.root_certificates is not None:
            self.root_certificates = Path(self.root_certificates)
            if not self.root_certificates.is_file():
                raise InputError(f"{self.root_certificates}: root_certificates: no such file")

    @property
    def env(self) -> dict[str, str]:
        return flower_env(self.flwr_home)

    @property
    def pids(self) -> list[int]:
        """No process of a remote federation belongs to privaudit."""
        return []

    def __enter__(self) -> "RemoteFederation":
        self.log_dir.mkdir(parents=True, exist_ok=True)
        write_connection(self.flwr_home, CONNECTION, self.address, insecure=self.insecure,
                         root_certificates=self.root_certificates)
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None and self.run_id is not None:  # gave up (error, timeout, Ctrl-C): free the federation
            stop_run(self.run_id, CONNECTION, self.env)

    def run_app(self, app_dir: Path, timeout_s: float, done_file: Path) -> None:
        """Submit with `flwr run`, then wait for `done_file`; a failed or stopped run is an error."""
        try:
            self.run_id = submit_run(app_dir, CONNECTION, self.env, self.log_dir / "flwr_run.log")
        except FlowerProcessError as exc:
            raise FlowerProcessError(f"SuperLink {self.address}: {exc}") from None
        last_check = [time.monotonic()]

        def failure() -> str | None:
            if time.monotonic() - last_check[0] < STATUS_POLL_S:
                return None
            last_check[0] = time.monotonic()
            status, details = run_status(int(self.run_id or 0), CONNECTION, self.env)
            if not status.startswith("finished") or done_file.exists():
                return None
            hint = ("; is the output folder shared with the SuperLink's host at the same path?"
                    if status == "finished:completed" else "")
            return (f"run {self.run_id} on SuperLink {self.address} ended as '{status}' without a result"
                    f"{': ' + details if details else ''}{hint} (see `flwr log {self.run_id}` there)")

        try:
            wait_for(done_file, timeout_s, failure, what=f"run {self.run_id} on SuperLink {self.address}")
        finally:
            save_run_log(self.run_id, CONNECTION, self.env, self.log_dir / SERVERAPP_LOG)
