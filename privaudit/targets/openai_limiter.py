"""How many requests to keep in flight against a served model: AIMD on the server's push-back.

Why: a vLLM cluster takes hundreds of concurrent requests (it batches them continuously), a laptop
Ollama takes two; a fixed pool either leaves the cluster idle or floods the small server into 429s
and timeouts. So the `openai:` client adapts the window the way TCP congestion control does
(Jacobson 1988; Chiu & Jain 1989 for why additive-increase/multiplicative-decrease converges to a
fair, efficient share): it starts small, grows by one request per success until the first sign of
overload ("slow start", doubling per round trip), then by about one request per round trip; on a
429/503, a timeout or latency rising past `latency_factor` times the best (a dropped connection is a
fault, not load), it halves the window, at most once per round trip (the hundreds of 429s one overload causes
are one signal, not hundreds). A Retry-After pauses every new request until it has passed, not
only the retry of the request that got it. The window never exceeds `concurrency` (the user's cap)
and never drops below 1.

The window the client settled on, the most it reached and how often it backed off go into the run
manifest (`clients` in manifest.json), so an audit records the load it put on the endpoint.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable

INITIAL_WINDOW = 16  # slow start begins here (or at the cap, if lower)
LATENCY_EWMA = 0.1  # weight of a new latency sample in the smoothed latency


@dataclass
class LimiterStats:
    """What the limiter did over a run (manifest `clients`)."""

    cap: int
    window: float
    max_window: int = 0
    max_in_flight: int = 0
    decreases: int = 0
    throttled: int = 0  # 429/503 answers seen
    failures: int = 0  # timeouts and connection errors seen
    latency_decreases: int = 0
    requests: int = 0
    min_latency_s: float | None = None
    smoothed_latency_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"concurrency_cap": self.cap, "settled_concurrency": int(self.window),
                "max_concurrency": self.max_window, "max_in_flight": self.max_in_flight,
                "decreases": self.decreases, "latency_decreases": self.latency_decreases,
                "throttled": self.throttled, "failures": self.failures, "requests": self.requests,
                "min_latency_s": self.min_latency_s, "smoothed_latency_s": self.smoothed_latency_s}


class AdaptiveLimiter:
    """A counting semaphore whose size follows AIMD; `try_acquire()` before a request, one `on_*` after.

    Thread-safe (a lock around every update), though the transport calls it from its event loop only. `adaptive=False` keeps the window at the
    cap: the fixed pool of before, for servers known to take it.
    """

    def __init__(self, cap: int, adaptive: bool = True, latency_factor: float = 3.0,
                 initial: int = INITIAL_WINDOW, clock: Any = time.monotonic) -> None:
        if cap < 1:
            raise ValueError("cap must be >= 1")
        self.cap = cap
        self.adaptive = adaptive
        self.latency_factor = latency_factor
        self._clock = clock
        start = min(cap, initial) if adaptive else cap
        self.stats = LimiterStats(cap=cap, window=float(start), max_window=start)
        self._slow_start = adaptive
        self._in_flight = 0
        self._pause_until = 0.0
        self._last_decrease = -1e18
        self._latency: dict[Hashable, tuple[float, float, int]] = {}  # kind -> (best, smoothed, count)
        self._lock = threading.Lock()
        # Called (in the releasing thread, after the window's update) at every release: how an
        # asyncio waiter learns a slot is free without polling.
        self.on_release: Callable[[], None] | None = None

    @property
    def window(self) -> int:
        return int(self.stats.window)

    def try_acquire(self) -> bool:
        """Take a slot if one is free and no Retry-After pause is running; never waits.

        The waiting is the caller's: the asyncio transport parks a future and `on_release` wakes it,
        so the AIMD state machine knows nothing of how its callers wait.
        """
        with self._lock:
            return self._take()

    def pause_left(self) -> float:
        """Seconds until a Retry-After pause ends (0 when none is running)."""
        return max(0.0, self._pause_until - self._clock())

    def free_slots(self) -> int:
        """Slots a waiter could take now (ignoring a pause)."""
        return max(0, int(self.stats.window) - self._in_flight)

    def _take(self) -> bool:
        if self._pause_until > self._clock() or self._in_flight >= int(self.stats.window):
            return False
        self._in_flight += 1
        if self._in_flight > self.stats.max_in_flight:
            self.stats.max_in_flight = self._in_flight
        return True

    def on_success(self, latency_s: float, kind: Hashable = None) -> None:
        """A request answered 2xx after `latency_s`: grow the window, or shrink it if latency rose.

        `kind` separates requests of different cost (a 1-token scoring request vs a 32-token
        generation; the transport passes path and max_tokens): latency rises against the best seen
        for the same kind, and kind None (load-time requests) never counts.
        """
        with self._lock:
            self._in_flight -= 1
            self._on_answer(latency_s, kind)
        self._notify()

    def _on_answer(self, latency_s: float, kind: Hashable) -> None:
        s = self.stats
        s.requests += 1
        if kind is not None:
            best, smooth, count = self._latency.get(kind, (latency_s, latency_s, 0))
            best = min(best, latency_s)
            smooth = (1 - LATENCY_EWMA) * smooth + LATENCY_EWMA * latency_s
            s.min_latency_s, s.smoothed_latency_s = best, smooth
            if (self.adaptive and self.latency_factor > 0 and count > 4 * s.window
                    and smooth > self.latency_factor * best):
                if self._decrease():
                    s.latency_decreases += 1
                    smooth = best * self.latency_factor * 0.9  # one signal per rise, not one per request
                self._latency[kind] = (best, smooth, count + 1)
                return
            self._latency[kind] = (best, smooth, count + 1)
        if not self.adaptive:
            return
        grow = 1.0 if self._slow_start else 1.0 / max(1.0, s.window)
        s.window = min(float(self.cap), s.window + grow)
        s.max_window = max(s.max_window, int(s.window))

    def on_throttle(self, retry_after: float | None = None) -> None:
        """The server said 429/503 (optionally with Retry-After): halve the window, pause new requests."""
        with self._lock:
            self._in_flight -= 1
            self.stats.requests += 1
            self.stats.throttled += 1
            if retry_after:
                self._pause_until = max(self._pause_until, self._clock() + retry_after)
            if self.adaptive:
                self._decrease()
        self._notify()

    def on_failure(self) -> None:
        """A timeout or broken connection: overload looks like this too, so back off the same way."""
        with self._lock:
            self._in_flight -= 1
            self.stats.requests += 1
            self.stats.failures += 1
            if self.adaptive:
                self._decrease()
        self._notify()

    def on_other(self) -> None:
        """Any other answer (a 4xx, an unexpected 5xx): the slot is free, the window unchanged."""
        with self._lock:
            self._in_flight -= 1
            self.stats.requests += 1
        self._notify()

    def _notify(self) -> None:
        """After a release and the window's update (outside the lock): let a waiter take the slot."""
        if self.on_release is not None:
            self.on_release()

    def _decrease(self) -> bool:
        """Halve the window unless it was halved less than one round trip ago (one overload, one cut)."""
        now = self._clock()
        rtt = self.stats.smoothed_latency_s or 0.0
        if now - self._last_decrease < rtt:
            return False
        self._last_decrease = now
        self._slow_start = False
        self.stats.window = max(1.0, self.stats.window / 2)
        self.stats.decreases += 1
        return True
