"""Endpoint faults (issue 10, item 2): the openai: target against a real misbehaving server.

Every test starts a real HTTP server on 127.0.0.1 (tests/reliability/fault_server.py) in front of a
real OpenAI-compatible app serving a deterministic character-level model; nothing is mocked.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from privaudit.audit import AuditSpec, run_audit
from privaudit.data.subjects import generate_subjects, write_subjects
from privaudit.engine.store import read_records
from privaudit.errors import EXIT_CANNOT_MEASURE, EXIT_USAGE, CapabilityError, TargetError
from privaudit.serve import OpenAIApp
from privaudit.targets.base import SCORE, GenerationConfig, load_target, require

from reliability.char_target import CharBigramTarget
from reliability.fault_server import DROP, MALFORMED, OK, TRUNCATED, Fault, FaultServer, slow, status

GREEDY = GenerationConfig(max_new_tokens=6)
COMPLETIONS = "/v1/completions"
SECRET = "sk-planted-SECRET-7f3a9c"


@pytest.fixture()
def server():
    with FaultServer(OpenAIApp(CharBigramTarget())) as srv:
        yield srv


def connect(srv: FaultServer, options: str = ""):
    """Load the target (its load-time requests pass unharmed), then reset the server's counters."""
    base = "backoff=0.01;score=false"
    target = load_target(srv.spec(f"{base};{options}" if options else base))
    srv.hits.clear()
    srv.max_in_flight = 0
    return target


def expected(prompts, cfg=GREEDY):
    return CharBigramTarget().generate(prompts, cfg)


def test_429_then_success_honours_retry_after(server):
    target = connect(server)
    server.set_script([status(429, retry_after="1")])
    start = time.monotonic()
    out = target.generate(["Hello"], GREEDY)
    assert time.monotonic() - start >= 0.95  # waited as the server asked, not the 10 ms backoff
    assert out == expected(["Hello"])
    assert server.hits[COMPLETIONS] == 2


def test_500_then_success_is_retried(server):
    target = connect(server)
    server.set_script([status(500), status(502)])
    assert target.generate(["Bob"], GREEDY) == expected(["Bob"])
    assert server.hits[COMPLETIONS] == 3


@pytest.mark.parametrize("fault", [DROP, TRUNCATED], ids=["dropped-connection", "truncated-body"])
def test_broken_connection_then_success_is_retried(server, fault):
    target = connect(server)
    server.set_script([fault])
    assert target.generate(["Alice"], GREEDY) == expected(["Alice"])
    assert server.hits[COMPLETIONS] == 2


def test_slow_server_times_out_retries_then_gives_up_with_one_line_error(server):
    target = connect(server, "timeout=0.2;max_retries=2")
    server.set_script([], default=slow(2.0))
    start = time.monotonic()
    with pytest.raises(TargetError) as info:
        target.generate(["Hello"], GREEDY)
    assert time.monotonic() - start < 1.9  # gave up on its own timeouts, not the server's pace
    message = str(info.value)
    assert "\n" not in message
    assert "timed out after 0.2 s" in message and "after 3 attempts" in message
    assert f"{server.base_url}/completions" in message
    assert info.value.exit_code == EXIT_USAGE
    assert server.hits[COMPLETIONS] == 3


def test_malformed_json_is_a_clear_error_without_retries(server):
    target = connect(server)
    server.set_script([MALFORMED])
    with pytest.raises(TargetError, match="malformed JSON") as info:
        target.generate(["Hello"], GREEDY)
    assert "\n" not in str(info.value)
    assert server.hits[COMPLETIONS] == 1


def test_retries_are_bounded_when_the_server_keeps_failing(server):
    target = connect(server, "max_retries=3;concurrency=1")
    server.set_script([], default=status(503))
    with pytest.raises(TargetError, match=r"gave up .* after 4 attempts: HTTP 503"):
        target.generate([f"prompt {i}" for i in range(5)], GREEDY)
    # One retry budget, not one per prompt: the remaining prompts are cancelled once one gives up.
    assert server.hits[COMPLETIONS] == 4


def test_concurrent_prompts_stop_retrying_once_one_gives_up(server):
    target = connect(server, "max_retries=2;concurrency=4")
    server.set_script([], default=status(500))
    with pytest.raises(TargetError):
        target.generate([f"prompt {i}" for i in range(40)], GREEDY)
    assert server.hits[COMPLETIONS] <= 4 * 3


def test_retry_after_is_capped(server):
    target = connect(server, "max_retry_after=0.2")
    server.set_script([status(429, retry_after="3600")])
    start = time.monotonic()
    assert target.generate(["Hi"], GREEDY) == expected(["Hi"])
    assert time.monotonic() - start < 2.0


def test_client_errors_are_not_retried(server):
    target = connect(server)
    server.set_script([status(400)])
    with pytest.raises(TargetError, match="HTTP 400: injected HTTP 400"):
        target.generate(["Hi"], GREEDY)
    assert server.hits[COMPLETIONS] == 1


def test_concurrency_limit_is_respected(server):
    target = connect(server, "concurrency=3")
    server.set_script([], default=slow(0.15))
    prompts = [f"prompt {i}" for i in range(12)]
    assert target.generate(prompts, GREEDY) == expected(prompts)
    assert server.hits[COMPLETIONS] == 12
    assert 2 <= server.max_in_flight <= 3


