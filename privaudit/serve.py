"""Serve any privaudit Target over an OpenAI-compatible HTTP API, like vLLM or Ollama would.

Why: the `openai:` target must be tested against a real server, and users want to put a local
checkpoint (or the builtin model) behind the same API their production stack speaks, e.g. to audit
through a gateway. Endpoints: `GET /v1/models`, `POST /v1/completions` (prompt string or list, n,
max_tokens, temperature, top_p, seed, stop, echo, logprobs) and `POST /v1/chat/completions`.

All prompts of one HTTP request go to the target in one batched call; target calls are serialized
with a lock (a model is not assumed thread-safe; concurrency comes from batching, as in vLLM).

Per-token log-probs (`logprobs`, and `echo` with logprobs, which `openai:` scoring relies on) need
more than `Target.score`: a list of tokens with their log-probs and character offsets. They come
through the Target contract: a target with the `token_logprobs` capability answers
`echo_logprobs(texts, top_k)` (local models with the same teacher-forced kernel as their `score`,
privaudit.targets.hf_scoring). Other targets answer logprob requests with HTTP 400, which `openai:`
turns into a missing `score` capability.
"""

from __future__ import annotations

import hmac
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Mapping, Sequence

from privaudit.errors import PrivauditError, TargetError
from privaudit.targets.base import CHAT, TOKEN_LOGPROBS, GenerationConfig, Target, TokenLogprobs
from privaudit.targets.hf_scoring import SCORE_BATCH, hf_token_logprobs  # noqa: F401  (re-exported)

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_PROMPTS = 256
MAX_SAMPLES = 64
MAX_TOP_LOGPROBS = 5


class RequestError(Exception):
    """A client error answered with an OpenAI-style error body."""

    def __init__(self, status: int, message: str, code: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)

    @classmethod
    def json(cls, status: int, payload: Any) -> "Response":
        return cls(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"))


# -- token log-probs --------------------------------------------------------------------------------

def token_logprobs_for(target: Target) -> Callable[[Sequence[str], int], list[TokenLogprobs]] | None:
    """The target's `echo_logprobs` when its capabilities declare per-token log-probs, else None."""
    return target.echo_logprobs if TOKEN_LOGPROBS in target.capabilities else None


# -- request validation -------------------------------------------------------------------------------

def _field(body: Mapping[str, Any], name: str, types: tuple[type, ...], default: Any) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) and bool not in types:
        raise RequestError(400, f"'{name}' must be {' or '.join(t.__name__ for t in types)}")
    if not isinstance(value, types):
        raise RequestError(400, f"'{name}' must be {' or '.join(t.__name__ for t in types)}")
    return value


