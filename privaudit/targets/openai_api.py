"""The OpenAI-compatible API as data: an `openai:` spec's options and URL, request bodies built from a
GenerationConfig, and the checks that turn a response into texts and log-probs. No I/O here, so
every rule is testable without a server (the transport and the Target live beside it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

from privaudit.errors import InputError, TargetError
from privaudit.targets.base import GenerationConfig

# Statuses with which a server says "I do not support this request" (rather than "try later").
UNSUPPORTED_STATUSES = frozenset({400, 404, 405, 422, 501})
# Keys of a /v1/models entry that identify the model; 'created' and 'permission' change on restart.
MODEL_INFO_KEYS = ("id", "owned_by", "root", "parent", "max_model_len")


@dataclass(frozen=True)
class EndpointOptions:
    """The `;key=value` options of an openai: spec, validated."""

    api_key_env: str | None = None
    timeout: float = 60.0  # seconds per attempt in all (connect, send, the answer); connect alone is capped at 10 s
    max_retries: int = 3  # retries after the first attempt, so at most max_retries + 1 requests
    concurrency: int = 4  # the most requests in flight at once (the adaptive window's cap)
    adaptive: bool = True  # AIMD window below the cap (openai_limiter); false = always the cap
    latency_factor: float = 3.0  # back off when smoothed latency exceeds this many times the best; 0 = off
    chat: bool | None = None  # None = auto: assume /v1/chat/completions exists
    score: bool | None = None  # None = auto: probe echo+logprobs once at load
    batch: int = 1  # prompts per /v1/completions request (list prompts; not every server takes them)
    backoff: float = 0.5  # first retry delay in seconds; doubles each retry
    max_backoff: float = 20.0
    max_retry_after: float = 60.0  # cap on a server's Retry-After

    @classmethod
    def from_options(cls, options: Mapping[str, str], where: str) -> "EndpointOptions":
        known = {"api_key_env", "timeout", "max_retries", "concurrency", "chat", "score", "batch", "backoff",
                 "max_backoff", "max_retry_after", "adaptive", "latency_factor"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InputError(f"{where}: unknown option '{unknown[0]}' (known: {', '.join(sorted(known))})")
        kw: dict[str, Any] = {}
        for key in ("timeout", "backoff", "max_backoff", "max_retry_after", "latency_factor"):
            if key in options:
                kw[key] = _number(options[key], key, where, minimum=0.0, strict=(key == "timeout"))
        for key, minimum in (("max_retries", 0), ("concurrency", 1), ("batch", 1)):
            if key in options:
                kw[key] = _integer(options[key], key, where, minimum)
        for key in ("chat", "score"):
            if key in options:
                kw[key] = _tristate(options[key], key, where)
        if "adaptive" in options:
            flag = _tristate(options["adaptive"], "adaptive", where)
            kw["adaptive"] = True if flag is None else flag
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


# -- URLs ----------------------------------------------------------------------------------------------

def split_location(location: str) -> tuple[str, str]:
    """'URL#MODEL' -> (URL, MODEL); a URL never legitimately contains '#'."""
    url, sep, model = location.partition("#")
    if not sep or not model.strip() or not url:
        raise InputError(f"openai target '{location}' needs a model: openai:BASE_URL#MODEL")
    return url, model.strip()


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


# -- requests ------------------------------------------------------------------------------------------

def sampling_body(model: str, cfg: GenerationConfig) -> tuple[dict[str, Any], int]:
    """Request fields for `cfg`, and the number of choices to ask per prompt."""
    body: dict[str, Any] = {"model": model, "max_tokens": cfg.max_new_tokens, "seed": cfg.seed}
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


def echo_logprobs_body(model: str, texts: Sequence[str]) -> dict[str, Any]:
    """A completions request that echoes `texts` with per-token log-probs (teacher forcing over HTTP)."""
    return {"model": model, "prompt": texts[0] if len(texts) == 1 else list(texts), "echo": True,
            "logprobs": 1, "max_tokens": 1, "temperature": 0.0}


# -- responses -----------------------------------------------------------------------------------------

def model_entry(listing: Mapping[str, Any], model: str, where: str) -> dict[str, Any] | None:
    """The identifying fields of `model` in a /v1/models listing; None when the listing has no entries."""
    data = listing.get("data")
    if not isinstance(data, list):
        return None
    entries = [e for e in data if isinstance(e, Mapping) and isinstance(e.get("id"), str)]
    if not entries:
        return None
    for entry in entries:
        # Ollama lists 'llama3:latest' but serves it as 'llama3' too.
        if entry["id"] == model or entry["id"] == f"{model}:latest":
            return {k: entry[k] for k in MODEL_INFO_KEYS if k in entry and isinstance(entry[k], (str, int))}
    served = ", ".join(sorted(str(e["id"]) for e in entries)[:10])
    raise TargetError(f"{where}: model '{model}' is not served (it serves: {served})")


def response_choices(data: Mapping[str, Any], expected: int, where: str,
                     redact: Callable[[str], str]) -> list[Mapping[str, Any]]:
    """The `choices` of a response, checked (a list of `expected` objects) and ordered by `index`."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not all(isinstance(c, Mapping) for c in choices):
        error = data.get("error")
        said = ""
        if isinstance(error, Mapping) and error.get("message"):
            said = f" (server said: {redact(str(error['message']))[:200]})"
        raise TargetError(f"{where}: response has no 'choices' list{said}")
    if len(choices) != expected:
        raise TargetError(f"{where}: expected {expected} choices, got {len(choices)}")
    if all(isinstance(c.get("index"), int) for c in choices):
        choices = sorted(choices, key=lambda c: c["index"])
    return choices


def choice_texts(choices: Sequence[Mapping[str, Any]], where: str,
                 get: Callable[[Mapping[str, Any]], Any]) -> list[str]:
    """The text `get` finds in each choice (None counts as ''); anything but a string is an error."""
    texts = []
    for choice in choices:
        text = get(choice)
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise TargetError(f"{where}: a choice's text is {type(text).__name__}, not a string")
        texts.append(text)
    return texts


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
