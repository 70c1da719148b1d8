"""Batched generation with a transformers causal LM: left padding, per-row seeded sampling, stops.

One call of `generate_batch` is one `model.generate` over the rows the engine's batcher put
together; `HFTarget` decides which rows those are (length-sorted, OOM back-off).
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

from privaudit.targets.base import GenerationConfig


def generate_batch(model: Any, tokenizer: Any, batch: Sequence[tuple[str, Sequence[int]]], cfg: GenerationConfig,
                   k: int, device: str, eos_ids: list[int] | None) -> list[list[str]]:
    """`k` continuations of each (text, token ids) prompt in `batch`, one forward batch for all rows."""
    import torch
    from transformers import GenerationConfig as HFGenerationConfig
    from transformers import LogitsProcessorList

    # k samples of a prompt are k adjacent rows (what num_return_sequences would do; transformers
    # only allows that with do_sample=True, and sampling here is done by SeededSampler).
    rows = [ids for _, ids in batch for _ in range(k)]
    input_ids, attention_mask = left_pad(rows, tokenizer.pad_token_id, device)
    gen_cfg = HFGenerationConfig(
        max_new_tokens=cfg.max_new_tokens,
        do_sample=False,  # sampling, when asked, happens in SeededSampler (per-row generators)
        num_beams=1,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=eos_ids,
        bos_token_id=tokenizer.bos_token_id,
        stop_strings=list(cfg.stop) or None,
    )
    processors = LogitsProcessorList()
    if cfg.do_sample:
        seeds = [row_seed(cfg.seed, text, j) for text, _ in batch for j in range(k)]
        processors.append(SeededSampler(seeds, cfg.temperature, cfg.top_k, cfg.top_p, device))
    extra: dict[str, Any] = {"tokenizer": tokenizer} if cfg.stop else {}
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids, attention_mask=attention_mask, generation_config=gen_cfg,
            logits_processor=processors, **extra,
        )
    new_tokens = out[:, input_ids.shape[1] :]
    decoded = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    decoded = [cut_at_stop(t, cfg.stop) for t in decoded]
    return [decoded[i * k : (i + 1) * k] for i in range(len(batch))]


def eos_token_ids(model: Any, tokenizer: Any) -> list[int] | None:
    """Every id that ends a generation: the model's generation config's and the tokenizer's."""
    ids: list[int] = []
    model_eos = getattr(model.generation_config, "eos_token_id", None)
    for value in (model_eos, tokenizer.eos_token_id):
        if value is None:
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if int(v) not in ids:
                ids.append(int(v))
    return ids or None


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


def row_seed(seed: int, text: str, sample: int) -> int:
    digest = hashlib.sha256(f"{seed}\0{sample}\0{text}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device: str):
    """Pads before each prompt, so every row's last real token sits in the last column."""
    import torch

    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        input_ids[row, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
        attention_mask[row, width - len(s) :] = 1
    return input_ids.to(device), attention_mask.to(device)


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    cut = len(text)
    for s in stops:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]
