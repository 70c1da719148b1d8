"""HTTP to an OpenAI-compatible server: timeouts, bounded retries with backoff, a concurrency limit.

Why it is built this way: audits send thousands of requests to servers that throttle (429), restart
(5xx, dropped connections) or stall, and an audit that dies on the first hiccup is useless. So every
request has a timeout and bounded retries with exponential backoff plus jitter (honouring a capped
Retry-After); work goes out through a thread pool of `concurrency` threads, and an AIMD window
(`openai_limiter`) decides how many of them may have a request in flight: it grows while the server
keeps up and halves on 429/503, timeouts or rising latency (the server batches concurrent requests;
vLLM does so continuously, so a served model wants hundreds in flight); and when it gives up it
says so in one line (what failed, the URL, how many attempts). The API key lives only in the HTTP
client's headers and is scrubbed from every message this module writes.
"""

from __future__ import annotations

import email.utils
import itertools
import json
import math
import random
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Mapping, Sequence, TypeVar

from privaudit.errors import TargetError
from privaudit.targets.openai_api import EndpointOptions, redact_url
from privaudit.targets.openai_limiter import AdaptiveLimiter

T = TypeVar("T")
R = TypeVar("R")
# Threads (requests in flight) per httpx client at most; see `Transport.__init__`.
CONNECTIONS_PER_CLIENT = 16

# Statuses worth retrying: throttling, timeouts at a proxy, and transient server failures.
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# Statuses that mean "too much load": the adaptive window halves on them (others leave it alone).
THROTTLE_STATUSES = frozenset({429, 503})
OVERLOAD_STATUSES = frozenset({408, 504})  # the server (or a proxy) timed out: like a client timeout