def _stop(body: Mapping[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,) if stop else ()
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return tuple(s for s in stop if s)
    raise RequestError(400, "'stop' must be a string or a list of strings")


def generation_config(body: Mapping[str, Any], max_tokens_default: int = 16) -> tuple[GenerationConfig | None, int]:
    """Map OpenAI sampling fields to a GenerationConfig (None when max_tokens is 0), and n."""
    n = _field(body, "n", (int,), 1)
    if not 1 <= n <= MAX_SAMPLES:
        raise RequestError(400, f"'n' must be between 1 and {MAX_SAMPLES}")
    max_tokens = _field(body, "max_tokens", (int,), None)
    if max_tokens is None:
        max_tokens = _field(body, "max_completion_tokens", (int,), max_tokens_default)
    if max_tokens < 0:
        raise RequestError(400, "'max_tokens' must be >= 0")
    temperature = float(_field(body, "temperature", (int, float), 1.0))
    top_p = float(_field(body, "top_p", (int, float), 1.0))
    top_k = _field(body, "top_k", (int,), 0)
    seed = _field(body, "seed", (int,), 0)
    if temperature < 0:
        raise RequestError(400, "'temperature' must be >= 0")
    if not 0 < top_p <= 1:
        raise RequestError(400, "'top_p' must be in (0, 1]")
    if max_tokens == 0:
        return None, n
    greedy = temperature == 0
    cfg = GenerationConfig(max_new_tokens=max_tokens, num_samples=n, do_sample=not greedy,
                           temperature=1.0 if greedy else temperature, top_p=top_p, top_k=max(0, top_k),
                           seed=seed, stop=_stop(body))
    return cfg, n


# -- the application (HTTP-agnostic) --------------------------------------------------------------------

class OpenAIApp:
    """Turns OpenAI API requests into batched Target calls; knows nothing about sockets."""

    def __init__(self, target: Target, model_name: str | None = None, api_key: str | None = None) -> None:
        self.target = target
        self.model_name = model_name or target.name
        self._api_key = api_key
        self._lock = threading.Lock()
        self._token_logprobs = token_logprobs_for(target)
        self.created = int(time.time())

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        try:
            self._authorize(headers)
            route = path.split("?", 1)[0].rstrip("/")
            if route in ("/v1/models", "/models") and method == "GET":
                return Response.json(200, self.models())
            if route in ("/v1/completions", "/completions", "/v1/chat/completions", "/chat/completions"):
                if method != "POST":
                    raise RequestError(405, f"{route} takes POST")
                payload = self._parse(body)
                if route.endswith("chat/completions"):
                    return Response.json(200, self.chat_completions(payload))
                return Response.json(200, self.completions(payload))
            if route in ("/health", "/v1/health"):
                return Response.json(200, {"status": "ok"})
            raise RequestError(404, f"no route {method} {route}", "not_found")
        except RequestError as exc:
            return self._error(exc.status, str(exc), exc.code)
        except PrivauditError as exc:
            return self._error(400, str(exc), "invalid_request_error")
        except Exception as exc:  # a bug in the target: report it without the traceback
            return self._error(500, f"internal error: {type(exc).__name__}", "internal_error")

    @staticmethod
    def _error(status: int, message: str, code: str) -> Response:
        err = {"error": {"message": " ".join(message.split()), "type": code, "code": code}}
        return Response.json(status, err)

    def _authorize(self, headers: Mapping[str, str]) -> None:
        if self._api_key is None:
            return
        given = headers.get("authorization", "")
        token = given[7:] if given.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(token.encode(), self._api_key.encode()):
            raise RequestError(401, "missing or invalid API key (send Authorization: Bearer KEY)",
                               "invalid_api_key")

    @staticmethod
    def _parse(body: bytes) -> dict[str, Any]:
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RequestError(400, "request body is not valid JSON") from None
        if not isinstance(payload, dict):
            raise RequestError(400, "request body must be a JSON object")
        return payload

    def _check_model(self, payload: Mapping[str, Any]) -> None:
        model = payload.get("model")
        if model is not None and model != self.model_name:
            raise RequestError(404, f"the model '{model}' does not exist (serving '{self.model_name}')",
                               "model_not_found")

    def models(self) -> dict[str, Any]:
        entry = {"id": self.model_name, "object": "model", "created": self.created, "owned_by": "privaudit",
                 "root": self.target.fingerprint()}
        return {"object": "list", "data": [entry]}

    def completions(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        self._check_model(payload)
        prompt = payload.get("prompt")
        if isinstance(prompt, str):
            prompts = [prompt]
        elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            prompts = list(prompt)
        else:
            raise RequestError(400, "'prompt' must be a string or a non-empty list of strings")
        if len(prompts) > MAX_PROMPTS:
            raise RequestError(400, f"'prompt' has {len(prompts)} entries; at most {MAX_PROMPTS}")
        echo = bool(_field(payload, "echo", (bool,), False))
        logprobs = _field(payload, "logprobs", (int,), None)
        if logprobs is not None and not 0 <= logprobs <= MAX_TOP_LOGPROBS:
            raise RequestError(400, f"'logprobs' must be between 0 and {MAX_TOP_LOGPROBS}")
        cfg, n = generation_config(payload)
        if cfg is None and not echo:
            raise RequestError(400, "'max_tokens' must be >= 1 unless echo is true")
        if logprobs is not None and self._token_logprobs is None:
            raise RequestError(400, f"logprobs are not available for target '{self.target.name}'")
        with self._lock:
            samples = self.target.generate(prompts, cfg) if cfg is not None else [[""] * n for _ in prompts]
            choices: list[dict[str, Any]] = []
            texts = [prompts[i] + s if echo else s for i in range(len(prompts)) for s in samples[i][:n]]
            lps: list[TokenLogprobs | None] = [None] * len(texts)
            if logprobs is not None:
                full = [prompts[i] + s for i in range(len(prompts)) for s in samples[i][:n]]
                lps = list(self._token_logprobs(full, logprobs))
        for idx, text in enumerate(texts):
            lp = None
            if lps[idx] is not None:
                start = 0 if echo else len(prompts[idx // n])
                lp = lps[idx].to_api(start)
            choices.append({"index": idx, "text": text, "logprobs": lp, "finish_reason": "length"})
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": self.model_name, "choices": choices}

    def chat_completions(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        self._check_model(payload)
        if CHAT not in self.target.capabilities:
            raise RequestError(400, f"target '{self.target.name}' has no chat capability")
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError(400, "'messages' must be a non-empty list")
        conv = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
                raise RequestError(400, f"messages[{i}]: 'role' must be system, user or assistant")
            content = m.get("content")
            if isinstance(content, list):  # content parts: keep the text ones
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
            if not isinstance(content, str):
                raise RequestError(400, f"messages[{i}]: 'content' must be a string")
            conv.append({"role": m["role"], "content": content})
        cfg, n = generation_config(payload)
        if cfg is None:
            raise RequestError(400, "'max_tokens' must be >= 1")
        with self._lock:
            replies = self.target.chat([conv], cfg)[0][:n]
        choices = [{"index": i, "message": {"role": "assistant", "content": r}, "finish_reason": "length"}
                   for i, r in enumerate(replies)]
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": self.model_name, "choices": choices}


# -- the HTTP server --------------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    """stdlib request handler: reads the body, delegates to the app, writes the response."""

    protocol_version = "HTTP/1.1"  # keep-alive, so the client's connection pool is used
    server_version = "privaudit"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def _read_body(self) -> bytes | Response:
        length = self.headers.get("Content-Length")
        if length is None:
            return b"" if self.command == "GET" else OpenAIApp._error(411, "Content-Length required", "invalid_request_error")
        try:
            size = int(length)
        except ValueError:
            return OpenAIApp._error(400, "invalid Content-Length", "invalid_request_error")
        if size < 0 or size > MAX_BODY_BYTES:
            self.close_connection = True
            return OpenAIApp._error(413, f"request body over {MAX_BODY_BYTES} bytes", "invalid_request_error")
        return self.rfile.read(size)

    def _dispatch(self, method: str) -> None:
        body = self._read_body()
        if isinstance(body, Response):
            self.send(body)
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.send(self.server.app.handle(method, self.path, headers, body))  # type: ignore[attr-defined]

    def send(self, response: Response) -> None:
        self.send_response(response.status)
        for key, value in response.headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log = getattr(self.server, "access_log", None)
        if log is not None:  # request line and status only: never headers (they carry the key)
            log(f"{self.address_string()} {format % args}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: OpenAIApp, access_log: Callable[[str], None] | None,
                 family: int) -> None:
        self.address_family = family
        self.app = app
        self.access_log = access_log
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away (timeout, dropped connection): nothing to answer
        super().handle_error(request, client_address)


class OpenAIServer:
    """A running server (background thread): `.url`, `.base_url`, `.spec`, `.close()`, `.wait()`."""

    def __init__(self, httpd: _Server, host: str) -> None:
        self._httpd = httpd
        self.app = httpd.app
        port = httpd.server_address[1]
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)
        self.url = f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"
        self.port = port
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="privaudit-serve", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def model_name(self) -> str:
        return self.app.model_name

    @property
    def spec(self) -> str:
        """The `openai:` target spec that reaches this server."""
        return f"openai:{self.base_url}#{self.model_name}"

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C raises KeyboardInterrupt here)."""
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "OpenAIServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_target(target: Target, host: str = "127.0.0.1", port: int = 0, *, model_name: str | None = None,
                 api_key: str | None = None, access_log: Callable[[str], None] | None = None) -> OpenAIServer:
    """Start an OpenAI-compatible server for `target` in a background thread and return it.

    `port=0` picks a free port (see `.url`). With `api_key`, requests must send `Authorization: Bearer KEY`.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        httpd = _Server((host, port), OpenAIApp(target, model_name, api_key), access_log, family)
    except OSError as exc:
        raise TargetError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return OpenAIServer(httpd, host)


__all__ = ["OpenAIApp", "OpenAIServer", "Response", "TokenLogprobs", "hf_token_logprobs", "serve_target",
           "token_logprobs_for", "generation_config"]
