"""Hundreds of requests in flight from one thread: the `openai:` target's asyncio path.

Why: a served model (vLLM over many GPUs) takes hundreds of concurrent requests, and a pool of
hundreds of threads spends more CPU handing the GIL around than on the requests
(benchmarks/RESULTS.md, issue 18: 0.9 ms of client CPU per request at 32 threads, 5-8 ms at 128-512).
Here one event loop, on one background thread, runs up to `concurrency` tasks over one
`httpx.AsyncClient`; each attempt takes a slot of the same AIMD window (`openai_limiter`) the
thread path uses, and is classified, retried and given up on by the same `Transport` methods, so
both paths answer every fault the same way. The first request that gives up stops the others
(they are cancelled), as `Transport.map` does.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Mapping, Sequence

from privaudit.targets.openai_api import redact_url
from privaudit.targets.openai_transport import Cancelled, Transport

Call = tuple[str, str, Mapping[str, Any]]  # (method, path, JSON payload)


class AsyncRequests:
    """`run(calls)` -> decoded JSON per call, in order; the loop thread starts on first use."""

    def __init__(self, transport: Transport) -> None:
        self.t = transport
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._freed: asyncio.Event | None = None
        self._lock = threading.Lock()

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, daemon=True, name="privaudit-http-async")
                thread.start()
                self._loop, self._thread = loop, thread
                asyncio.run_coroutine_threadsafe(self._open(), loop).result()
            return self._loop

    async def _open(self) -> None:
        import httpx

        t = self.t
        self._freed = asyncio.Event()
        self._client = httpx.AsyncClient(
            headers=dict(t._client.headers), timeout=t._client.timeout,  # noqa: SLF001 - same settings
            limits=httpx.Limits(max_connections=t.options.concurrency,
                                max_keepalive_connections=t.options.concurrency),
            follow_redirects=False,
        )

    def run(self, calls: Sequence[Call]) -> list[dict[str, Any]]:
        if not calls:
            return []
        loop = self._start()
        future = asyncio.run_coroutine_threadsafe(self._all(list(calls)), loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    async def _all(self, calls: list[Call]) -> list[dict[str, Any]]:
        results: list[Any] = [None] * len(calls)
        pending = iter(enumerate(calls))
        cancel = asyncio.Event()

        async def worker() -> None:
            for i, (method, path, payload) in pending:  # one shared iterator: each task takes the next
                results[i] = await self._request(method, path, payload, cancel)

        tasks = [asyncio.ensure_future(worker()) for _ in range(min(self.t.options.concurrency, len(calls)))]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            cancel.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return results

    async def _acquire(self, cancel: asyncio.Event) -> None:
        assert self._freed is not None
        while not self.t.limiter.try_acquire():
            if cancel.is_set():
                raise Cancelled()
            self._freed.clear()
            try:
                await asyncio.wait_for(self._freed.wait(), 0.05)  # also re-checks a Retry-After pause
            except asyncio.TimeoutError:
                pass

    async def _request(self, method: str, path: str, payload: Mapping[str, Any], cancel: asyncio.Event) -> dict[str, Any]:
        import httpx

        t = self.t
        url = t.base_url + path
        shown = redact_url(url)
        attempts = 0
        while True:
            if cancel.is_set():
                raise Cancelled()
            attempts += 1
            await self._acquire(cancel)
            started = time.monotonic()
            response, error = None, None
            try:
                response = await self._client.request(method, url, json=payload)
            except httpx.TransportError as exc:  # timeouts included
                error = exc
            except BaseException:
                t.limiter.on_other()
                self._freed.set()  # type: ignore[union-attr]
                raise
            try:
                result = t._outcome(method, path, payload, shown, attempts, started, response, error)  # noqa: SLF001
            finally:
                self._freed.set()  # type: ignore[union-attr]
            if isinstance(result, dict):
                return result
            delay = t._retry_delay(method, shown, attempts, *result)  # noqa: SLF001
            try:
                await asyncio.wait_for(cancel.wait(), delay)
                raise Cancelled()
            except asyncio.TimeoutError:
                pass

    def close(self) -> None:
        if self._loop is None:
            return
        loop = self._loop
        if self._client is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._client.aclose(), loop).result(timeout=5)
            except Exception:  # noqa: BLE001 - closing a client that a dead server left half-open
                pass
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._loop = None
