"""`openai:BASE_URL#MODEL`: any OpenAI-compatible HTTP server (vLLM, Ollama, llama.cpp, `privaudit serve`).

Spec: `openai:BASE_URL#MODEL[;api_key_env=VAR][;timeout=S][;max_retries=N][;concurrency=N]
[;chat=auto|true|false][;score=auto|true|false][;batch=N][;backoff=S][;max_retry_after=S]
[;adaptive=true|false][;latency_factor=X]`. `concurrency` caps the requests in flight; below the cap an
AIMD window adapts to the server's push-back (`openai_limiter`), and `client_stats()` reports it.

This module is the Target: capabilities decided at load, generation, chat and scoring mapped onto
the API: it builds every request's payload, sends them all through one `Transport.map_requests`
(payloads in, decoded JSON out) and parses the answers here. Its parts: `openai_api` (spec options,
URLs, request bodies, response checks: no I/O), `openai_http` (how an attempt is judged: retry,
backoff, the adaptive window's signals, the give-up error) and `openai_transport` (asyncio +
aiohttp: one event loop, up to `concurrency` requests in flight). The API key is read from
the environment variable named by `api_key_env` and lives only in the HTTP client's headers: it is
never part of the name, repr, fingerprint, an error message, or anything written to disk.

Scoring (teacher-forced log-probabilities) uses the legacy completions API with `echo=true,
logprobs=1`: the server returns per-token log-probs of the prompt, and `text_offset` tells where the
continuation starts. Servers that cannot do this (Ollama, most chat-only APIs) lose the `score`
capability, decided by one probe request at load (or fixed with `score=true|false`), and attacks
that need scores stop with exit code 3 instead of measuring something else.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Mapping, Sequence

from privaudit.errors import CapabilityError, InputError, TargetError
from privaudit.targets.base import (
    CHAT, GENERATE, SCORE, GenerationConfig, Message, register_fingerprint, register_target,
)
from privaudit.targets.openai_api import (  # noqa: F401  (public names re-exported from their old home)
    MODEL_INFO_KEYS,
    UNSUPPORTED_STATUSES,
    EndpointOptions,
    choice_texts,
    continuation_logprob,
    echo_logprobs_body,
    model_entry,
    normalize_base_url,
    redact_url,
    response_choices,
    sampling_body,
    split_location,
)
from privaudit.targets.openai_http import (  # noqa: F401
    RETRY_STATUSES,
    EndpointHTTPError,
    backoff_delay,
    parse_retry_after,
)
from privaudit.targets.openai_transport import Transport

_MODEL_INFO_KEYS = MODEL_INFO_KEYS
SCORING_ATTACKS = (
    "the PII likelihood probe (pii true-value vs. candidates), membership inference and canary exposure"
)


class OpenAICompatTarget:
    """A Target over an OpenAI-compatible server; see the module docstring for the spec options."""

    def __init__(self, base_url: str, model: str, options: EndpointOptions | None = None) -> None:
        self.options = options or EndpointOptions()
        # Validate before the URL appears anywhere: it might embed credentials.
        self.base_url = normalize_base_url(base_url, f"openai:{redact_url(base_url)}#{model}")
        self.name = f"openai:{base_url.rstrip('/')}#{model}"
        self.model = model
        self._where = f"openai endpoint {redact_url(self.base_url)}"
        key: str | None = None
        if self.options.api_key_env:
            key = os.environ.get(self.options.api_key_env, "")
            if not key:
                raise InputError(
                    f"{self.name}: environment variable {self.options.api_key_env} (api_key_env) is not set or empty"
                )
        self._http = Transport(self.base_url, self.options, key)
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
            listing = self._http.request("GET", "/models", None)
        except EndpointHTTPError as exc:
            if exc.status in (401, 403):
                raise
            listing = None  # some servers have no /v1/models; requests will tell whether the model exists
        if listing is not None:
            self._model_info = model_entry(listing, self.model, self._where)
        return self

    def _probe_score(self) -> tuple[bool, str]:
        try:
            self._score_pairs([("The probe", " works.")], 1, probe=True)
        except CapabilityError as exc:
            return False, getattr(exc, "reason", str(exc))
        return True, ""

    # -- identity --------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """sha256 of the API root, the model name and the server's description of the model (if any)."""
        payload = {"base_url": self.base_url, "model": self.model, "info": self._model_info or {}}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    # -- Target API ------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[str], cfg: GenerationConfig) -> list[list[str]]:
        body, n = sampling_body(self.model, cfg)
        chunks = [list(prompts[i : i + self.options.batch]) for i in range(0, len(prompts), self.options.batch)]
        answers = self._http.map_requests(
            "POST", "/completions", [{**body, "prompt": chunk[0] if len(chunk) == 1 else chunk} for chunk in chunks])
        out = []
        for chunk, data in zip(chunks, answers):
            texts = choice_texts(self._choices(data, len(chunk) * n), self._where, lambda c: c.get("text"))
            out.extend(texts[i * n : (i + 1) * n] for i in range(len(chunk)))
        return out if cfg.do_sample else [row * cfg.num_samples for row in out]

    def chat(self, conversations: Sequence[Sequence[Message]], cfg: GenerationConfig) -> list[list[str]]:
        if CHAT not in self.capabilities:
            raise CapabilityError(f"target '{self.name}' has chat disabled (chat=false)")
        body, n = sampling_body(self.model, cfg)
        payloads = [{**body, "messages": [{"role": m["role"], "content": m["content"]} for m in conv]}
                    for conv in conversations]
        try:
            answers = self._http.map_requests("POST", "/chat/completions", payloads)
        except EndpointHTTPError as exc:
            if exc.status in (404, 405, 501):
                raise CapabilityError(f"{self._where} has no chat endpoint (HTTP {exc.status}); "
                                      "use raw-completion attacks or chat=false") from None
            raise
        out = [choice_texts(self._choices(data, n), self._where, lambda c: (c.get("message") or {}).get("content"))
               for data in answers]
        return out if cfg.do_sample else [row * cfg.num_samples for row in out]

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        if len(prompts) != len(continuations):
            raise InputError(f"score: {len(prompts)} prompts but {len(continuations)} continuations")
        if SCORE not in self.capabilities:
            raise self._no_score(self._score_reason or "no score capability")
        pairs = list(zip(prompts, continuations))
        return self._score_pairs(pairs, self.options.batch)

    def _no_score(self, reason: str) -> CapabilityError:
        err = CapabilityError(f"target '{self.name}' cannot score continuations ({reason}); {SCORING_ATTACKS} "
                              "need teacher-forced log-probs (completions with echo and logprobs, as vLLM serves)")
        err.reason = reason  # type: ignore[attr-defined]
        return err

    def _score_pairs(self, pairs: Sequence[tuple[str, str]], batch: int, probe: bool = False) -> list[float]:
        """Teacher-forced log-probs of each continuation, `batch` pairs per echo+logprobs request."""
        chunks = [pairs[i : i + batch] for i in range(0, len(pairs), batch)]
        payloads = [echo_logprobs_body(self.model, [p + c for p, c in chunk]) for chunk in chunks]
        try:
            answers = self._http.map_requests("POST", "/completions", payloads)
        except EndpointHTTPError as exc:
            if exc.status in UNSUPPORTED_STATUSES:
                raise self._no_score(f"the server rejected echo+logprobs with HTTP {exc.status}") from None
            raise
        return [v for chunk, data in zip(chunks, answers) for v in self._chunk_scores(chunk, data, probe)]

    def _chunk_scores(self, pairs: Sequence[tuple[str, str]], data: Mapping[str, Any], probe: bool) -> list[float]:
        scores = []
        for (prompt, cont), choice in zip(pairs, self._choices(data, len(pairs))):
            full = prompt + cont
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

    def client_stats(self) -> dict[str, Any]:
        """Concurrency settled on, reached and backed off from (the run manifest's `clients` entry)."""
        return self._http.client_stats()

    def _choices(self, data: Mapping[str, Any], expected: int) -> list[Mapping[str, Any]]:
        return response_choices(data, expected, self._where, self._http.redact)

    def close(self) -> None:
        self._http.close()


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