def test_api_key_is_sent_as_bearer_and_never_exposed(monkeypatch):
    monkeypatch.setenv("PRIVAUDIT_TEST_KEY", SECRET)
    app = OpenAIApp(CharBigramTarget(), api_key=SECRET)
    with FaultServer(app) as srv:
        target = connect(srv, "api_key_env=PRIVAUDIT_TEST_KEY")
        assert target.generate(["Hello"], GREEDY) == expected(["Hello"])
        assert srv.auth_headers[-1] == f"Bearer {SECRET}"
        # A hostile server that echoes the Authorization header into its error message.
        srv.set_script([], default=Fault("status", status=500, echo_auth=True))
        with pytest.raises(TargetError) as gave_up:
            target.generate(["Hello"], GREEDY)
        monkeypatch.setenv("PRIVAUDIT_TEST_KEY", "sk-wrong")
        with pytest.raises(TargetError, match="HTTP 401") as rejected:
            load_target(srv.spec("api_key_env=PRIVAUDIT_TEST_KEY"))
        exposed = [repr(target), target.name, target.fingerprint(), str(target.capabilities),
                   str(gave_up.value), str(rejected.value), repr(vars(target.options))]
        assert "Bearer ***" in str(gave_up.value)  # the echo arrived and was scrubbed
        for text in exposed:
            assert SECRET not in text
        target.close()


def test_endpoint_without_logprobs_lacks_score_and_exits_3(tmp_path: Path):
    app = OpenAIApp(CharBigramTarget(logprobs=False))
    with FaultServer(app) as srv:
        target = load_target(srv.spec())
        assert SCORE not in target.capabilities
        with pytest.raises(CapabilityError) as info:
            target.score(["Hello"], [" world"])
        assert info.value.exit_code == EXIT_CANNOT_MEASURE
        assert "membership" in str(info.value) and "HTTP 400" in str(info.value)
        with pytest.raises(CapabilityError):
            require(target, SCORE, "membership")
        target.close()
        # Through the audit runner: an attack that needs scores stops before probing anything.
        subjects = tmp_path / "subjects.jsonl"
        write_subjects(subjects, generate_subjects(2, seed=0))
        spec = AuditSpec(targets=[srv.spec()], attacks={"pii": {"subjects": str(subjects), "likelihood": True}},
                         out=tmp_path / "run")
        srv.hits.clear()
        with pytest.raises(CapabilityError) as audit_info:
            run_audit(spec)
        assert audit_info.value.exit_code == EXIT_CANNOT_MEASURE
        assert srv.hits[COMPLETIONS] == 1  # the load-time probe only


def test_audit_interrupted_by_server_failure_resumes_without_recomputing(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PRIVAUDIT_TEST_KEY", SECRET)
    subjects = tmp_path / "subjects.jsonl"
    write_subjects(subjects, generate_subjects(3, seed=0))
    app = OpenAIApp(CharBigramTarget(), api_key=SECRET)
    with FaultServer(app) as srv:
        spec_text = srv.spec("api_key_env=PRIVAUDIT_TEST_KEY;score=false;max_retries=1;backoff=0.01")
        spec = AuditSpec(targets=[spec_text], attacks={"pii": {"subjects": str(subjects), "max_new_tokens": 8}},
                         out=tmp_path / "run", batch_size=4)
        # The server answers 10 requests, then fails for good: the run stops with a clear error.
        srv.set_script([OK] * 10, default=status(500))
        with pytest.raises(TargetError, match="gave up"):
            run_audit(spec)
        first_records = list(read_records(spec.out))
        first = [r["key"] for r in first_records]
        assert first  # the batches finished before the failure were kept
        served_before = srv.hits[COMPLETIONS]

        srv.set_script([], default=OK)  # the server recovers; the same command resumes
        results = run_audit(spec)
        records = list(read_records(spec.out))
        keys = [r["key"] for r in records]
        assert len(keys) == len(set(keys))  # nothing computed twice
        assert keys[: len(first)] == first
        assert len(keys) > len(first)
        assert results[0].metrics  # summarized over every stored record
        # Only the missing probes reached the server (identical prompts are computed once).
        missing_prompts = {r["prompt"] for r in records[len(first):]} - {r["prompt"] for r in first_records}
        assert srv.hits[COMPLETIONS] - served_before == len(missing_prompts)
        direct = CharBigramTarget()
        cfg = GenerationConfig(max_new_tokens=8)
        for rec in records:
            assert rec["outputs"] == direct.generate([rec["prompt"]], cfg)[0]

    for path in spec.out.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"API key written to {path}"
    manifest = json.loads((spec.out / "manifest.json").read_text())
    assert manifest["status"] == "complete"


def test_cli_run_against_an_endpoint_without_logprobs_exits_3_with_one_line(tmp_path: Path):
    from click.testing import CliRunner

    from privaudit.cli import main

    subjects = tmp_path / "subjects.jsonl"
    write_subjects(subjects, generate_subjects(2, seed=0))
    with FaultServer(OpenAIApp(CharBigramTarget(logprobs=False))) as srv:
        audit = tmp_path / "audit.toml"
        audit.write_text(
            f'targets = ["{srv.spec()}"]\nout = "{tmp_path / "run"}"\n'
            f'[attacks.pii]\nsubjects = "{subjects}"\nlikelihood = true\n'
        )
        result = CliRunner().invoke(main, ["--quiet", "run", str(audit)])
    assert result.exit_code == EXIT_CANNOT_MEASURE
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no 'score' capability" in lines[0] and "pii (likelihood = true)" in lines[0]
