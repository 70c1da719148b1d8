"""`openai:BASE_URL#MODEL`: any OpenAI-compatible HTTP server (vLLM, Ollama, llama.cpp, `privaudit serve`).

Spec: `openai:BASE_URL#MODEL[;api_key_env=VAR][;timeout=S][;max_retries=N][;concurrency=N]
[;chat=auto|true|false][;score=auto|true|false][;batch=N][;backoff=S][;max_retry_after=S]`.

Why it is built this way: audits send thousands of requests to servers that throttle (429), restart
(5xx, dropped connections) or stall, and an audit that dies on the first hiccup is useless. So every
request has a timeout and bounded retries with exponential backoff plus jitter (honouring a capped
Retry-After); prompts go out through a thread pool that keeps at most `concurrency` requests in
flight (the server batches concurrent requests; vLLM does so continuously); and when it gives up it
says so in one line (what failed, the URL, how many attempts). The API key is read from the
environment variable named by `api_key_env` and lives only in the HTTP client's headers: it is never
part of the name, repr, fingerprint, an error message, or anything written to disk.

Scoring (teacher-forced log-probabilities) uses the legacy completions API with `echo=true,
logprobs=1`: the server returns per-token log-probs of the prompt, and `text_offset` tells where the
continuation starts. Servers that cannot do this (Ollama, most chat-only APIs) lose the `score`
capability, decided by one probe request at load (or fixed with `score=true|false`), and attacks
that need scores stop with exit code 3 instead of measuring something else.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import math
import os
import random
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, TypeVar
from urllib.parse import urlsplit, urlunsplit

from privaudit.errors import CapabilityError, InputError, TargetError
from privaudit.targets.base import (
    CHAT, GENERATE, SCORE, GenerationConfig, Message, register_fingerprint, register_target,
)

T = TypeVar("T")
R = TypeVar("R")

# Statuses worth retrying: throttling, timeouts at a proxy, and transient server failures.
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# Statuses with which a server says "I do not support this request" (rather than "try later").
UNSUPPORTED_STATUSES = frozenset({400, 404, 405, 422, 501})
SCORING_ATTACKS = (
    "the PII likelihood probe (pii true-value vs. candidates), membership inference and canary exposure"
)
# Keys of a /v1/models entry that identify the model; 'created' and 'permission' change on restart.
_MODEL_INFO_KEYS = ("id", "owned_by", "root", "parent", "max_model_len")


@dataclass(frozen=True)
class EndpointOptions:
    """The `;key=value` options of an openai: spec, validated."""

    api_key_env: str | None = None
    timeout: float = 60.0  # seconds per request (read/write/pool); connect is capped at 10 s
    max_retries: int = 3  # retries after the first attempt, so at most max_retries + 1 requests
    concurrency: int = 4  # requests in flight at once
    chat: bool | None = None  # None = auto: assume /v1/chat/completions exists
    score: bool | None = None  # None = auto: probe echo+logprobs once at load
    batch: int = 1  # prompts per /v1/completions request (list prompts; not every server takes them)
    backoff: float = 0.5  # first retry delay in seconds; doubles each retry
    max_backoff: float = 20.0
    max_retry_after: float = 60.0  # cap on a server's Retry-After

    @classmethod
    def from_options(cls, options: Mapping[str, str], where: str) -> "EndpointOptions":
        known = {"api_key_env", "timeout", "max_retries", "concurrency", "chat", "score", "batch", "backoff",
                 "max_backoff", "max_retry_after"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InputError(f"{where}: unknown option '{unknown[0]}' (known: {', '.join(sorted(known))})")
        kw: dict[str, Any] = {}
        for key in ("timeout", "backoff", "max_backoff", "max_retry_after"):
            if key in options:
                kw[key] = _number(options[key], key, where, minimum=0.0, strict=(key == "timeout"))
        for key, minimum in (("max_retries", 0), ("concurrency", 1), ("batch", 1)):
            if key in options:
                kw[key] = _integer(options[key], key, where, minimum)
        for key in ("chat", "score"):
            if key in options:
                kw[key] = _tristate(options[key], key, where)
        if "api_key_env" in options:
            var = options["api_key_env"]
            if not var or not all(c.isalnum() or c == "_" for c in var):
                raise InputError(f"{where}: option 'api_key_env' must name an environment variable, got '{var}'")
            kw["api_key_env"] = var
        return cls(**kw)


def _number(text: str, key: str, where: str, minimum: float, strict: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < minimum or (strict and value <= minimum):
        raise InputError(f"{where}: option '{key}' must be a number {'>' if strict else '>='} {minimum:g}, got '{text}'")
    return value


def _integer(text: str, key: str, where: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{where}: option '{key}' must be an integer >= {minimum}, got '{text}'") from None
    if value < minimum:
        raise InputError(f"{where}: option '{key}' must be an integer >= {minimum}, got '{text}'")
    return value


def _tristate(text: str, key: str, where: str) -> bool | None:
    lowered = text.lower()
    if lowered == "auto":
        return None
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise InputError(f"{where}: option '{key}' must be auto, true or false, got '{text}'")


# -- pure helpers (no I/O) -------------------------------------------------------------------------

def normalize_base_url(url: str, where: str) -> str:
    """The API root ending in '/v1'; 'http://h:8000' and 'http://h:8000/v1/' both give 'http://h:8000/v1'.

    Credentials or query strings in the URL are refused: a key must come from an environment variable,
    never from a string that ends up in names, manifests and logs.
    """
    try:
        parts = urlsplit(url)
        parts.hostname  # noqa: B018 - raises on a malformed IPv6 literal
    except ValueError:
        raise InputError(f"{where}: base URL is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"{where}: base URL must look like http://HOST:PORT[/v1]")
    if parts.username is not None or parts.password is not None:
        raise InputError(f"{where}: the URL must not embed credentials; put the key in an env var and pass api_key_env=VAR")
    if parts.query or parts.fragment:
        raise InputError(f"{where}: the base URL must not have a query string")
    try:
        parts.port  # noqa: B018 - validates the port number
    except ValueError:
        raise InputError(f"{where}: invalid port in base URL") from None
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


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


def continuation_logprob(logprobs: Mapping[str, Any], prompt_chars: int, full_chars: int) -> float:
    """Sum the echoed log-probs of the tokens that cover characters [prompt_chars, full_chars).

    A token counts when it ends after the prompt and starts before the end of the echoed text, so a
    token straddling the boundary (BPE merged the prompt's last characters with the continuation's
    first) is counted whole, and a token the server generated after the echo (max_tokens=1) is not.
    """
    tokens = logprobs.get("tokens")
    values = logprobs.get("token_logprobs")
    offsets = logprobs.get("text_offset")
    if not (isinstance(tokens, list) and isinstance(values, list) and isinstance(offsets, list)) or not (
        len(tokens) == len(values) == len(offsets)
    ):
        raise ValueError("logprobs lacks equally long 'tokens', 'token_logprobs' and 'text_offset' lists")
    total = 0.0
    for i, (token, value, start) in enumerate(zip(tokens, values, offsets)):
        end = offsets[i + 1] if i + 1 < len(offsets) else start + len(token or "")
        if start >= full_chars or end <= prompt_chars:
            continue
        if value is None:
            raise ValueError(f"no log-prob for token {i} (the first token has no context; use a non-empty prompt)")
        total += float(value)
    return total


def redact_url(url: str) -> str:
    """A URL safe to show: scheme, host, port and path only (no user:password@, no query)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# -- the target --------------------------------------------------------------------------------------

