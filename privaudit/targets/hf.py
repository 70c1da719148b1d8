"""`hf:PATH[:adapter=PATH][:device=cpu|cuda][:dtype=...][:batch_size=N]`: a local transformers causal LM.

The white-box backend: batched generation (left padding), batched teacher-forced scoring, chat via
the tokenizer's chat template, and the model itself (`.model`, `.tokenizer`, `.device`) for attacks
and defenses that need gradients. Nothing is ever downloaded: loading is `local_files_only`.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from privaudit.engine.batching import AdaptiveBatcher, release_memory
from privaudit.engine.hashing import file_sha256, privaudit_cache_root  # noqa: F401  (re-exported for builtin)
from privaudit.errors import CapabilityError, InputError, TargetError
from privaudit.targets.base import (
    CHAT,
    GENERATE,
    GRADIENTS,
    SCORE,
    GenerationConfig,
    Message,
    register_fingerprint,
    register_target,
)

os.environ["HF_HUB_OFFLINE"] = "1"  # a local backend never talks to a hub, whatever the user's env says
os.environ["TRANSFORMERS_OFFLINE"] = "1"

DTYPES = ("float32", "bfloat16", "float16")
OPTIONS = ("adapter", "device", "dtype", "batch_size")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "spiece.model")
# Files whose bytes decide what the model outputs (weights, architecture, tokenizer, chat template).
FINGERPRINT_PATTERNS = (
    "config.json", "*.safetensors", "*.bin", "*.pt", "adapter_config.json",
    "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "merges.txt",
    "special_tokens_map.json", "chat_template.jinja", "chat_template.json",
)


def _parse_options(location: str, options: Mapping[str, str]) -> int:
    """Check an hf: spec's options; returns its batch size."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise InputError(f"target 'hf:{location}': unknown option(s) {', '.join(unknown)} (known: {', '.join(OPTIONS)})")
    batch_size = 16
    if "batch_size" in options:
        try:
            batch_size = int(options["batch_size"])
        except ValueError:
            raise InputError(f"target 'hf:{location}': batch_size must be an integer, got '{options['batch_size']}'") from None
    return batch_size


@register_target("hf")
def hf_target_factory(location: str, options: Mapping[str, str]) -> "HFTarget":
    """Build an HFTarget from a parsed spec; unknown or malformed options are input errors."""
    batch_size = _parse_options(location, options)
    return HFTarget(
        location, adapter=options.get("adapter"), device=options.get("device"), dtype=options.get("dtype"),
        batch_size=batch_size,
    )


@register_fingerprint("hf")
def hf_spec_fingerprint(location: str, options: Mapping[str, str]) -> str:
    """The fingerprint `hf:LOCATION[:options]` would have once loaded, from its files alone (no model load)."""
    _parse_options(location, options)
    return HFTarget.spec_fingerprint(location, adapter=options.get("adapter"), device=options.get("device"),
                                     dtype=options.get("dtype"))


def checkpoint_fingerprint(model_path: Path, adapter_path: Path | None, dtype: Any) -> str:
    """sha256 over the bytes of config, weights, tokenizer (and adapter) files, plus the dtype.

    A pure function of files on disk, so a resumed run can check its target without loading it.
    """
    h = hashlib.sha256()
    for folder in [model_path] + ([adapter_path] if adapter_path else []):
        for f in _fingerprint_files(folder):
            h.update(f.name.encode() + b"\0" + file_sha256(f).encode() + b"\0")
    h.update(str(dtype).encode())
    return h.hexdigest()


