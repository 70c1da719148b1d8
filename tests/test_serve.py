"""`privaudit serve`: the OpenAI-compatible server for any Target, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from privaudit.cli import main
from privaudit.serve import hf_token_logprobs, serve_target

from reliability.char_target import CharBigramTarget
from reliability.sigint import default_sigint

SECRET = "serve-test-key-93be"


@pytest.fixture()
def char_server():
    target = CharBigramTarget()
    with serve_target(target, model_name="char") as server:
        yield server, target


def post(server, path: str, payload, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{server.base_url}{path}", json=payload, headers=headers, timeout=10)


def test_models_lists_the_served_model_with_its_fingerprint(char_server):
    server, target = char_server
    data = httpx.get(f"{server.base_url}/models").json()
    assert [(m["id"], m["root"]) for m in data["data"]] == [("char", target.fingerprint())]


def test_a_prompt_list_is_one_batched_target_call(char_server):
    server, target = char_server
    prompts = ["Hello", "Bob", "Alice"]
    resp = post(server, "/completions", {"model": "char", "prompt": prompts, "max_tokens": 5, "temperature": 0, "n": 2})
    assert resp.status_code == 200
    choices = resp.json()["choices"]
    assert [c["index"] for c in choices] == list(range(6))
    from privaudit.targets.base import GenerationConfig

    direct = CharBigramTarget().generate(prompts, GenerationConfig(max_new_tokens=5, num_samples=2))
    assert [c["text"] for c in choices] == [t for row in direct for t in row]
    assert target.calls == [("generate", 3)]


def test_echo_logprobs_cover_the_text_and_sum_to_the_score(char_server):
    server, target = char_server
    prompt, cont = "Alice Johnson's email is", " alice"
    resp = post(server, "/completions", {"prompt": prompt + cont, "echo": True, "logprobs": 2, "max_tokens": 0})
    choice = resp.json()["choices"][0]
    lp = choice["logprobs"]
    assert choice["text"] == prompt + cont
    assert "".join(lp["tokens"]) == prompt + cont
    assert lp["text_offset"] == sorted(lp["text_offset"])
    assert all(len(top) == 2 and max(top.values()) >= v for top, v in zip(lp["top_logprobs"], lp["token_logprobs"]))
    tail = sum(v for off, v in zip(lp["text_offset"], lp["token_logprobs"]) if off >= len(prompt))
    assert tail == pytest.approx(target.score([prompt], [cont])[0])


def test_logprobs_without_echo_cover_only_the_completion(char_server):
    server, _ = char_server
    resp = post(server, "/completions", {"prompt": "Hello", "max_tokens": 4, "logprobs": 0, "temperature": 0})
    choice = resp.json()["choices"][0]
    assert "".join(choice["logprobs"]["tokens"]) == choice["text"]
    assert min(choice["logprobs"]["text_offset"]) == len("Hello")


def test_chat_completions_return_n_replies(char_server):
    server, target = char_server
    messages = [{"role": "user", "content": "hi"}]
    resp = post(server, "/chat/completions", {"model": "char", "messages": messages, "n": 2, "max_tokens": 6,
                                              "temperature": 0.8, "seed": 3})
    replies = [c["message"]["content"] for c in resp.json()["choices"]]
    from privaudit.targets.base import GenerationConfig

    cfg = GenerationConfig(max_new_tokens=6, num_samples=2, do_sample=True, temperature=0.8, seed=3)
    assert replies == CharBigramTarget().chat([messages], cfg)[0]


@pytest.mark.parametrize(
    "payload, status, fragment",
    [
        ({"prompt": "x", "max_tokens": 0}, 400, "max_tokens"),
        ({"prompt": 3}, 400, "'prompt'"),
        ({"prompt": "x", "n": 0}, 400, "'n'"),
        ({"prompt": "x", "temperature": "hot"}, 400, "'temperature'"),
        ({"prompt": "x", "top_p": 0}, 400, "'top_p'"),
        ({"prompt": "x", "stop": [1]}, 400, "'stop'"),
        ({"prompt": "x", "model": "gpt-9"}, 404, "gpt-9"),
    ],
)
def test_invalid_requests_get_openai_style_errors(char_server, payload, status, fragment):
    server, _ = char_server
    resp = post(server, "/completions", payload)
    assert resp.status_code == status
    assert fragment in resp.json()["error"]["message"]


def test_malformed_body_and_unknown_routes(char_server):
    server, _ = char_server
    resp = httpx.post(f"{server.base_url}/completions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and "not valid JSON" in resp.json()["error"]["message"]
    assert httpx.get(f"{server.base_url}/embeddings").status_code == 404
    assert httpx.get(f"{server.base_url}/completions").status_code == 405


def test_api_key_is_required_when_configured():
    with serve_target(CharBigramTarget(), api_key=SECRET) as server:
        payload = {"prompt": "x", "max_tokens": 2}
        assert post(server, "/completions", payload).status_code == 401
        assert post(server, "/completions", payload, key="wrong").status_code == 401
        assert httpx.get(f"{server.base_url}/models").status_code == 401
        assert post(server, "/completions", payload, key=SECRET).status_code == 200


def test_a_target_without_token_logprobs_refuses_logprob_requests():
    with serve_target(CharBigramTarget(logprobs=False)) as server:
        resp = post(server, "/completions", {"prompt": "x", "echo": True, "logprobs": 1, "max_tokens": 0})
        assert resp.status_code == 400 and "logprobs are not available" in resp.json()["error"]["message"]
        assert post(server, "/completions", {"prompt": "x", "max_tokens": 2}).status_code == 200


def test_hf_token_logprobs_sum_to_the_hf_score(tiny_model_dir):
    from privaudit.targets.hf import HFTarget

    target = HFTarget(tiny_model_dir)
    texts = ["Alice Johnson's email is alice.johnson@example.com", "Hello!"]
    got = hf_token_logprobs(target.model, target.tokenizer, texts, top_k=3)
    first = got[0]
    assert "".join(first.tokens) == texts[0]
    assert all(v is not None for v in first.token_logprobs)  # BOS gives the first token a context
    cut = len("Alice Johnson's email is")
    tail = sum(v for off, v in zip(first.text_offset, first.token_logprobs) if off >= cut)
    assert tail == pytest.approx(target.score([texts[0][:cut]], [texts[0][cut:]])[0], abs=1e-3)
    # Batch mates do not change a text's log-probs (right padding keeps positions).
    alone = hf_token_logprobs(target.model, target.tokenizer, texts[1:])[0]
    assert alone.token_logprobs == pytest.approx(got[1].token_logprobs, abs=1e-4)
    target.close()


def test_a_served_hf_target_loads_as_an_openai_target_and_scores_like_the_model(tiny_model_dir):
    """Regression: the HF target's own `token_logprobs` (per continuation) must not be mistaken for
    the server's echo hook; the OpenAI target probes scoring at connect time."""
    from privaudit.targets.base import load_target
    from privaudit.targets.hf import HFTarget

    target = HFTarget(tiny_model_dir)
    with serve_target(target, model_name="tiny") as server:
        remote = load_target(server.spec)
        assert "score" in remote.capabilities
        prompt, cont = "Alice Johnson's email is", " alice.johnson@example.com"
        assert remote.score([prompt], [cont])[0] == pytest.approx(target.score([prompt], [cont])[0], abs=1e-3)
    target.close()