class EndpointHTTPError(TargetError):
    """A non-retryable HTTP status (4xx other than 408/409/425/429) from the endpoint."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Cancelled(Exception):
    """Raised inside a worker when another request of the same batch has already failed."""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent/invalid."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def backoff_delay(
    attempt: int, base: float, cap: float, jitter: float, retry_after: float | None = None,
    max_retry_after: float = 60.0,
) -> float:
    """Delay before retry number `attempt` (1-based): base * 2**(attempt-1), capped, with "equal jitter".

    `jitter` in [0, 1] picks a point in the upper half of the exponential step, so concurrent clients
    do not retry in lockstep. A server's Retry-After wins when longer, capped at `max_retry_after` so a
    hostile or buggy header cannot stall a run for hours.
    """
    step = min(cap, base * (2 ** max(0, attempt - 1)))
    delay = step * (0.5 + 0.5 * min(1.0, max(0.0, jitter)))
    if retry_after is not None:
        delay = max(delay, min(retry_after, max_retry_after))
    return delay


class Transport:
    """JSON requests to one API root (`base_url` ending in /v1), with retries and a bounded pool."""

    def __init__(self, base_url: str, options: EndpointOptions, api_key: str | None = None) -> None:
        import httpx

        self.base_url = base_url
        self.options = options
        self.where = f"openai endpoint {redact_url(base_url)}"
        self._secret = api_key
        headers = {"Accept": "application/json", "User-Agent": "privaudit"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        timeout = options.timeout
        # One httpx client per CONNECTIONS_PER_CLIENT threads: httpcore's pool takes one lock around
        # every request and response close, and with hundreds of threads on one pool that lock was
        # where the client's time went (py-spy, benchmarks/RESULTS.md, issue 18); each pool thread
        # keeps to one client (`_thread_client`), so a lock is shared by at most that many threads.
        shards = max(1, -(-options.concurrency // CONNECTIONS_PER_CLIENT))
        per_client = -(-options.concurrency // shards) + 1  # +1: a caller's own thread may share one
        self._clients = [httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client),
            follow_redirects=False,
        ) for _ in range(shards)]
        self._local = threading.local()
        self._next_client = itertools.count()
        self._pool = ThreadPoolExecutor(max_workers=options.concurrency, thread_name_prefix="privaudit-http")
        self.limiter = AdaptiveLimiter(options.concurrency, adaptive=options.adaptive,
                                       latency_factor=options.latency_factor)
        self._rng = random.Random()
        self._rng_lock = threading.Lock()

    def _thread_client(self) -> Any:
        """This thread's httpx client (assigned round-robin on the thread's first request)."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._clients[next(self._next_client) % len(self._clients)]
        return client

    def redact(self, text: str) -> str:
        """`text` on one line with the API key replaced by ***."""
        if self._secret:
            text = text.replace(self._secret, "***")
        return " ".join(text.split())

    def request(self, method: str, path: str, payload: Mapping[str, Any] | None,
                cancel: threading.Event | None = None) -> dict[str, Any]:
        """One JSON request with timeouts and bounded retries; returns the decoded JSON object."""
        import httpx

        url = self.base_url + path
        shown = redact_url(url)
        attempts = 0
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            attempts += 1
            if not self.limiter.acquire(cancel):
                raise Cancelled()
            started = time.monotonic()
            response, error = None, None
            try:
                response = self._thread_client().request(method, url, json=payload)
            except httpx.TransportError as exc:  # timeouts included
                error = exc
            except BaseException:
                self.limiter.on_other()
                raise
            result = self._outcome(method, path, payload, shown, attempts, started, response, error)
            if isinstance(result, dict):
                return result
            delay = self._retry_delay(method, shown, attempts, *result)
            if cancel is not None:
                if cancel.wait(delay):
                    raise Cancelled()
            else:
                time.sleep(delay)

    def _outcome(self, method: str, path: str, payload: Mapping[str, Any] | None, shown: str, attempts: int,
                 started: float, response: Any, error: BaseException | None) -> dict[str, Any] | tuple[str, float | None]:
        """One attempt, classified (and reported to the adaptive window): the decoded JSON object, or
        (problem, retry_after) when it is worth retrying; raises when it is not."""
        import httpx

        if error is not None:
            if isinstance(error, httpx.TimeoutException):
                self.limiter.on_failure()
                return f"timed out after {self.options.timeout:g} s", None
            self.limiter.on_other()  # a dropped connection is a fault, not a sign of load
            return f"connection failed ({type(error).__name__}: {self.redact(str(error)) or 'no detail'})", None
        status = response.status_code
        if 200 <= status < 300:
            kind = (path, payload.get("max_tokens")) if payload is not None else None
            self.limiter.on_success(time.monotonic() - started, kind)
            return self._decode(response, shown, attempts)
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if status in THROTTLE_STATUSES:
            self.limiter.on_throttle(None if retry_after is None else min(retry_after, self.options.max_retry_after))
        elif status in OVERLOAD_STATUSES:
            self.limiter.on_failure()
        else:
            self.limiter.on_other()
        detail = self._error_detail(response)
        if status not in RETRY_STATUSES:
            hint = ""
            if status in (401, 403):
                hint = (f"; check the key in ${self.options.api_key_env}" if self.options.api_key_env
                        else "; the endpoint wants an API key: pass api_key_env=VAR")
            raise EndpointHTTPError(f"{self.where}: {method} {shown} returned HTTP {status}{detail}{hint}", status)
        return f"HTTP {status}{detail}", retry_after

    def _retry_delay(self, method: str, shown: str, attempts: int, problem: str, retry_after: float | None) -> float:
        """Seconds before the next attempt; the one-line give-up error once the retries are spent."""
        if attempts > self.options.max_retries:
            raise TargetError(
                f"{self.where}: gave up on {method} {shown} after {attempts} attempt"
                f"{'s' if attempts > 1 else ''}: {problem}"
            )
        with self._rng_lock:
            jitter = self._rng.random()
        return backoff_delay(attempts, self.options.backoff, self.options.max_backoff, jitter,
                             retry_after, self.options.max_retry_after)

    def _decode(self, response: Any, shown: str, attempts: int) -> dict[str, Any]:
        try:
            data = json.loads(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            where = f" at char {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
            raise TargetError(
                f"{self.where}: {shown} returned malformed JSON (HTTP {response.status_code}, "
                f"{len(response.content)} bytes, invalid{where}) on attempt {attempts}"
            ) from None
        if not isinstance(data, dict):
            raise TargetError(f"{self.where}: {shown} returned JSON {type(data).__name__}, expected an object")
        return data

    def _error_detail(self, response: Any) -> str:
        """': <server message>' from an OpenAI-style error body, shortened and scrubbed of the key."""
        try:
            body = json.loads(response.content)
            msg = body.get("error", body) if isinstance(body, dict) else body
            if isinstance(msg, dict):
                msg = msg.get("message") or msg.get("detail") or ""
            text = str(msg)
        except (json.JSONDecodeError, UnicodeDecodeError):
            text = ""
        text = self.redact(text)[:200]
        return f": {text}" if text else ""

    def map(self, fn: Callable[[T, threading.Event], R], items: Sequence[T]) -> list[R]:
        """Apply `fn` to items on the pool (at most `concurrency` in flight), in order; fail fast.

        When one item gives up, the others stop retrying (they see `cancel`) and the first real
        error is raised, so a dead server costs one retry budget, not one per prompt.
        """
        if not items:
            return []
        cancel = threading.Event()

        def run(item: T) -> R:
            try:
                return fn(item, cancel)
            except BaseException:
                cancel.set()  # before the pool thread picks up the next item
                raise

        futures: list[Future] = [self._pool.submit(run, item) for item in items]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in futures if f.done() and not f.cancelled() and f.exception() is not None
                      and not isinstance(f.exception(), Cancelled)]
            if failed:
                cancel.set()
                for f in futures:
                    f.cancel()
                wait(futures)
                raise failed[0].exception()  # type: ignore[misc]
            return [f.result() for f in futures]
        except BaseException:
            cancel.set()
            for f in futures:
                f.cancel()
            raise

    def client_stats(self) -> dict[str, Any]:
        """The adaptive window's record (settled and peak concurrency, back-offs) for the manifest."""
        return {"adaptive": self.options.adaptive, **self.limiter.stats.to_dict()}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for client in self._clients:
            client.close()

    def map_requests(self, method: str, path: str, payloads: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """One request per payload on the pool (the asyncio transport's interface; for comparison)."""
        return self.map(lambda p, cancel: self.request(method, path, p, cancel), list(payloads))
