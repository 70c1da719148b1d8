"""Test helper: a Flower federation started the way a user would on other hosts, but on loopback.

A self-signed CA and a server certificate for 127.0.0.1/localhost (generated with `cryptography`),
one `flower-superlink` with TLS (`--ssl-ca-certfile --ssl-certfile --ssl-keyfile`) and SuperNodes
that verify it (`--root-certificates`), each with its `partition-id` node config: Flower's own
commands and flags, as README "Federated personalization" documents them for several hosts.
privaudit starts none of these; the test owns them and stops them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import signal
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from privaudit.defenses.federated.deployment import LOOPBACK, _port_open, free_port, group_alive
from privaudit.defenses.federated.submit import executable, flower_env


def write_tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server.key): a CA and a server certificate it signed for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "privaudit test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@contextmanager
def tls_federation(folder: Path, clients: int = 2) -> Iterator["TLSFederation"]:
    """A started TLSFederation, stopped (every process group) on leaving, errors included."""
    federation = TLSFederation(folder, clients)
    try:
        federation.start()
        yield federation
    finally:
        federation.stop()


@dataclass
class TLSFederation:
    """A TLS SuperLink and `clients` SuperNodes on loopback (use `tls_federation`)."""

    folder: Path
    clients: int = 2
    procs: list[subprocess.Popen] = field(default_factory=list)
    port: int = 0

    def start(self) -> None:
        """Flower's own commands, as README documents them for separate hosts."""
        self.ca, server_cert, server_key = write_tls_files(self.folder / "tls")
        env = flower_env(self.folder / "flwr_home")
        self.port = free_port()
        self._spawn("superlink", [executable("flower-superlink"), "--ssl-ca-certfile", str(self.ca),
                                  "--ssl-certfile", str(server_cert), "--ssl-keyfile", str(server_key),
                                  "--host", LOOPBACK, "--port", str(self.port),
                                  "--disable-runtime-dependency-installation"], env)
        self._await(self.port)
        ports = [free_port() for _ in range(self.clients)]
        for k, port in enumerate(ports):
            self._spawn(f"supernode_{k}", [executable("flower-supernode"), "--root-certificates", str(self.ca),
                                           "--superlink", f"{LOOPBACK}:{self.port}", "--host", LOOPBACK,
                                           "--port", str(port), "--node-config", f"partition-id={k}"], env)
        for port in ports:
            self._await(port)

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for p in self.procs:
                try:
                    os.killpg(p.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            deadline = time.monotonic() + 10
            while any(group_alive(pid) for pid in self.pids) and time.monotonic() < deadline:
                time.sleep(0.1)
        for p in self.procs:
            p.wait(timeout=5)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        with open(self.folder / f"{name}.log", "wb") as log:
            self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                               env=env, cwd=self.folder, start_new_session=True))

    def _await(self, port: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not _port_open(port):
            dead = [p for p in self.procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"a Flower process exited: {dead[0].args[0]} (logs in {self.folder})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {LOOPBACK}:{port} after {timeout_s} s")
            time.sleep(0.2)
