"""The rules of one HTTP exchange with an OpenAI-compatible server, apart from how bytes move.

Why this is its own module: whether an attempt succeeded, is worth retrying (and after how long),
or is a one-line error the user must read, and what it tells the adaptive window (`openai_limiter`)
about the server's load, must not depend on the HTTP library. So an attempt is described as data
(`Attempt`: the status, the Retry-After header, the body, or the kind of error that stopped it),
`classify` turns it into a `Verdict` with no I/O and no state (property-tested), and `Exchange`
applies a verdict: it tells the limiter, raises the give-up error, or returns the decoded JSON or
the backoff delay. The transport (`openai_transport`) only moves bytes.

Retry policy (issue 10): bounded retries with exponential backoff and "equal jitter", honouring a
server's Retry-After capped at `max_retry_after`; 429/503 and timeouts are signs of load (the window
halves), a dropped connection or an unexpected 5xx is a fault (the window is left alone). The API
key is scrubbed from every message written here.
"""

from __future__ import annotations

import email.utils
import json
import math
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Literal, Mapping

from privaudit.errors import TargetError
from privaudit.targets.openai_api import EndpointOptions, redact_url
from privaudit.targets.openai_limiter import AdaptiveLimiter

# Statuses worth retrying: throttling, timeouts at a proxy, and transient server failures.
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# Statuses that mean "too much load": the adaptive window halves on them (others leave it alone).
THROTTLE_STATUSES = frozenset({429, 503})
OVERLOAD_STATUSES = frozenset({408, 504})  # the server (or a proxy) timed out: like a client timeout

TIMEOUT = "timeout"
CONNECTION = "connection"
Signal = Literal["success", "throttle", "failure", "other"]


class EndpointHTTPError(TargetError):
    """A non-retryable HTTP status (4xx other than 408/409/425/429) from the endpoint."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


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


@dataclass(frozen=True)
class Attempt:
    """What one attempt produced: an answer (`status`, its Retry-After, `body`) or an `error` kind."""

    status: int | None = None
    retry_after: str | None = None
    body: bytes = b""
    error: str | None = None  # TIMEOUT or CONNECTION when no answer came
    detail: str = ""  # the exception's class and text, for a connection error


@dataclass(frozen=True)
class Verdict:
    """How an attempt is judged: `data` (2xx, decoded), `problem` to retry, or a `fatal` error."""

    signal: Signal  # what the adaptive window hears
    data: dict[str, Any] | None = None
    problem: str = ""
    retry_after: float | None = None
    fatal: TargetError | None = None


def classify(attempt: Attempt, *, method: str, shown: str, attempts: int, where: str, timeout: float,
             redact: Callable[[str], str], api_key_env: str | None = None) -> Verdict:
    """Judge one attempt (no I/O, no state): 2xx with a JSON object is data; malformed JSON and other
    4xx are fatal one-line errors naming the URL; timeouts, dropped connections and RETRY_STATUSES
    are problems worth retrying, with the server's Retry-After (seconds, uncapped) when it sent one."""
    if attempt.error is not None or attempt.status is None:
        if attempt.error == TIMEOUT:
            return Verdict("failure", problem=f"timed out after {timeout:g} s")
        # A dropped connection is a fault, not a sign of load.
        return Verdict("other", problem=f"connection failed ({redact(attempt.detail) or 'no detail'})")
    status = attempt.status
    if 200 <= status < 300:
        return _decoded(attempt, shown, attempts, where)
    signal: Signal = ("throttle" if status in THROTTLE_STATUSES else
                      "failure" if status in OVERLOAD_STATUSES else "other")
    detail = error_detail(attempt.body, redact)
    if status not in RETRY_STATUSES:
        hint = ""
        if status in (401, 403):
            hint = (f"; check the key in ${api_key_env}" if api_key_env
                    else "; the endpoint wants an API key: pass api_key_env=VAR")
        return Verdict(signal, fatal=EndpointHTTPError(
            f"{where}: {method} {shown} returned HTTP {status}{detail}{hint}", status))
    return Verdict(signal, problem=f"HTTP {status}{detail}", retry_after=parse_retry_after(attempt.retry_after))


