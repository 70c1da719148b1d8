"""The Target contract every model backend implements, and the registry of target schemes.

A target is anything an attack can query: a local Hugging Face model, the embedded builtin model,
or an OpenAI-compatible endpoint. Attacks only see this contract, so the same attack runs against
all of them; capabilities say which optional operations a backend really supports.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping, Protocol, Sequence, runtime_checkable

from privaudit.errors import CapabilityError, InputError
from privaudit.registry import Registry

GENERATE = "generate"
SCORE = "score"  # teacher-forced sum log-prob of a continuation given a prompt
TOKEN_LOGPROBS = "token_logprobs"  # the per-token log-probs behind `score` (token_logprobs, echo_logprobs)
# Each scored position's whole next-token distribution summarised: mean and std of log p over the
# vocabulary under p (`token_distributions`), what Min-K%++ standardises by. Local models only: an
# API's top_logprobs sees a handful of tokens, not the vocabulary.
TOKEN_DISTRIBUTION = "token_distribution"
CHAT = "chat"  # chat template / chat endpoint
GRADIENTS = "gradients"  # white-box: embeddings and autograd available (soft prompts, DP)
# Personalized per asking user (rag:, profile:, peruser:): the target offers `for_user(user_id) -> Target`,
# the same deployment answering as user U (U's documents, profile or adapter).
USER_CONTEXT = "user_context"
# Wrapper schemes (rag:, profile:) take the wrapped target as their last option, `inner=SPEC`: the
# rest of the spec after `inner=` is the inner spec verbatim, ':' included (`rag:c.jsonl:inner=hf:m`).
INNER_OPTION = "inner"

Message = Mapping[str, str]  # {"role": "system"|"user"|"assistant", "content": str}


@dataclass(frozen=True)
class TokenLogprobs:
    """The tokens of one text with their log-probs, in the layout of the completions API's `logprobs`.

    `text_offset[i]` is the character where token i starts; `token_logprobs[i]` is None for a token
    with no context (the first one when the tokenizer adds no BOS); `top_logprobs[i]` maps the most
    likely alternatives at position i to their log-probs (empty list or None entries: not asked for).
    """

    tokens: list[str]
    token_logprobs: list[float | None]
    text_offset: list[int]
    top_logprobs: list[dict[str, float] | None] = field(default_factory=list)

    def to_api(self, start_char: int = 0) -> dict:
        """The API object, keeping only tokens that start at or after `start_char`."""
        keep = [i for i, off in enumerate(self.text_offset) if off >= start_char]
        top = self.top_logprobs or [None] * len(self.tokens)
        return {
            "tokens": [self.tokens[i] for i in keep],
            "token_logprobs": [self.token_logprobs[i] for i in keep],
            "text_offset": [self.text_offset[i] for i in keep],
            "top_logprobs": [top[i] for i in keep],
        }


@dataclass(frozen=True)
class TokenDistribution:
    """One continuation's scored tokens: log p(x_t | x_<t), and the mean and standard deviation of
    log p(z | x_<t) over the vocabulary z drawn from the model's own next-token distribution at t
    (Min-K%++'s mu_t and sigma_t, Zhang et al. 2024, Sec. 3). Three lists of one length."""

    logprobs: list[float]
    means: list[float]
    stds: list[float]


@dataclass(frozen=True)
class GenerationConfig:
    """How to sample: k samples per prompt, greedy or sampled, and a per-run seed.

    With `do_sample=False` all k samples are the same greedy continuation, so backends return the
    one greedy output k times without recomputing it.
    """

    max_new_tokens: int = 32
    num_samples: int = 1
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise InputError(f"generation: max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.num_samples < 1:
            raise InputError(f"generation: num_samples must be >= 1, got {self.num_samples}")
        if self.temperature <= 0:
            raise InputError(f"generation: temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise InputError(f"generation: top_p must be in (0, 1], got {self.top_p}")

    def to_dict(self) -> dict:
        return asdict(self)

    def key(self) -> str:
        """Stable hash of the settings, used in cache keys."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


@runtime_checkable
class Target(Protocol):
    """What every backend offers. `score`, `chat` and the two per-token methods exist only where
    `capabilities` says so (`SCORE`, `CHAT`, `TOKEN_LOGPROBS`); callers check it, never `hasattr`."""

    name: str
    capabilities: frozenset[str]

    def fingerprint(self) -> str:
        """A stable identity of the model behind the target (weights hash, adapter, endpoint+model).

        Cache keys and result provenance use it, so two different models never share cached outputs.
        """
        ...

    def generate(self, prompts: Sequence[str], cfg: GenerationConfig) -> list[list[str]]:
        """Raw-completion generation: for each prompt, `cfg.num_samples` continuations (prompt excluded)."""
        ...

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        """Teacher-forced sum of log-probabilities (natural log) of each continuation given its prompt."""
        ...

    def token_logprobs(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[list[float]]:
        """Log-probability of each token of each continuation given its prompt: what `score` sums.

        With `TOKEN_LOGPROBS` only. Membership scores such as Min-K% prob (Shi et al., ICLR 2024)
        need the individual tokens, not only their sum; an empty continuation gives `[]`.
        """
        ...

    def token_distributions(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[TokenDistribution]:
        """`token_logprobs` plus each position's mean and std of log p under the next-token distribution.

        With `TOKEN_DISTRIBUTION` only (one forward pass gives all three from the full logits).
        """
        ...

    def echo_logprobs(self, texts: Sequence[str], top_k: int = 0) -> list[TokenLogprobs]:
        """Every token of each whole text with its character offset, log-prob and `top_k` alternatives.

        With `TOKEN_LOGPROBS` only: what `privaudit serve` answers a completions request with
        `echo` and `logprobs` (the request `openai:` scoring sends), so a served target scores remotely
        exactly as it does locally.
        """
        ...

    def chat(self, conversations: Sequence[Sequence[Message]], cfg: GenerationConfig) -> list[list[str]]:
        """Chat generation: for each conversation (list of messages), `cfg.num_samples` replies."""
        ...

    def close(self) -> None:
        """Release resources (HTTP sessions, GPU memory)."""
        ...


def require(target: Target, capability: str, attack: str) -> None:
    """Fail with exit code 3 when `target` cannot do what `attack` needs."""
    if capability not in target.capabilities:
        raise CapabilityError(
            f"target '{target.name}' has no '{capability}' capability, which attack '{attack}' needs "
            f"(it has: {', '.join(sorted(target.capabilities)) or 'none'})"
        )


TargetFactory = Callable[[str, Mapping[str, str]], Target]


def _check_factory(scheme: str, factory: TargetFactory) -> None:
    if not callable(factory):
        raise TypeError(f"target scheme '{scheme}': {factory!r} is not a factory(location, options) -> Target")
    if ":" in scheme:
        raise ValueError(f"target scheme '{scheme}': a scheme may not contain ':'")


# Built-in scheme -> module that registers it, imported when a spec names the scheme (torch is
# heavy). `output_filter:` wraps another target with a defense's redaction, so the defense module
# registers it: named here as data, so this module never imports privaudit.defenses. Outside
# packages add schemes through the `privaudit.targets` entry-point group.
TARGETS: Registry[TargetFactory] = Registry(
    "target scheme", "privaudit.targets",
    builtins={
        "builtin": "privaudit.targets.builtin",
        "hf": "privaudit.targets.hf",
        "openai": "privaudit.targets.openai_compat",
        "output_filter": "privaudit.defenses.output_filter",
        "predictions": "privaudit.targets.stored_predictions",
        "rag": "privaudit.targets.rag",
        "profile": "privaudit.targets.profile",
        "peruser": "privaudit.targets.peruser",
    },
    validate=_check_factory,
)


def register_target(scheme: str) -> Callable[[TargetFactory], TargetFactory]:
    """Register a factory for specs of the form 'SCHEME:REST[:key=value...]'."""
    return TARGETS.register(scheme)


FingerprintFn = Callable[[str, Mapping[str, str]], str]
# Filled by the module that registers the scheme (no plugins of its own: a plugin target module
# registers its fingerprint by decorator when its scheme is loaded).
FINGERPRINTS: Registry[FingerprintFn] = Registry("target fingerprint")


def register_fingerprint(scheme: str) -> Callable[[FingerprintFn], FingerprintFn]:
    """Register how to fingerprint a `SCHEME:` spec without loading its model (e.g. hash its files).

    `fn(location, options)` must return exactly what the loaded target's `fingerprint()` returns.
    A resumed run uses it to check, before any attack runs, that the model behind each spec is the
    one its stored results came from; schemes without one are loaded to be fingerprinted.
    """
    return FINGERPRINTS.register(scheme)


def spec_fingerprint(spec: str) -> str | None:
    """The fingerprint of the model `spec` names, computed without loading it; None where the backend cannot."""
    parsed = TargetSpec.parse(spec)
    if TARGETS.find(parsed.scheme) is None:  # imports the module that registers the scheme (and its fingerprint)
        return None
    fn = FINGERPRINTS.find(parsed.scheme)
    return fn(parsed.location, dict(parsed.options)) if fn is not None else None


def registered_schemes() -> list[str]:
    """Every known scheme (built-ins and allowed plugins), without importing a backend."""
    return TARGETS.names()


@dataclass(frozen=True)
class TargetSpec:
    """A parsed target spec: 'hf:PATH:adapter=PATH', 'openai:URL#model', 'builtin:NAME'."""

    scheme: str
    location: str
    options: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> "TargetSpec":
        if not isinstance(spec, str) or ":" not in spec:
            raise InputError(
                f"target spec '{spec}' has no scheme; use one of hf:PATH, builtin:NAME, openai:URL#MODEL"
            )
        scheme, rest = spec.split(":", 1)
        options: dict[str, str] = {}
        if scheme == "openai":
            # URLs contain ':' themselves; options follow the model as '#model;key=value'.
            location = rest
            if ";" in rest:
                location, opt_text = rest.split(";", 1)
                options = _parse_options(spec, opt_text.split(";"))
        else:
            inner = None
            marker = f":{INNER_OPTION}="
            if marker in rest:
                rest, inner = rest.split(marker, 1)
            parts = rest.split(":")
            location = parts[0]
            options = _parse_options(spec, parts[1:])
            if inner is not None:
                if not inner:
                    raise InputError(f"target spec '{spec}': '{INNER_OPTION}=' names no target")
                options[INNER_OPTION] = inner
        if not location:
            raise InputError(f"target spec '{spec}' names no model after '{scheme}:'")
        return cls(scheme=scheme, location=location, options=options)


def _parse_options(spec: str, items: Sequence[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in items:
        if not item:
            continue
        if "=" not in item:
            raise InputError(f"target spec '{spec}': option '{item}' is not key=value")
        key, value = item.split("=", 1)
        options[key.strip()] = value.strip()
    return options


def load_target(spec: str, **overrides: str) -> Target:
    """Build a target from its spec string; unknown schemes are an input error (exit 2)."""
    parsed = TargetSpec.parse(spec)
    factory = TARGETS.get(parsed.scheme, where=f" in '{spec}'")
    options = {**parsed.options, **overrides}
    return factory(parsed.location, options)
