"""The openai: client's exchange rules and its asyncio transport (issue 18).

`classify` (privaudit/targets/openai_http.py) decides every attempt's fate with no I/O, so it gets a
property test over arbitrary statuses, headers and bodies; the transport is driven against the real
load-test server on 127.0.0.1 (privaudit/loadtest.py), nothing mocked.
"""

from __future__ import annotations

import json
import threading
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from privaudit.errors import TargetError
from privaudit.loadtest import LoadConfig, LoadServer, synthetic_completion
from privaudit.targets.base import GenerationConfig, load_target
from privaudit.targets.openai_api import EndpointOptions
from privaudit.targets.openai_http import (
    CONNECTION, OVERLOAD_STATUSES, RETRY_STATUSES, THROTTLE_STATUSES, TIMEOUT, Attempt, EndpointHTTPError,
    Exchange, classify, parse_retry_after,
)

SECRET = "sk-classify-SECRET-91c2"
SHOWN = "http://127.0.0.1:9/v1/completions"


def redact(text: str) -> str:
    return " ".join(text.replace(SECRET, "***").split())


def judge(attempt: Attempt):
    return classify(attempt, method="POST", shown=SHOWN, attempts=2, where="openai endpoint x", timeout=1.5,
                    redact=redact, api_key_env="KEY")


bodies = st.one_of(
    st.binary(max_size=64),
    st.just(b"[" * 100_000),  # nesting deep enough to overflow the JSON parser's recursion
    st.builds(lambda v: json.dumps(v).encode(), st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
        max_leaves=8)),
    st.builds(lambda m: json.dumps({"error": {"message": m}}).encode(),
              st.text(max_size=40).map(lambda t: f"{t} {SECRET}\n{t}")),
)
headers = st.one_of(st.none(), st.sampled_from(["0", "2", "1.5", "-3", "nan", "soon"]),
                    st.text(max_size=12))


@settings(max_examples=300, deadline=None)
@given(status=st.integers(100, 599), retry_after=headers, body=bodies)
def test_every_answer_is_judged_once_with_the_right_signal_and_a_one_line_message(status, retry_after, body):
    v = judge(Attempt(status=status, retry_after=retry_after, body=body))
    if 200 <= status < 300:
        assert v.signal == "success"
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, dict):
            assert v.data == parsed and v.fatal is None
        else:
            assert v.data is None and isinstance(v.fatal, TargetError)
            assert SHOWN in str(v.fatal)
    else:
        expected = ("throttle" if status in THROTTLE_STATUSES else
                    "failure" if status in OVERLOAD_STATUSES else "other")
        assert v.signal == expected and v.data is None
        if status in RETRY_STATUSES:
            assert v.fatal is None and v.problem.startswith(f"HTTP {status}")
            assert v.retry_after == parse_retry_after(retry_after)
        else:
            assert isinstance(v.fatal, EndpointHTTPError) and v.fatal.status == status
            assert f"POST {SHOWN} returned HTTP {status}" in str(v.fatal)
    for text in (v.problem, str(v.fatal or "")):
        assert "\n" not in text and SECRET not in text


@given(kind=st.sampled_from([TIMEOUT, CONNECTION]), detail=st.text(max_size=40))
def test_no_answer_is_retried_a_timeout_as_load_a_dropped_connection_as_a_fault(kind, detail):
    v = judge(Attempt(error=kind, detail=f"{detail} {SECRET}"))
    assert v.fatal is None and v.data is None
    assert v.signal == ("failure" if kind == TIMEOUT else "other")
    assert v.problem.startswith("timed out after 1.5 s" if kind == TIMEOUT else "connection failed (")
    assert "\n" not in v.problem and SECRET not in v.problem


def test_exchange_gives_up_after_the_retry_budget_and_reports_each_attempt_to_the_window():
    ex = Exchange("http://127.0.0.1:9/v1", EndpointOptions(max_retries=2, concurrency=4), SECRET)
    busy = Attempt(status=503, body=b'{"error": {"message": "busy"}}')
    assert ex.limiter.try_acquire()
    assert ex.judge(Attempt(status=429, retry_after="0.25"), "POST", SHOWN, 1, 0.1, None) >= 0.25
    assert not ex.limiter.try_acquire() and ex.limiter.pause_left() > 0  # Retry-After pauses every request
    time.sleep(0.3)
    assert ex.limiter.try_acquire()
    assert 0 < ex.judge(busy, "POST", SHOWN, 2, 0.1, None) <= ex.options.max_backoff
    assert ex.limiter.try_acquire()
    try:
        ex.judge(busy, "POST", SHOWN, 3, 0.1, None)
    except TargetError as exc:
        assert str(exc) == f"openai endpoint http://127.0.0.1:9/v1: gave up on POST {SHOWN} after 3 attempts: HTTP 503: busy"
    else:
        raise AssertionError("the third 503 with max_retries=2 must give up")
    assert ex.limiter.stats.throttled == 3 and ex.limiter.free_slots() >= 1  # every slot came back
    assert "Bearer " + SECRET == ex.headers()["Authorization"]


def test_one_event_loop_keeps_hundreds_in_flight_without_a_thread_each():
    with LoadServer(LoadConfig(latency=0.3, cap=400)) as srv:
        before = threading.active_count()
        target = load_target(srv.spec("concurrency=200;score=false;adaptive=false"))
        try:
            prompts = [f"many {i}" for i in range(600)]
            out = target.generate(prompts, GenerationConfig(max_new_tokens=8))
            threads = threading.active_count() - before
        finally:
            target.close()
        assert out == [[synthetic_completion(f"{p}\x1f0", LoadConfig().words)] for p in prompts]
        assert srv.stats.max_in_flight >= 150  # the window's worth reached the server at once
        assert threads <= 1  # the transport's loop thread, not 200 pool threads
        assert not target._http._state.thread.is_alive()  # closed: the loop thread is gone


def test_a_request_that_gives_up_cancels_the_others_and_every_slot_comes_back():
    config = LoadConfig(latency=0.1, error_rate=0.3, seed=5)
    with LoadServer(config) as srv:
        target = load_target(srv.spec("concurrency=16;score=false;max_retries=0;adaptive=false"))
        try:
            try:
                target.generate([f"doomed {i}" for i in range(200)], GenerationConfig(max_new_tokens=4))
            except TargetError as exc:
                assert "gave up on POST" in str(exc) and "after 1 attempt: HTTP 50" in str(exc)
            else:
                raise AssertionError("a 30% error rate with no retries must give up")
            limiter = target._http.limiter
            assert limiter.free_slots() == 16  # the cancelled in-flight requests freed their slots
            assert srv.stats.requests < 200  # the rest were never sent
            srv.handler.config = LoadConfig(latency=0.01)  # the server recovers: the same target works
            assert len(target.generate(["again"], GenerationConfig(max_new_tokens=4))) == 1
        finally:
            target.close()