class EndpointHTTPError(TargetError):
    """A non-retryable HTTP status (4xx other than 408/409/425/429) from the endpoint."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class _Cancelled(Exception):
    """Raised inside a worker when another request of the same batch has already failed."""


class OpenAICompatTarget:
    """A Target over an OpenAI-compatible server; see the module docstring for the spec options."""

    def __init__(self, base_url: str, model: str, options: EndpointOptions | None = None) -> None:
        import httpx

        self.options = options or EndpointOptions()
        # Validate before the URL appears anywhere: it might embed credentials.
        self.base_url = normalize_base_url(base_url, f"openai:{redact_url(base_url)}#{model}")
        self.name = f"openai:{base_url.rstrip('/')}#{model}"
        self.model = model
        self._where = f"openai endpoint {redact_url(self.base_url)}"
        headers = {"Accept": "application/json", "User-Agent": "privaudit"}
        self._secret: str | None = None
        if self.options.api_key_env:
            key = os.environ.get(self.options.api_key_env, "")
            if not key:
                raise InputError(
                    f"{self.name}: environment variable {self.options.api_key_env} (api_key_env) is not set or empty"
                )
            self._secret = key
            headers["Authorization"] = f"Bearer {key}"
        timeout = self.options.timeout
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=self.options.concurrency,
                                max_keepalive_connections=self.options.concurrency),
            follow_redirects=False,
        )
        self._pool = ThreadPoolExecutor(max_workers=self.options.concurrency, thread_name_prefix="privaudit-http")
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        self._model_info: dict[str, Any] | None = None
        self._score_reason = "disabled with score=false" if self.options.score is False else ""
        caps = {GENERATE}
        if self.options.chat is not False:
            caps.add(CHAT)
        self.capabilities: frozenset[str] = frozenset(caps)

    def __repr__(self) -> str:
        return f"OpenAICompatTarget({self.name!r})"

    # -- load ------------------------------------------------------------------------------------
    def connect(self) -> "OpenAICompatTarget":
        """Check the endpoint is reachable and serves the model; probe scoring when score=auto.

        The probe happens here, at load, rather than lazily: `capabilities` is a plain attribute that
        `require` and the cache wrapper read, and a property doing network I/O would hide failures
        inside attribute access.
        """
        self.describe()
        caps = set(self.capabilities)
        if self.options.score is True:
            caps.add(SCORE)
        elif self.options.score is None:
            supported, reason = self._probe_score()
            if supported:
                caps.add(SCORE)
            else:
                self._score_reason = reason
        self.capabilities = frozenset(caps)
        return self

    def describe(self) -> "OpenAICompatTarget":
        """Ask the server (GET /v1/models) how it describes the model: what `fingerprint` covers."""
        try:
            listing = self._request("GET", "/models", None)
        except EndpointHTTPError as exc:
            if exc.status in (401, 403):
                raise
            listing = None  # some servers have no /v1/models; requests will tell whether the model exists
        if listing is not None:
            self._model_info = self._find_model(listing)
        return self

    def _find_model(self, listing: Mapping[str, Any]) -> dict[str, Any] | None:
        data = listing.get("data")
        if not isinstance(data, list):
            return None
        entries = [e for e in data if isinstance(e, Mapping) and isinstance(e.get("id"), str)]
        if not entries:
            return None
        for entry in entries:
            # Ollama lists 'llama3:latest' but serves it as 'llama3' too.
            if entry["id"] == self.model or entry["id"] == f"{self.model}:latest":
                return {k: entry[k] for k in _MODEL_INFO_KEYS if k in entry and isinstance(entry[k], (str, int))}
        served = ", ".join(sorted(str(e["id"]) for e in entries)[:10])
        raise TargetError(f"{self._where}: model '{self.model}' is not served (it serves: {served})")

    def _probe_score(self) -> tuple[bool, str]:
        try:
            self._score_chunk([("The probe", " works.")], probe=True)
        except CapabilityError as exc:
            return False, getattr(exc, "reason", str(exc))
        return True, ""

    # -- identity --------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """sha256 of the API root, the model name and the server's description of the model (if any)."""
        payload = {"base_url": self.base_url, "model": self.model, "info": self._model_info or {}}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    # -- HTTP with retries -----------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        if self._secret:
            text = text.replace(self._secret, "***")
        return " ".join(text.split())

    def _request(self, method: str, path: str, payload: Mapping[str, Any] | None,
                 cancel: threading.Event | None = None) -> dict[str, Any]:
        """One JSON request with timeouts and bounded retries; returns the decoded JSON object."""
        import httpx

        url = self.base_url + path
        shown = redact_url(url)
        attempts = 0
        while True:
            if cancel is not None and cancel.is_set():
                raise _Cancelled()
            attempts += 1
            retry_after: float | None = None
            try:
                response = self._client.request(method, url, json=payload)
            except httpx.TimeoutException:
                problem = f"timed out after {self.options.timeout:g} s"
            except httpx.TransportError as exc:
                problem = f"connection failed ({type(exc).__name__}: {self._redact(str(exc)) or 'no detail'})"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return self._decode(response, shown, attempts)
                detail = self._error_detail(response)
                if status not in RETRY_STATUSES:
                    hint = ""
                    if status in (401, 403):
                        hint = (f"; check the key in ${self.options.api_key_env}" if self.options.api_key_env
                                else "; the endpoint wants an API key: pass api_key_env=VAR")
                    raise EndpointHTTPError(f"{self._where}: {method} {shown} returned HTTP {status}{detail}{hint}",
                                            status)
                problem = f"HTTP {status}{detail}"
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            if attempts > self.options.max_retries:
                raise TargetError(
                    f"{self._where}: gave up on {method} {shown} after {attempts} attempt"
                    f"{'s' if attempts > 1 else ''}: {problem}"
                )
            with self._rng_lock:
                jitter = self._rng.random()
            delay = backoff_delay(attempts, self.options.backoff, self.options.max_backoff, jitter,
                                  retry_after, self.options.max_retry_after)
            if cancel is not None:
                if cancel.wait(delay):
                    raise _Cancelled()
            else:
                time.sleep(delay)

    def _decode(self, response: Any, shown: str, attempts: int) -> dict[str, Any]:
        try:
            data = json.loads(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            where = f" at char {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
            raise TargetError(
                f"{self._where}: {shown} returned malformed JSON (HTTP {response.status_code}, "
                f"{len(response.content)} bytes, invalid{where}) on attempt {attempts}"
            ) from None
        if not isinstance(data, dict):
            raise TargetError(f"{self._where}: {shown} returned JSON {type(data).__name__}, expected an object")
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
        text = self._redact(text)[:200]
        return f": {text}" if text else ""

    def _map(self, fn: Callable[[T, threading.Event], R], items: Sequence[T]) -> list[R]:
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
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in futures if f.done() and not f.cancelled() and f.exception() is not None
                      and not isinstance(f.exception(), _Cancelled)]
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

    # -- Target API ------------------------------------------------------------------------------
    def _sampling_body(self, cfg: GenerationConfig) -> tuple[dict[str, Any], int]:
        """Request fields for `cfg`, and the number of choices to ask per prompt."""
        body: dict[str, Any] = {"model": self.model, "max_tokens": cfg.max_new_tokens, "seed": cfg.seed}
        if cfg.do_sample:
            body.update(temperature=cfg.temperature, top_p=cfg.top_p, n=cfg.num_samples)
            if cfg.top_k > 0:
                body["top_k"] = cfg.top_k  # vLLM/llama.cpp extension; OpenAI itself rejects it
            n = cfg.num_samples
        else:
            body.update(temperature=0.0, n=1)  # greedy: one request, repeated k times (Target contract)
            n = 1
        if cfg.stop:
            body["stop"] = list(cfg.stop)
        return body, n

    def generate(self, prompts: Sequence[str], cfg: GenerationConfig) -> list[list[str]]:
        body, n = self._sampling_body(cfg)
        chunks = [list(prompts[i : i + self.options.batch]) for i in range(0, len(prompts), self.options.batch)]

        def one(chunk: list[str], cancel: threading.Event) -> list[list[str]]:
            payload = {**body, "prompt": chunk[0] if len(chunk) == 1 else chunk}
            data = self._request("POST", "/completions", payload, cancel)
            texts = self._choice_texts(data, len(chunk) * n, lambda c: c.get("text"))
            return [texts[i * n : (i + 1) * n] for i in range(len(chunk))]

        out = [row for rows in self._map(one, chunks) for row in rows]
        return out if cfg.do_sample else [row * cfg.num_samples for row in out]

    def chat(self, conversations: Sequence[Sequence[Message]], cfg: GenerationConfig) -> list[list[str]]:
        if CHAT not in self.capabilities:
            raise CapabilityError(f"target '{self.name}' has chat disabled (chat=false)")
        body, n = self._sampling_body(cfg)

        def one(conv: Sequence[Message], cancel: threading.Event) -> list[str]:
            payload = {**body, "messages": [{"role": m["role"], "content": m["content"]} for m in conv]}
            try:
                data = self._request("POST", "/chat/completions", payload, cancel)
            except EndpointHTTPError as exc:
                if exc.status in (404, 405, 501):
                    raise CapabilityError(f"{self._where} has no chat endpoint (HTTP {exc.status}); "
                                          "use raw-completion attacks or chat=false") from None
                raise
            return self._choice_texts(data, n, lambda c: (c.get("message") or {}).get("content"))

        out = self._map(one, list(conversations))
        return out if cfg.do_sample else [row * cfg.num_samples for row in out]

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        if len(prompts) != len(continuations):
            raise InputError(f"score: {len(prompts)} prompts but {len(continuations)} continuations")
        if SCORE not in self.capabilities:
            raise self._no_score(self._score_reason or "no score capability")
        pairs = list(zip(prompts, continuations))
        chunks = [pairs[i : i + self.options.batch] for i in range(0, len(pairs), self.options.batch)]
        return [v for vs in self._map(lambda ch, cancel: self._score_chunk(ch, cancel=cancel), chunks) for v in vs]

    def _no_score(self, reason: str) -> CapabilityError:
        err = CapabilityError(f"target '{self.name}' cannot score continuations ({reason}); {SCORING_ATTACKS} "
                              "need teacher-forced log-probs (completions with echo and logprobs, as vLLM serves)")
        err.reason = reason  # type: ignore[attr-defined]
        return err

    def _score_chunk(self, pairs: Sequence[tuple[str, str]], cancel: threading.Event | None = None,
                     probe: bool = False) -> list[float]:
        fulls = [p + c for p, c in pairs]
        payload = {"model": self.model, "prompt": fulls[0] if len(fulls) == 1 else fulls, "echo": True,
                   "logprobs": 1, "max_tokens": 1, "temperature": 0.0}
        try:
            data = self._request("POST", "/completions", payload, cancel)
        except EndpointHTTPError as exc:
            if exc.status in UNSUPPORTED_STATUSES:
                raise self._no_score(f"the server rejected echo+logprobs with HTTP {exc.status}") from None
            raise
        choices = self._choices(data, len(pairs))
        scores = []
        for (prompt, _), full, choice in zip(pairs, fulls, choices):
            logprobs = choice.get("logprobs")
            text = choice.get("text")
            if not isinstance(logprobs, Mapping) or not isinstance(text, str) or not text.startswith(full):
                raise self._no_score("the server ignored echo or logprobs")
            try:
                scores.append(continuation_logprob(logprobs, len(prompt), len(full)))
            except ValueError as exc:
                if probe:
                    raise self._no_score(str(exc)) from None
                raise TargetError(f"{self._where}: cannot score: {exc}") from None
        return scores

    def _choices(self, data: Mapping[str, Any], expected: int) -> list[Mapping[str, Any]]:
        choices = data.get("choices")
        if not isinstance(choices, list) or not all(isinstance(c, Mapping) for c in choices):
            error = data.get("error")
            said = ""
            if isinstance(error, Mapping) and error.get("message"):
                said = f" (server said: {self._redact(str(error['message']))[:200]})"
            raise TargetError(f"{self._where}: response has no 'choices' list{said}")
        if len(choices) != expected:
            raise TargetError(f"{self._where}: expected {expected} choices, got {len(choices)}")
        if all(isinstance(c.get("index"), int) for c in choices):
            choices = sorted(choices, key=lambda c: c["index"])
        return choices

    def _choice_texts(self, data: Mapping[str, Any], expected: int,
                      get: Callable[[Mapping[str, Any]], Any]) -> list[str]:
        texts = []
        for choice in self._choices(data, expected):
            text = get(choice)
            if text is None:
                text = ""
            if not isinstance(text, str):
                raise TargetError(f"{self._where}: a choice's text is {type(text).__name__}, not a string")
            texts.append(text)
        return texts

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()


