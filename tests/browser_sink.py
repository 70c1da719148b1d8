"""For the browser tests: a real HTTP proxy on 127.0.0.1 that records every request reaching it.

Chromium is started with `--proxy-server` pointing here and `--proxy-bypass-list=<-loopback>`, so
any http(s)/ws request a page makes, to the internet or to the loopback, arrives here (https as
a CONNECT) and is answered 404 without being forwarded. An empty log means the page asked for
nothing over the network; `test_sink_sees_a_page_that_loads_an_image` shows that it would notice.

Headless Chromium still phones its own services (component updater, account check) despite
`--disable-component-update` and `--disable-background-networking`; `page_requests` leaves out
exactly those hosts. Anything else, from any page, is counted, so a new background host makes the
test fail rather than pass.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest


# Chromium's own services seen on this machine (Chromium 14x, headless): not requests of the page.
CHROMIUM_SERVICE_HOSTS = ("update.googleapis.com", "accounts.google.com", "clients2.google.com")


def _host(request: str) -> str:
    target = request.split(" ", 1)[1] if " " in request else request
    target = target.split("://", 1)[-1]
    return target.split("/", 1)[0].split(":", 1)[0]


@dataclass
class RequestLog:
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, line: str) -> None:
        with self.lock:
            self.requests.append(line)

    def page_requests(self) -> list[str]:
        """Every recorded request except Chromium's own background calls (CHROMIUM_SERVICE_HOSTS)."""
        with self.lock:
            return [r for r in self.requests if _host(r) not in CHROMIUM_SERVICE_HOSTS]


class _Recorder(BaseHTTPRequestHandler):
    log_to: RequestLog

    def _record(self) -> None:
        self.server.log_to.add(f"{self.command} {self.path}")  # type: ignore[attr-defined]
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_HEAD = do_CONNECT = do_PUT = do_OPTIONS = _record  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def network_sink() -> Iterator[tuple[str, RequestLog]]:
    """`(proxy "127.0.0.1:PORT", log)` for one test."""
    log = RequestLog()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    httpd.log_to = log  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}", log
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
