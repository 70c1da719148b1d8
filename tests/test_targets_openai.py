"""The openai: target against a real OpenAI-compatible server on 127.0.0.1 serving the tiny HF model.

`privaudit.serve.serve_target` exposes the session's tiny Llama (tests/conftest.py) over HTTP, as
vLLM would; everything the HTTP target returns is checked against the same model called directly.
Option parsing and the pure retry/scoring helpers get property tests.
"""

from __future__ import annotations

import math
import socket
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privaudit.errors import EXIT_CANNOT_MEASURE, EXIT_USAGE, CapabilityError, InputError, TargetError
from privaudit.serve import OpenAIApp, serve_target
from privaudit.targets.base import CHAT, GENERATE, SCORE, GenerationConfig, load_target
from privaudit.targets.openai_compat import (
    EndpointOptions,
    backoff_delay,
    continuation_logprob,
    normalize_base_url,
    parse_retry_after,
)

from reliability.char_target import CharBigramTarget
from reliability.fault_server import FaultServer

PROMPTS = ["Alice Johnson's email is", "Bob Smith lives at", "Hello! How are", "Please send the invoice to"]
CONTINUATIONS = [" alice.johnson@example.com", " 42 Elm Street, Springfield", " you today?", " billing"]


@pytest.fixture(scope="module")
def hf_target(tiny_model_dir):
    from privaudit.targets.hf import HFTarget

    target = HFTarget(tiny_model_dir, batch_size=8)
    yield target
    target.close()


@pytest.fixture(scope="module")
def served(hf_target):
    with serve_target(hf_target, model_name="tiny") as server:
        client = load_target(server.spec)
        yield server, client
        client.close()


def test_loads_with_capabilities_and_a_secret_free_name(served):
    server, client = served
    assert client.name == f"openai:{server.base_url}#tiny"
    assert client.capabilities == frozenset({GENERATE, SCORE, CHAT})  # score: the load-time probe passed


def test_greedy_generation_matches_the_direct_target(served, hf_target):
    _, client = served
    cfg = GenerationConfig(max_new_tokens=10, num_samples=2)
    assert client.generate(PROMPTS, cfg) == hf_target.generate(PROMPTS, cfg)


def test_seeded_sampling_matches_the_direct_target(served, hf_target):
    _, client = served
    cfg = GenerationConfig(max_new_tokens=8, num_samples=3, do_sample=True, temperature=0.9, seed=7)
    got = client.generate(PROMPTS[:2], cfg)
    assert [len(row) for row in got] == [3, 3]
    assert got == hf_target.generate(PROMPTS[:2], cfg)


def test_scores_from_echo_logprobs_match_the_direct_score(served, hf_target):
    _, client = served
    prompts = PROMPTS + ["Hello! "]  # a trailing space moves into the continuation's first token
    conts = CONTINUATIONS + ["How"]
    got = client.score(prompts, conts)
    want = hf_target.score(prompts, conts)
    assert got == pytest.approx(want, abs=1e-3)
    assert all(v < 0 for v in got)


def test_chat_matches_the_direct_target(served, hf_target):
    _, client = served
    convs = [[{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "What is Bob's phone?"}]]
    cfg = GenerationConfig(max_new_tokens=8)
    assert client.chat(convs, cfg) == hf_target.chat(convs, cfg)


def test_prompt_lists_per_request_give_the_same_outputs(served, hf_target):
    server, _ = served
    batched = load_target(f"{server.spec};batch=3")
    cfg = GenerationConfig(max_new_tokens=6)
    assert batched.generate(PROMPTS, cfg) == hf_target.generate(PROMPTS, cfg)
    assert batched.score(PROMPTS, CONTINUATIONS) == pytest.approx(hf_target.score(PROMPTS, CONTINUATIONS), abs=1e-3)
    batched.close()


def test_batch_option_sends_fewer_requests():
    with FaultServer(OpenAIApp(CharBigramTarget())) as srv:
        target = load_target(srv.spec("batch=4;score=false"))
        srv.hits.clear()
        prompts = [f"p{i}" for i in range(10)]
        cfg = GenerationConfig(max_new_tokens=3)
        assert target.generate(prompts, cfg) == CharBigramTarget().generate(prompts, cfg)
        assert srv.hits["/v1/completions"] == 3
        target.close()


def test_fingerprint_is_stable_and_tracks_the_served_model(served, hf_target):
    server, client = served
    again = load_target(server.spec)
    assert again.fingerprint() == client.fingerprint()
    again.close()
    with serve_target(CharBigramTarget(), model_name="tiny") as other:  # same model name, other weights
        other_client = load_target(other.spec)
        assert other_client.fingerprint() != client.fingerprint()
        other_client.close()


def test_unreachable_endpoint_fails_at_load_with_one_line_exit_2():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(TargetError) as info:
        load_target(f"openai:http://127.0.0.1:{port}/v1#m;max_retries=1;backoff=0.01")
    message = str(info.value)
    assert info.value.exit_code == EXIT_USAGE
    assert "\n" not in message
    assert f"http://127.0.0.1:{port}/v1/models" in message and "after 2 attempts" in message


