"""HTTP to an OpenAI-compatible server on asyncio + aiohttp: hundreds of requests in flight, cheaply.

Why asyncio: a served model (vLLM batches continuously) wants hundreds of requests in flight, and the
client must cost well under a millisecond of CPU per request, or on a small machine it, not the
server, sets the pace (issue 18: 256 in flight at 200 ms is 1,280 requests/s). A pool of hundreds of
threads spent ~1-1.6 ms a request on GIL hand-offs and connection-pool locks (benchmarks/RESULTS.md);
one event loop with one aiohttp session does not hand off at all.

How: the transport owns one event loop in one background thread and one `aiohttp.ClientSession`
(a keep-alive `TCPConnector` of `concurrency` connections). `map_requests` runs `min(concurrency,
len(payloads))` worker coroutines that pull the next payload from a shared iterator (never one task
per payload: 100k waiting tasks would all wake on every free slot). Before each attempt a worker takes
a slot of the AIMD window (`openai_limiter.AdaptiveLimiter.try_acquire`); waiters sleep on futures
that a release wakes, one per free slot. Every attempt is judged by `openai_http.Exchange.judge`
(retry, backoff, Retry-After, the window's signals, the one-line give-up error). Fail fast: the
first real error cancels the other workers, so a dead server costs one retry budget.
Callers on any thread block on the loop (`asyncio.run_coroutine_threadsafe`).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import weakref
from collections import deque
from typing import Any, Mapping, Sequence

from privaudit.targets.openai_api import EndpointOptions, redact_url
from privaudit.targets.openai_http import CONNECTION, TIMEOUT, Attempt, Exchange, request_kind
from privaudit.targets.openai_limiter import AdaptiveLimiter

JSON_HEADERS = {"Content-Type": "application/json"}


class _Slots:
    """Async waiting for the limiter's window: FIFO futures, woken one per free slot at each release."""

    def __init__(self, limiter: AdaptiveLimiter, loop: asyncio.AbstractEventLoop) -> None:
        self._limiter = limiter
        self._loop = loop
        self._waiters: deque[asyncio.Future[None]] = deque()
        limiter.on_release = self._wake

    async def acquire(self) -> None:
        lim = self._limiter
        while not lim.try_acquire():
            fut: asyncio.Future[None] = self._loop.create_future()
            pause = lim.pause_left()
            timer = self._loop.call_later(pause, _resolve, fut) if pause > 0 else None
            self._waiters.append(fut)
            try:
                await fut
            finally:
                if timer is not None:
                    timer.cancel()
                if not fut.done():
                    fut.cancel()  # cancelled while waiting: `_wake` skips it

    def _wake(self) -> None:
        free = self._limiter.free_slots()
        while free > 0 and self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                free -= 1


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Loop:
    """The event loop thread and the session: what `close` (or garbage collection) shuts down."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="privaudit-http", daemon=True)
        self.thread.start()
        self.session: Any = None

    def call(self, coro: Any) -> Any:
        """Run `coro` on the loop and wait for it; an interrupt here cancels it there."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def shutdown(self) -> None:
        if self.loop.is_closed():
            return
        if self.session is not None and self.thread.is_alive():
            try:
                self.call(self.session.close())
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


class Transport:
    """JSON requests to one API root (`base_url` ending in /v1): retries, the AIMD window, asyncio."""

    def __init__(self, base_url: str, options: EndpointOptions, api_key: str | None = None) -> None:
        self.base_url = base_url
        self.options = options
        self.exchange = Exchange(base_url, options, api_key)
        self.where = self.exchange.where
        self.limiter = self.exchange.limiter
        self._shown: dict[str, str] = {}
        self._state = _Loop()
        self._finalizer = weakref.finalize(self, self._state.shutdown)
        self._state.call(self._open())
        self._slots = _Slots(self.limiter, self._state.loop)

    async def _open(self) -> None:
        import aiohttp

        timeout = self.options.timeout
        connector = aiohttp.TCPConnector(limit=self.options.concurrency, limit_per_host=0, ttl_dns_cache=300)
        self._state.session = aiohttp.ClientSession(
            connector=connector, headers=self.exchange.headers(),
            timeout=aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 10.0)),
        )

    def redact(self, text: str) -> str:
        """`text` on one line with the API key replaced by ***."""
        return self.exchange.redact(text)

    def request(self, method: str, path: str, payload: Mapping[str, Any] | None) -> dict[str, Any]:
        """One JSON request with timeouts and bounded retries; returns the decoded JSON object."""
        return self._state.call(self._request(method, path, payload))

    def map_requests(self, method: str, path: str, payloads: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """One request per payload (at most the window in flight); the decoded answers, in order.

        Fail fast: when one request gives up (or is fatal), the others are cancelled and that first
        error is raised, so a dead server costs one retry budget, not one per payload.
        """
        if not payloads:
            return []
        return self._state.call(self._map(method, path, payloads))

    async def _map(self, method: str, path: str, payloads: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        results: list[Any] = [None] * len(payloads)
        indices = iter(range(len(payloads)))

        async def worker() -> None:
            for i in indices:  # shared: each worker takes the next payload when it is free
                results[i] = await self._request(method, path, payloads[i])

        workers = [asyncio.ensure_future(worker()) for _ in range(min(self.options.concurrency, len(payloads)))]
        try:
            done, pending = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
        except BaseException:
            await _cancel(workers)
            raise
        if pending:
            await _cancel(list(pending))
        for task in workers:
            if task in done and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return results

    async def _request(self, method: str, path: str, payload: Mapping[str, Any] | None) -> dict[str, Any]:
        import aiohttp

        url = self.base_url + path
        shown = self._shown.get(url) or self._shown.setdefault(url, redact_url(url))  # 3% of the CPU if per request
        body = None if payload is None else json.dumps(payload).encode()
        headers = JSON_HEADERS if body is not None else None
        kind = request_kind(path, payload)
        session = self._state.session
        attempts = 0
        while True:
            attempts += 1
            await self._slots.acquire()
            started = time.monotonic()
            try:
                async with session.request(method, url, data=body, headers=headers,
                                           allow_redirects=False) as response:
                    attempt = Attempt(status=response.status, retry_after=response.headers.get("Retry-After"),
                                      body=await response.read())
            except asyncio.TimeoutError:
                attempt = Attempt(error=TIMEOUT)
            except aiohttp.ClientError as exc:
                attempt = Attempt(error=CONNECTION, detail=f"{type(exc).__name__}: {exc}")
            except BaseException:
                self.limiter.on_other()  # cancelled (fail fast, interrupt): free the slot
                raise
            outcome = self.exchange.judge(attempt, method, shown, attempts, time.monotonic() - started, kind)
            if isinstance(outcome, dict):
                return outcome
            await asyncio.sleep(outcome)

    def client_stats(self) -> dict[str, Any]:
        """The adaptive window's record (settled and peak concurrency, back-offs) for the manifest."""
        return self.exchange.client_stats()

    def close(self) -> None:
        self._finalizer()


async def _cancel(tasks: list[asyncio.Future[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