def _decoded(attempt: Attempt, shown: str, attempts: int, where: str) -> Verdict:
    try:
        data = json.loads(attempt.body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: hostile nesting
        at = f" at char {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        return Verdict("success", fatal=TargetError(
            f"{where}: {shown} returned malformed JSON (HTTP {attempt.status}, {len(attempt.body)} bytes, "
            f"invalid{at}) on attempt {attempts}"))
    if not isinstance(data, dict):
        return Verdict("success", fatal=TargetError(
            f"{where}: {shown} returned JSON {type(data).__name__}, expected an object"))
    return Verdict("success", data=data)


def error_detail(body: bytes, redact: Callable[[str], str]) -> str:
    """': <server message>' from an OpenAI-style error body, shortened and scrubbed of the key."""
    try:
        parsed = json.loads(body)
        msg = parsed.get("error", parsed) if isinstance(parsed, dict) else parsed
        if isinstance(msg, dict):
            msg = msg.get("message") or msg.get("detail") or ""
        text = str(msg)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        text = ""
    text = redact(text)[:200]
    return f": {text}" if text else ""


class Exchange:
    """The per-endpoint state both ends of a request share: the AIMD window, the retry budget, the key.

    `judge` is the one place an attempt's outcome is decided and reported to the window.
    """

    def __init__(self, base_url: str, options: EndpointOptions, api_key: str | None = None) -> None:
        self.base_url = base_url
        self.options = options
        self.where = f"openai endpoint {redact_url(base_url)}"
        self._secret = api_key
        self.limiter = AdaptiveLimiter(options.concurrency, adaptive=options.adaptive,
                                       latency_factor=options.latency_factor)
        self._rng = random.Random()

    def headers(self) -> dict[str, str]:
        """Request headers; the API key lives here and in the HTTP session only."""
        headers = {"Accept": "application/json", "User-Agent": "privaudit"}
        if self._secret:
            headers["Authorization"] = f"Bearer {self._secret}"
        return headers

    def redact(self, text: str) -> str:
        """`text` on one line with the API key replaced by ***."""
        if self._secret:
            text = text.replace(self._secret, "***")
        return " ".join(text.split())

    def judge(self, attempt: Attempt, method: str, shown: str, attempts: int, latency_s: float,
              kind: Hashable) -> dict[str, Any] | float:
        """Tell the window what `attempt` says about the server's load; return the decoded JSON, or the
        seconds to wait before the next attempt; raise the one-line error when it is fatal or when the
        retries are spent (naming the URL and the number of attempts)."""
        o = self.options
        verdict = classify(attempt, method=method, shown=shown, attempts=attempts, where=self.where,
                           timeout=o.timeout, redact=self.redact, api_key_env=o.api_key_env)
        lim = self.limiter
        if verdict.signal == "success":
            lim.on_success(latency_s, kind)
        elif verdict.signal == "throttle":
            lim.on_throttle(None if verdict.retry_after is None else min(verdict.retry_after, o.max_retry_after))
        elif verdict.signal == "failure":
            lim.on_failure()
        else:
            lim.on_other()
        if verdict.fatal is not None:
            raise verdict.fatal
        if verdict.data is not None:
            return verdict.data
        if attempts > o.max_retries:
            raise TargetError(f"{self.where}: gave up on {method} {shown} after {attempts} attempt"
                              f"{'s' if attempts > 1 else ''}: {verdict.problem}")
        return backoff_delay(attempts, o.backoff, o.max_backoff, self._rng.random(), verdict.retry_after,
                             o.max_retry_after)

    def client_stats(self) -> dict[str, Any]:
        """The adaptive window's record (settled and peak concurrency, back-offs) for the manifest."""
        return {"adaptive": self.options.adaptive, **self.limiter.stats.to_dict()}


def request_kind(path: str, payload: Mapping[str, Any] | None) -> Hashable:
    """What separates requests of different cost for the latency signal (None: load-time requests)."""
    return (path, payload.get("max_tokens")) if payload is not None else None
