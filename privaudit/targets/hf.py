"""`hf:PATH|ORG/NAME[:adapter=PATH|ORG/NAME][:device=cpu|cuda][:dtype=...][:batch_size=N]`: a local
transformers causal LM.

The white-box backend: batched generation (left padding), batched teacher-forced scoring and
per-token log-probs, chat via the tokenizer's chat template, and the model itself (`.model`,
`.tokenizer`, `.device`) for attacks and defenses that need gradients. Nothing is ever downloaded:
a folder loads `local_files_only`, and a hub id resolves from the local Hugging Face cache.
The jobs live in their own modules: `hf_checkpoint` (spec options, file checks, fingerprint,
loading), `hf_hub_cache` (model ids), `hf_generation` and `hf_scoring` (the kernels); this module
is the Target that puts them behind the contract and batches their rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from privaudit.engine.batching import AdaptiveBatcher, release_memory
from privaudit.engine.hashing import file_sha256, privaudit_cache_root  # noqa: F401  (re-exported for builtin)
from privaudit.errors import CapabilityError, InputError
from privaudit.targets.base import (
    CHAT,
    GENERATE,
    GRADIENTS,
    SCORE,
    TOKEN_DISTRIBUTION,
    TOKEN_LOGPROBS,
    GenerationConfig,
    Message,
    TokenDistribution,
    TokenLogprobs,
    register_fingerprint,
    register_target,
)
from privaudit.targets.hf_checkpoint import (  # noqa: F401  (public names re-exported from their old home)
    DTYPES,
    FINGERPRINT_PATTERNS,
    OPTIONS,
    TOKENIZER_FILES,
    check_checkpoint,
    checkpoint_fingerprint,
    first_line,
    load_model,
    load_tokenizer,
    parse_hf_options,
    resolve_device,
    resolve_dtype,
)
from privaudit.targets.hf_generation import (  # noqa: F401
    SeededSampler,
    cut_at_stop,
    eos_token_ids,
    generate_batch,
    left_pad,
    row_seed,
)
from privaudit.targets.hf_hub_cache import resolve_model_location
from privaudit.targets.hf_scoring import ScoreItem, hf_token_logprobs, teacher_forced

# Old private names, kept importable for tests and benchmarks written against them.
_left_pad = left_pad
_row_seed = row_seed
_cut_at_stop = cut_at_stop
_first_line = first_line
_ScoreItem = ScoreItem


@register_target("hf")
def hf_target_factory(location: str, options: Mapping[str, str]) -> "HFTarget":
    """Build an HFTarget from a parsed spec; unknown or malformed options are input errors."""
    batch_size = parse_hf_options(f"hf:{location}", options)
    return HFTarget(
        location, adapter=options.get("adapter"), device=options.get("device"), dtype=options.get("dtype"),
        batch_size=batch_size,
    )


@register_fingerprint("hf")
def hf_spec_fingerprint(location: str, options: Mapping[str, str]) -> str:
    """The fingerprint `hf:LOCATION[:options]` would have once loaded, from its files alone (no model load)."""
    parse_hf_options(f"hf:{location}", options)
    return HFTarget.spec_fingerprint(location, adapter=options.get("adapter"), device=options.get("device"),
                                     dtype=options.get("dtype"))


def _resolve_folders(model: str | Path, adapter: str | Path | None) -> tuple[Path, Path | None, str | None, str | None]:
    """Folders of the model and adapter (hub ids resolved from the cache) and the ids they came from."""
    model_path, model_id = resolve_model_location(model, "model")
    adapter_path, adapter_id = resolve_model_location(adapter, "adapter") if adapter else (None, None)
    return model_path, adapter_path, model_id, adapter_id


class HFTarget:
    """A local causal LM (optionally with a PEFT adapter) behind the Target contract.

    `batch_size` counts sequences on the device at once (k samples of one prompt are k rows). None
    (the default, an `hf:` spec without `:batch_size=`) follows the run's `--batch-size`; after an
    out-of-memory error the size halves and stays halved for this target.
    """

    def __init__(
        self,
        model_path: str | Path,
        adapter: str | Path | None = None,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int | None = None,
        *,
        name: str | None = None,
    ) -> None:
        if batch_size is not None and batch_size < 1:
            raise InputError(f"target 'hf:{model_path}': batch_size must be >= 1, got {batch_size}")
        self.model_path, self.adapter_path, self.model_id, self.adapter_id = _resolve_folders(model_path, adapter)
        tokenizer_dir = check_checkpoint(self.model_path, self.adapter_path)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        # A hub id names the target by the id, so its records read (and resume) by what the user wrote.
        shown_model = self.model_id or self.model_path
        shown_adapter = self.adapter_id or self.adapter_path
        self.name = name or f"hf:{shown_model}" + (f":adapter={shown_adapter}" if shown_adapter else "")
        self.tokenizer = load_tokenizer(tokenizer_dir)
        self.model = load_model(self.model_path, self.adapter_path, self.dtype, self.device, self.tokenizer)
        self._batcher: AdaptiveBatcher = AdaptiveBatcher(batch_size)
        self._fingerprint: str | None = None
        caps = {GENERATE, SCORE, TOKEN_LOGPROBS, TOKEN_DISTRIBUTION, GRADIENTS}
        if getattr(self.tokenizer, "chat_template", None):
            caps.add(CHAT)
        self.capabilities = frozenset(caps)
        self._prefix_ids = self._special_prefix()

    # ---------------------------------------------------------------------------------- tokenization
    def _special_prefix(self) -> tuple[int, ...]:
        """Token ids the tokenizer puts before text by default (BOS for Llama-style, none for GPT-2)."""
        probe = "a"
        with_special = self.tokenizer(probe).input_ids
        without = self.tokenizer(probe, add_special_tokens=False).input_ids
        for start in range(len(with_special) - len(without) + 1):
            if with_special[start : start + len(without)] == without:
                return tuple(with_special[:start])
        return ()

    @property
    def batch_size(self) -> int:
        """Rows per forward pass now: the spec's `batch_size`, else the run's, capped after an OOM."""
        return self._batcher.batch_size

    def _start_token(self) -> int:
        tok = self.tokenizer
        for tid in (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id):
            if tid is not None:
                return int(tid)
        return 0

    def _encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = list(self._prefix_ids) if add_special_tokens else []
        ids += self.tokenizer(text, add_special_tokens=False).input_ids
        return ids or [self._start_token()]  # an empty prompt still needs one token to condition on

    # -------------------------------------------------------------------------------------- generation
    def generate(self, prompts: Sequence[str], cfg: GenerationConfig) -> list[list[str]]:
        return self._generate_texts(list(prompts), cfg, add_special_tokens=True)

    def chat(self, conversations: Sequence[Sequence[Message]], cfg: GenerationConfig) -> list[list[str]]:
        if CHAT not in self.capabilities:
            raise CapabilityError(f"target '{self.name}' has no chat template, so it cannot chat")
        texts = [
            self.tokenizer.apply_chat_template([dict(m) for m in conv], tokenize=False, add_generation_prompt=True)
            for conv in conversations
        ]
        # The rendered template already holds the special tokens it wants (BOS, role markers).
        return self._generate_texts(texts, cfg, add_special_tokens=False)

    def _generate_texts(self, texts: list[str], cfg: GenerationConfig, *, add_special_tokens: bool) -> list[list[str]]:
        if not texts:
            return []
        encoded = [self._encode(t, add_special_tokens) for t in texts]
        k = cfg.num_samples if cfg.do_sample else 1
        items = list(zip(texts, encoded))
        outs = self._batcher.map(items, [len(e) for e in encoded], lambda batch: self._generate_batch(batch, cfg, k), cost=k)
        if not cfg.do_sample:
            # Greedy decoding is deterministic: compute once, repeat for the k requested samples.
            outs = [o * cfg.num_samples for o in outs]
        return outs

    def _generate_batch(self, batch: list[tuple[str, list[int]]], cfg: GenerationConfig, k: int) -> list[list[str]]:
        return generate_batch(self.model, self.tokenizer, batch, cfg, k, self.device, self._eos_ids())

    def _eos_ids(self) -> list[int] | None:
        return eos_token_ids(self.model, self.tokenizer)

    # ----------------------------------------------------------------------------------------- scoring
    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        """Sum of natural-log probabilities of each continuation's tokens given its prompt.

        Tokenization follows lm-evaluation-harness: trailing whitespace of the prompt moves to the
        continuation (BPE tokenizers attach a space to the following word), then the *joint* text
        is tokenized once, so the model is scored on the canonical tokenization it was trained on.
        The scored tokens start where the joint tokens stop agreeing with the prompt's own tokens;
        when a merge crosses the boundary, the merged token (which holds continuation text) is scored.
        """
        items = self._score_items("score", prompts, continuations)
        return self._batcher.map(items, [len(it.ids) for it in items], self._score_batch) if items else []

    def token_logprobs(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[list[float]]:
        """Per-token natural-log probabilities of each continuation given its prompt (what `score` sums).

        Membership scores such as min-k% prob (Shi et al., ICLR 2024) need the individual tokens'
        values, not only their sum; tokenization is exactly `score`'s.
        """
        items = self._score_items("token_logprobs", prompts, continuations)
        return self._batcher.map(items, [len(it.ids) for it in items], self._token_logprobs_batch) if items else []

    def token_distributions(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[TokenDistribution]:
        """`token_logprobs` plus each position's mean and std of log p over the vocabulary (Min-K%++),
        from the same forward pass's full logits; tokenization is exactly `score`'s."""
        items = self._score_items("token_distributions", prompts, continuations)
        return self._batcher.map(items, [len(it.ids) for it in items], self._distributions_batch) if items else []

    def echo_logprobs(self, texts: Sequence[str], top_k: int = 0) -> list[TokenLogprobs]:
        """Every token of each text with offsets, log-probs and top-k (`privaudit serve`'s echo/logprobs)."""
        return hf_token_logprobs(self.model, self.tokenizer, texts, top_k, self.device, self._batcher)

    def _score_items(self, what: str, prompts: Sequence[str], continuations: Sequence[str]) -> list[ScoreItem]:
        if len(prompts) != len(continuations):
            raise InputError(f"{what}: {len(prompts)} prompts but {len(continuations)} continuations")
        return [self._score_item(p, c) for p, c in zip(prompts, continuations)]

    def _score_item(self, prompt: str, continuation: str) -> ScoreItem:
        if not continuation:
            return ScoreItem(ids=(self._start_token(),), start=1)  # empty continuation: log-prob 0
        stripped = prompt.rstrip()
        continuation = prompt[len(stripped) :] + continuation
        if stripped or self._prefix_ids:
            prompt_ids = self._encode(stripped)
            joint = self._encode(stripped + continuation)
        else:  # no prompt and no BOS: condition the first token on the start token (GPT-2's convention)
            prompt_ids = [self._start_token()]
            joint = prompt_ids + self.tokenizer(continuation, add_special_tokens=False).input_ids
        start = 0
        while start < min(len(prompt_ids), len(joint)) and prompt_ids[start] == joint[start]:
            start += 1
        return ScoreItem(ids=tuple(joint), start=max(1, start))

    def _score_batch(self, batch: list[ScoreItem]) -> list[float]:
        return teacher_forced(self.model, batch, self.tokenizer.pad_token_id, self.device).sums()

    def _token_logprobs_batch(self, batch: list[ScoreItem]) -> list[list[float]]:
        return teacher_forced(self.model, batch, self.tokenizer.pad_token_id, self.device).per_row()

    def _distributions_batch(self, batch: list[ScoreItem]) -> list[TokenDistribution]:
        return teacher_forced(self.model, batch, self.tokenizer.pad_token_id, self.device, stats=True).distributions()

    # ------------------------------------------------------------------------------------- provenance
    def fingerprint(self) -> str:
        """sha256 over the bytes of config, weights, tokenizer (and adapter) files, plus the dtype."""
        if self._fingerprint is None:
            self._fingerprint = checkpoint_fingerprint(self.model_path, self.adapter_path, self.dtype)
        return self._fingerprint

    @classmethod
    def spec_fingerprint(cls, model_path: str | Path, adapter: str | Path | None = None, device: str | None = None,
                         dtype: str | None = None) -> str:
        """What `fingerprint()` of HFTarget(model_path, adapter, device, dtype) returns, without loading it.

        Hashes files only (memoized by file signature, see privaudit.engine.hashing), so checking a
        resumed run's target costs no model load and, for unchanged files, no re-hash. Hub ids
        resolve from the cache exactly as a load would.
        """
        model, adapter_path, _, _ = _resolve_folders(model_path, adapter)
        check_checkpoint(model, adapter_path)
        return checkpoint_fingerprint(model, adapter_path, resolve_dtype(dtype, resolve_device(device)))

    def close(self) -> None:
        self.model = None
        release_memory()

    def __repr__(self) -> str:
        return f"HFTarget({self.name!r}, device={self.device!r}, dtype={self.dtype}, batch_size={self.batch_size})"
