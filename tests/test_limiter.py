"""The adaptive concurrency window of the openai: client (issue 18): AIMD on a controllable clock."""

from __future__ import annotations

import pytest

from privaudit.targets.openai_limiter import AdaptiveLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fill(lim: AdaptiveLimiter) -> int:
    """Acquire every free slot without blocking; returns how many."""
    n = 0
    while lim._in_flight < lim.window:  # noqa: SLF001 - the test drives the window directly
        assert lim.try_acquire()
        n += 1
    return n


def test_slow_start_doubles_per_round_trip_up_to_the_cap():
    lim = AdaptiveLimiter(cap=64, initial=4, clock=Clock())
    sizes = []
    for _ in range(6):
        n = fill(lim)
        sizes.append(n)
        for _ in range(n):
            lim.on_success(0.2, kind="gen")
    assert sizes == [4, 8, 16, 32, 64, 64]
    assert lim.stats.max_window == 64


def test_throttle_halves_once_per_round_trip_then_grows_additively():
    clock = Clock()
    lim = AdaptiveLimiter(cap=64, initial=32, clock=clock)
    fill(lim)
    for _ in range(31):
        lim.on_success(0.2, kind="gen")
    assert lim.window == 63
    assert lim.try_acquire()
    lim.on_throttle()
    lim.on_throttle()  # the same overload, within one round trip: one cut
    assert lim.window == 31 and lim.stats.decreases == 1 and lim.stats.throttled == 2
    clock.now += 1.0
    before = lim.window
    for _ in range(before):  # one window of successes: + about one request (additive increase)
        assert lim.try_acquire()
        lim.on_success(0.2, kind="gen")
    assert lim.window == before + 1


def test_window_never_exceeds_the_cap_nor_drops_below_one():
    clock = Clock()
    lim = AdaptiveLimiter(cap=3, clock=clock)
    assert lim.window == 3
    for _ in range(20):
        clock.now += 10
        assert lim.try_acquire()
        lim.on_throttle()
    assert lim.window == 1
    lim2 = AdaptiveLimiter(cap=5, initial=5)
    for _ in range(50):
        assert lim2.try_acquire()
        lim2.on_success(0.01, kind="gen")
    assert lim2.window == 5


def test_not_adaptive_keeps_the_cap_whatever_the_server_says():
    lim = AdaptiveLimiter(cap=8, adaptive=False)
    for _ in range(5):
        assert lim.try_acquire()
        lim.on_throttle()
    assert lim.window == 8 and lim.stats.throttled == 5


def test_retry_after_pauses_every_new_request():
    clock = Clock()
    lim = AdaptiveLimiter(cap=4, clock=clock)
    assert lim.try_acquire()
    lim.on_throttle(retry_after=5.0)
    assert not lim.try_acquire() and lim.free_slots() >= 1  # paused although slots are free
    assert lim.pause_left() == 5.0
    clock.now = 5.1
    assert lim.try_acquire()


def test_every_release_tells_the_waiting_side_how_many_slots_are_free():
    lim = AdaptiveLimiter(cap=2, adaptive=False)
    seen = []
    lim.on_release = lambda: seen.append(lim.free_slots())
    assert lim.try_acquire() and lim.try_acquire() and not lim.try_acquire()
    lim.on_success(0.1, kind="gen")
    lim.on_other()
    assert seen == [1, 2]


def test_rising_latency_of_one_kind_backs_off_and_load_requests_do_not_count():
    clock = Clock()
    lim = AdaptiveLimiter(cap=16, initial=4, latency_factor=3.0, clock=clock)
    assert lim.try_acquire()
    lim.on_success(0.001, kind=None)  # GET /v1/models at load: no latency baseline
    for _ in range(40):
        assert lim.try_acquire()
        lim.on_success(0.2, kind="gen")
    assert lim.stats.latency_decreases == 0
    peak = lim.window
    for _ in range(60):
        clock.now += 1
        assert lim.try_acquire()
        lim.on_success(2.0, kind="gen")  # ten times the best latency: the server is queueing
    assert lim.stats.latency_decreases >= 1 and lim.window < peak


@pytest.mark.parametrize("cap", [0, -1])
def test_a_cap_below_one_is_refused(cap):
    with pytest.raises(ValueError):
        AdaptiveLimiter(cap=cap)