def split_location(location: str) -> tuple[str, str]:
    """'URL#MODEL' -> (URL, MODEL); a URL never legitimately contains '#'."""
    url, sep, model = location.partition("#")
    if not sep or not model.strip() or not url:
        raise InputError(f"openai target '{location}' needs a model: openai:BASE_URL#MODEL")
    return url, model.strip()


@register_target("openai")
def load_openai_target(location: str, options: Mapping[str, str]) -> OpenAICompatTarget:
    """Factory for `openai:BASE_URL#MODEL[;options]`: validates, connects, probes capabilities."""
    url, model = split_location(location)
    where = f"openai:{redact_url(url)}#{model}"
    opts = EndpointOptions.from_options(options, where)
    target = OpenAICompatTarget(url, model, opts)
    try:
        return target.connect()
    except BaseException:
        target.close()
        raise


@register_fingerprint("openai")
def openai_spec_fingerprint(location: str, options: Mapping[str, str]) -> str:
    """The endpoint's fingerprint from one GET /v1/models (no scoring probe, no generation)."""
    url, model = split_location(location)
    opts = EndpointOptions.from_options(options, f"openai:{redact_url(url)}#{model}")
    target = OpenAICompatTarget(url, model, opts)
    try:
        return target.describe().fingerprint()
    finally:
        target.close()