def test_a_busy_port_is_a_one_line_error():
    import socket

    from privaudit.errors import TargetError

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(TargetError, match=f"cannot listen on 127.0.0.1:{port}"):
            serve_target(CharBigramTarget(), port=port)


def test_serve_command_rejects_a_bad_spec_with_exit_2():
    result = CliRunner().invoke(main, ["serve", "nosuchscheme:x"])
    assert result.exit_code == 2
    assert "unknown target scheme" in result.output


def test_serve_command_serves_until_interrupted(char_server):
    """`privaudit serve` in a real process, fronting another server (a gateway with its own key)."""
    upstream, _ = char_server
    env = {**os.environ, "PRIVAUDIT_SERVE_KEY": SECRET, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "privaudit.cli", "serve", f"{upstream.spec};score=true", "--port", "0",
         "--model-name", "gateway", "--api-key-env", "PRIVAUDIT_SERVE_KEY"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=Path(__file__).parent,
        preexec_fn=default_sigint,
    )
    try:
        line = proc.stdout.readline()
        assert "serving" in line, line + proc.stderr.read()
        base_url = line.split(" at ")[1].split()[0]
        headers = {"Authorization": f"Bearer {SECRET}"}
        listed = httpx.get(f"{base_url}/models", headers=headers, timeout=10).json()
        assert listed["data"][0]["id"] == "gateway"
        resp = httpx.post(f"{base_url}/completions", headers=headers, timeout=30,
                          json={"model": "gateway", "prompt": ["Hello", "Bob"], "max_tokens": 4, "temperature": 0})
        from privaudit.targets.base import GenerationConfig

        direct = CharBigramTarget().generate(["Hello", "Bob"], GenerationConfig(max_new_tokens=4))
        assert [c["text"] for c in resp.json()["choices"]] == [row[0] for row in direct]
        assert httpx.get(f"{base_url}/models", timeout=10).status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert SECRET not in out + err + line