def test_a_model_the_server_does_not_serve_fails_at_load(served):
    server, _ = served
    with pytest.raises(TargetError, match=r"model 'gpt-9' is not served \(it serves: tiny\)"):
        load_target(f"openai:{server.base_url}#gpt-9")


def test_score_false_disables_scoring_with_exit_3(served):
    server, _ = served
    client = load_target(f"{server.spec};score=false")
    assert SCORE not in client.capabilities
    with pytest.raises(CapabilityError, match="membership inference") as info:
        client.score(["a"], ["b"])
    assert info.value.exit_code == EXIT_CANNOT_MEASURE
    client.close()


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("openai:http://127.0.0.1:1/v1", "needs a model"),
        ("openai:http://127.0.0.1:1/v1#m;timeout=abc", "option 'timeout'"),
        ("openai:http://127.0.0.1:1/v1#m;timeout=0", "option 'timeout'"),
        ("openai:http://127.0.0.1:1/v1#m;concurrency=0", "option 'concurrency'"),
        ("openai:http://127.0.0.1:1/v1#m;chat=maybe", "option 'chat'"),
        ("openai:http://127.0.0.1:1/v1#m;colour=red", "unknown option 'colour'"),
        ("openai:ftp://127.0.0.1:1#m", "base URL"),
        ("openai:http://127.0.0.1:1/v1#m;api_key_env=PRIVAUDIT_UNSET_VAR_X", "PRIVAUDIT_UNSET_VAR_X"),
    ],
)
def test_bad_specs_are_input_errors_naming_the_option(spec, fragment, monkeypatch):
    monkeypatch.delenv("PRIVAUDIT_UNSET_VAR_X", raising=False)
    with pytest.raises(InputError, match=fragment) as info:
        load_target(spec)
    assert info.value.exit_code == EXIT_USAGE


def test_credentials_in_the_url_are_refused_without_echoing_them():
    with pytest.raises(InputError, match="must not embed credentials") as info:
        load_target("openai:http://user:hunter2@127.0.0.1:1/v1#m")
    assert "hunter2" not in str(info.value)


def test_base_url_gets_exactly_one_v1():
    for url in ("http://h:8000", "http://h:8000/", "http://h:8000/v1", "http://h:8000/v1/"):
        assert normalize_base_url(url, "t") == "http://h:8000/v1"
    assert normalize_base_url("https://gw.example/openai", "t") == "https://gw.example/openai/v1"


def test_options_parse_with_defaults():
    opts = EndpointOptions.from_options({"timeout": "2.5", "max_retries": "0", "score": "false", "chat": "auto"}, "t")
    assert (opts.timeout, opts.max_retries, opts.score, opts.chat, opts.concurrency) == (2.5, 0, False, None, 4)


@settings(max_examples=100, deadline=None)
@given(
    attempt=st.integers(1, 60),
    base=st.floats(0, 10),
    cap=st.floats(0, 100),
    jitter=st.floats(0, 1),
    retry_after=st.none() | st.floats(0, 1e6),
    max_retry_after=st.floats(0, 120),
)
def test_backoff_delay_is_bounded(attempt, base, cap, jitter, retry_after, max_retry_after):
    delay = backoff_delay(attempt, base, cap, jitter, retry_after, max_retry_after)
    assert 0 <= delay <= max(cap, max_retry_after)
    assert delay >= min(cap, base * 2 ** (attempt - 1)) * 0.5 - 1e-9
    if retry_after is not None:
        assert delay >= min(retry_after, max_retry_after)


@given(st.integers(0, 10**6))
def test_retry_after_seconds_and_http_dates(seconds):
    assert parse_retry_after(str(seconds)) == seconds
    from email.utils import formatdate

    now = 1_700_000_000.0
    assert parse_retry_after(formatdate(now + seconds, usegmt=True), now=now) == pytest.approx(seconds)


@given(st.text(max_size=20))
def test_retry_after_garbage_is_ignored_or_non_negative(text):
    value = parse_retry_after(text)
    assert value is None or (value >= 0 and math.isfinite(value))


@given(st.text(string.ascii_letters + " .@", min_size=1, max_size=30), st.data())
def test_continuation_logprob_sums_exactly_the_continuation_tokens(text, data):
    """With characters as tokens, the continuation's score is the sum over its characters."""
    split = data.draw(st.integers(1, len(text)))
    values = data.draw(st.lists(st.floats(-20, 0), min_size=len(text), max_size=len(text)))
    generated = {"tokens": list(text) + ["!"], "token_logprobs": values + [-1.0],
                 "text_offset": list(range(len(text) + 1))}  # + the token generated after the echo
    got = continuation_logprob(generated, split, len(text))
    assert got == pytest.approx(sum(values[split:]))


def test_continuation_logprob_counts_a_token_straddling_the_boundary():
    logprobs = {"tokens": ["Hel", "lo w", "orld"], "token_logprobs": [None, -2.0, -3.0], "text_offset": [0, 3, 7]}
    assert continuation_logprob(logprobs, len("Hello"), len("Hello world")) == -5.0
    with pytest.raises(ValueError, match="first token"):
        continuation_logprob(logprobs, 0, len("Hello world"))