def _check_checkpoint(model_path: Path, adapter_path: Path | None) -> Path:
    """Check the folders hold a loadable checkpoint (cheap file tests); returns the tokenizer's folder."""
    _check_folder(model_path, "model")
    if adapter_path is not None:
        _check_folder(adapter_path, "adapter")
        if not (adapter_path / "adapter_config.json").is_file():
            raise InputError(f"{adapter_path}: adapter folder has no adapter_config.json (not a PEFT adapter)")
    if not (model_path / "config.json").is_file():
        raise InputError(f"{model_path}: model folder has no config.json (not a transformers checkpoint)")
    tokenizer_dir = adapter_path if adapter_path and _has_tokenizer(adapter_path) else model_path
    if not _has_tokenizer(tokenizer_dir):
        raise InputError(
            f"{model_path}: model folder has no tokenizer (expected one of {', '.join(TOKENIZER_FILES)}); "
            f"save it with tokenizer.save_pretrained"
        )
    return tokenizer_dir


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def _check_folder(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{path}: {what} folder does not exist")
    if not path.is_dir():
        raise InputError(f"{path}: {what} is not a folder")


def _resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device '{device}' requested but no CUDA device is available (use device=cpu)")
    if device != "cpu" and not device.startswith("cuda"):
        raise InputError(f"device '{device}' is not one of cpu, cuda, cuda:N, auto")
    return device


def _resolve_dtype(dtype: str | None, device: str):
    """fp32 on CPU (bf16 matmuls are slow there and scores lose precision); bf16 on GPUs by default."""
    import torch

    if dtype in (None, "", "auto"):
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if dtype not in DTYPES:
        raise InputError(f"dtype '{dtype}' is not one of {', '.join(DTYPES)}")
    return getattr(torch, dtype)


@dataclass(frozen=True)
class _ScoreItem:
    """One (prompt, continuation) pair as token ids; tokens at positions >= `start` are scored."""

    ids: tuple[int, ...]
    start: int


class HFTarget:
    """A local causal LM (optionally with a PEFT adapter) behind the Target contract.

    `batch_size` counts sequences on the device at once (k samples of one prompt are k rows); after an
    out-of-memory error it halves and stays halved for this target.
    """

    def __init__(
        self,
        model_path: str | Path,
        adapter: str | Path | None = None,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 16,
        *,
        name: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise InputError(f"target 'hf:{model_path}': batch_size must be >= 1, got {batch_size}")
        self.model_path = Path(model_path).expanduser()
        self.adapter_path = Path(adapter).expanduser() if adapter else None
        tokenizer_dir = _check_checkpoint(self.model_path, self.adapter_path)
        self.device = _resolve_device(device)
        self.dtype = _resolve_dtype(dtype, self.device)
        self.name = name or f"hf:{self.model_path}" + (f":adapter={self.adapter_path}" if self.adapter_path else "")
        self.tokenizer = self._load_tokenizer(tokenizer_dir)
        self.model = self._load_model()
        self._batcher: AdaptiveBatcher = AdaptiveBatcher(batch_size)
        self._fingerprint: str | None = None
        caps = {GENERATE, SCORE, GRADIENTS}
        if getattr(self.tokenizer, "chat_template", None):
            caps.add(CHAT)
        self.capabilities = frozenset(caps)
        self._prefix_ids = self._special_prefix()

    # ----------------------------------------------------------------------------------------- loading
    def _load_tokenizer(self, folder: Path):
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise TargetError(f"{folder}: cannot load tokenizer: {_first_line(exc)}") from exc
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            # Padding is masked out everywhere, so any existing token id serves as the pad value.
            tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.convert_ids_to_tokens(0)
        return tok

    def _load_model(self):
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        try:
            model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=self.dtype, local_files_only=True)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise TargetError(f"{self.model_path}: cannot load model: {_first_line(exc)}") from exc
        if self.adapter_path is not None:
            from peft import PeftModel

            try:
                with warnings.catch_warnings():  # peft calls a transformers API deprecated in 5.x: noise for users
                    warnings.simplefilter("ignore", FutureWarning)
                    model = PeftModel.from_pretrained(model, self.adapter_path, is_trainable=False)
            except Exception as exc:  # any failure to attach means wrong base model or a corrupt adapter
                raise TargetError(
                    f"{self.adapter_path}: adapter does not match base model {self.model_path}: {_first_line(exc)}"
                ) from exc
        model.to(self.device)
        model.eval()
        vocab = model.get_output_embeddings().weight.shape[0]
        if len(self.tokenizer) > vocab:
            raise TargetError(
                f"{self.model_path}: tokenizer has {len(self.tokenizer)} tokens but the model only {vocab} "
                f"(tokenizer from a different model?)"
            )
        return model

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
        import torch
        from transformers import GenerationConfig as HFGenerationConfig
        from transformers import LogitsProcessorList

        # k samples of a prompt are k adjacent rows (what num_return_sequences would do; transformers
        # only allows that with do_sample=True, and sampling here is done by SeededSampler).
        rows = [ids for _, ids in batch for _ in range(k)]
        input_ids, attention_mask = _left_pad(rows, self.tokenizer.pad_token_id, self.device)
        gen_cfg = HFGenerationConfig(
            max_new_tokens=cfg.max_new_tokens,
            do_sample=False,  # sampling, when asked, happens in SeededSampler (per-row generators)
            num_beams=1,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self._eos_ids(),
            bos_token_id=self.tokenizer.bos_token_id,
            stop_strings=list(cfg.stop) or None,
        )
        processors = LogitsProcessorList()
        if cfg.do_sample:
            seeds = [_row_seed(cfg.seed, text, j) for text, _ in batch for j in range(k)]
            processors.append(SeededSampler(seeds, cfg.temperature, cfg.top_k, cfg.top_p, self.device))
        extra: dict[str, Any] = {"tokenizer": self.tokenizer} if cfg.stop else {}
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids, attention_mask=attention_mask, generation_config=gen_cfg,
                logits_processor=processors, **extra,
            )
        new_tokens = out[:, input_ids.shape[1] :]
        decoded = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        decoded = [_cut_at_stop(t, cfg.stop) for t in decoded]
        return [decoded[i * k : (i + 1) * k] for i in range(len(batch))]

    def _eos_ids(self) -> list[int] | None:
        ids: list[int] = []
        model_eos = getattr(self.model.generation_config, "eos_token_id", None)
        for value in (model_eos, self.tokenizer.eos_token_id):
            if value is None:
                continue
            for v in value if isinstance(value, (list, tuple)) else [value]:
                if int(v) not in ids:
                    ids.append(int(v))
        return ids or None

    # ----------------------------------------------------------------------------------------- scoring
    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        """Sum of natural-log probabilities of each continuation's tokens given its prompt.

        Tokenization follows lm-evaluation-harness: trailing whitespace of the prompt moves to the
        continuation (BPE tokenizers attach a space to the following word), then the *joint* text
        is tokenized once, so the model is scored on the canonical tokenization it was trained on.
        The scored tokens start where the joint tokens stop agreeing with the prompt's own tokens;
        when a merge crosses the boundary, the merged token (which holds continuation text) is scored.
        """
        if len(prompts) != len(continuations):
            raise InputError(f"score: {len(prompts)} prompts but {len(continuations)} continuations")
        if not prompts:
            return []
        items = [self._score_item(p, c) for p, c in zip(prompts, continuations)]
        return self._batcher.map(items, [len(it.ids) for it in items], self._score_batch)

    def _score_item(self, prompt: str, continuation: str) -> _ScoreItem:
        if not continuation:
            return _ScoreItem(ids=(self._start_token(),), start=1)  # empty continuation: log-prob 0
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
        return _ScoreItem(ids=tuple(joint), start=max(1, start))

    def _score_batch(self, batch: list[_ScoreItem]) -> list[float]:
        import torch

        # Right padding: causal attention means trailing pads never influence real positions, and
        # position ids stay 0..n-1 exactly as in an unbatched forward pass.
        width = max(len(it.ids) for it in batch)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        target_mask = torch.zeros((len(batch), width), dtype=torch.bool)  # True where token t is scored
        for row, it in enumerate(batch):
            input_ids[row, : len(it.ids)] = torch.tensor(it.ids)
            attention_mask[row, : len(it.ids)] = 1
            target_mask[row, it.start : len(it.ids)] = True
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        target_mask = target_mask.to(self.device)
        with torch.inference_mode():
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
            # Token t is predicted by the logits at t-1; only scored positions go through log_softmax,
            # which keeps memory at (scored tokens x vocab) instead of (batch x width x vocab).
            pred_mask = target_mask[:, 1:]
            picked = logits[:, :-1][pred_mask].float().log_softmax(-1)
            targets = input_ids[:, 1:][pred_mask]
            token_lp = picked.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            rows = torch.arange(len(batch), device=self.device).unsqueeze(1).expand_as(pred_mask)[pred_mask]
            sums = torch.zeros(len(batch), dtype=torch.float64, device=self.device)
            sums.index_add_(0, rows, token_lp.double())
        return [float(s) for s in sums.cpu()]

    def token_logprobs(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[list[float]]:
        """Per-token natural-log probabilities of each continuation given its prompt (what `score` sums).

        Membership scores such as min-k% prob (Shi et al., ICLR 2024) need the individual tokens'
        values, not only their sum; tokenization is exactly `score`'s.
        """
        if len(prompts) != len(continuations):
            raise InputError(f"token_logprobs: {len(prompts)} prompts but {len(continuations)} continuations")
        if not prompts:
            return []
        items = [self._score_item(p, c) for p, c in zip(prompts, continuations)]
        return self._batcher.map(items, [len(it.ids) for it in items], self._token_logprobs_batch)

    def _token_logprobs_batch(self, batch: list[_ScoreItem]) -> list[list[float]]:
        import torch

        width = max(len(it.ids) for it in batch)
        input_ids = torch.full((len(batch), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, it in enumerate(batch):
            input_ids[row, : len(it.ids)] = torch.tensor(it.ids)
            attention_mask[row, : len(it.ids)] = 1
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        out: list[list[float]] = []
        with torch.inference_mode():
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
            for row, it in enumerate(batch):
                if it.start >= len(it.ids):
                    out.append([])
                    continue
                # token t is predicted by the logits at t-1 (same convention as _score_batch)
                lp = logits[row, it.start - 1 : len(it.ids) - 1].float().log_softmax(-1)
                targets = input_ids[row, it.start : len(it.ids)]
                out.append([float(v) for v in lp.gather(-1, targets.unsqueeze(-1)).squeeze(-1).cpu()])
        return out

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
        resumed run's target costs no model load and, for unchanged files, no re-hash.
        """
        model = Path(model_path).expanduser()
        adapter_path = Path(adapter).expanduser() if adapter else None
        _check_checkpoint(model, adapter_path)
        return checkpoint_fingerprint(model, adapter_path, _resolve_dtype(dtype, _resolve_device(device)))

    def close(self) -> None:
        self.model = None
        release_memory()

    def __repr__(self) -> str:
        return f"HFTarget({self.name!r}, device={self.device!r}, dtype={self.dtype}, batch_size={self.batch_size})"


class SeededSampler:
    """Samples each row's next token with that row's own RNG, then forces it through greedy search.

    Why not `do_sample=True`: transformers draws from the global RNG, so a prompt's samples depend on
    which other prompts share its batch (and on length bucketing, resumes, cache hits). Seeding each
    row from (seed, prompt text, sample index) makes a prompt's k samples reproducible on their own,
    up to float rounding differences between batched and unbatched logits.
    """

    def __init__(self, seeds: Sequence[int], temperature: float, top_k: int, top_p: float, device: str) -> None:
        import torch

        self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p

    def __call__(self, input_ids, scores):
        import torch

        logits = scores.float() / self.temperature
        if self.top_k and self.top_k > 0:
            kth = torch.topk(logits, min(self.top_k, logits.shape[-1]), dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.top_p < 1.0:
            sorted_logits, sorted_idx = torch.sort(logits, descending=True, dim=-1)
            probs = sorted_logits.softmax(-1)
            # drop a token when the tokens ranked above it already cover top_p (the first always stays)
            drop_sorted = (probs.cumsum(-1) - probs) >= self.top_p
            drop = drop_sorted.scatter(-1, sorted_idx, drop_sorted)
            logits = logits.masked_fill(drop, float("-inf"))
        probs = logits.softmax(-1)
        choice = torch.cat([torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(self.generators)])
        forced = torch.full_like(scores, float("-inf"))
        forced.scatter_(1, choice.unsqueeze(1), 0.0)
        return forced


def _row_seed(seed: int, text: str, sample: int) -> int:
    digest = hashlib.sha256(f"{seed}\0{sample}\0{text}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device: str):
    import torch

    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        input_ids[row, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
        attention_mask[row, width - len(s) :] = 1
    return input_ids.to(device), attention_mask.to(device)


def _cut_at_stop(text: str, stops: Sequence[str]) -> str:
    cut = len(text)
    for s in stops:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]


def _first_line(exc: BaseException) -> str:
    """The most telling line of a library error (torch's state-dict errors put the cause on line 2+)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
    telling = next((ln for ln in lines if "size mismatch" in ln or "not found" in ln), lines[0])
    return telling[:300]


def _fingerprint_files(folder: Path) -> list[Path]:
    seen: dict[str, Path] = {}
    for pattern in FINGERPRINT_PATTERNS:
        for f in folder.glob(pattern):
            if f.is_file():
                seen[f.name] = f
    return [seen[n] for n in sorted(seen)]
