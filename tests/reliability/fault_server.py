"""A real HTTP server on 127.0.0.1 that misbehaves on cue, in front of a real OpenAI-compatible app.

Each request to a faulty path consumes the next fault of a script (then `default` applies):
`slow` (answers after a delay), `drop` (closes the connection without answering), `status`
(e.g. 429 with Retry-After, 500), `malformed` (200 with invalid JSON), `truncated` (announces a
longer body than it sends, then closes) and `ok` (delegates to `privaudit.serve.OpenAIApp`). It
counts hits per path, records the Authorization headers it saw and the maximum number of
requests in flight at once, so tests can check retry bounds and concurrency limits.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterable

from privaudit.serve import OpenAIApp


@dataclass(frozen=True)
class Fault:
    kind: str  # ok | slow | drop | status | malformed | truncated
    seconds: float = 0.0
    status: int = 0
    retry_after: str | None = None
    echo_auth: bool = False  # a hostile server that repeats the Authorization header in its error


OK = Fault("ok")
DROP = Fault("drop")
MALFORMED = Fault("malformed")
TRUNCATED = Fault("truncated")


def slow(seconds: float) -> Fault:
    return Fault("slow", seconds=seconds)


def status(code: int, retry_after: str | None = None) -> Fault:
    return Fault("status", status=code, retry_after=retry_after)


class FaultServer:
    """Start with `with FaultServer(app, [status(429, "1"), OK]) as srv:`; `srv.base_url` for clients."""

    FAULTY_PATHS = ("/v1/completions", "/v1/chat/completions")

    def __init__(self, app: OpenAIApp, script: Iterable[Fault] = (), default: Fault = OK,
                 faulty_paths: Iterable[str] = FAULTY_PATHS) -> None:
        self.app = app
        self._script = list(script)
        self.default = default
        self.faulty_paths = tuple(faulty_paths)
        self.hits: Counter[str] = Counter()
        self.auth_headers: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._httpd = _FaultHTTPServer(("127.0.0.1", 0), _FaultHandler)
        self._httpd.owner = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def spec(self, options: str = "") -> str:
        return f"openai:{self.base_url}#{self.app.model_name}" + (f";{options}" if options else "")

    def set_script(self, script: Iterable[Fault], default: Fault | None = None) -> None:
        with self._lock:
            self._script = list(script)
            if default is not None:
                self.default = default

    def next_fault(self, path: str) -> Fault:
        with self._lock:
            self.hits[path] += 1
            if path not in self.faulty_paths:
                return OK
            return self._script.pop(0) if self._script else self.default

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def close(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "FaultServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _FaultHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: FaultServer

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that timed out and left are part of the script, not errors


class _FaultHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def _serve(self, method: str) -> None:
        owner: FaultServer = self.server.owner  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?", 1)[0]
        owner.auth_headers.append(self.headers.get("Authorization", ""))
        owner.enter()
        try:
            fault = owner.next_fault(path)
            if fault.kind == "slow":
                if owner.stopping.wait(fault.seconds):
                    return
            if fault.kind == "drop":
                self._drop()
                return
            if fault.kind == "status":
                message = f"injected HTTP {fault.status}"
                if fault.echo_auth:
                    message += f" (you sent {self.headers.get('Authorization', '')})"
                payload = json.dumps({"error": {"message": message}}).encode()
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                self._send(fault.status, payload, headers)
                return
            if fault.kind == "malformed":
                self._send(200, b'{"choices": [{"text": "unterminated')
                return
            if fault.kind == "truncated":
                full = json.dumps({"choices": [{"index": 0, "text": "x" * 200}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(full)))
                self.end_headers()
                self.wfile.write(full[: len(full) // 2])
                self.wfile.flush()
                self._drop()
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            response = owner.app.handle(method, self.path, headers, body)
            self._send(response.status, response.body)
        finally:
            owner.leave()

    def _send(self, code: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
