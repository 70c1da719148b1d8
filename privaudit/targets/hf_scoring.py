"""Teacher-forced log-probs under a causal LM: the one kernel behind a local model's `score`,
`token_logprobs` and `echo_logprobs`, and so behind what `privaudit serve` answers to `echo` +
`logprobs` requests (the request `openai:` scoring sends).

Rows are right-padded by hand (whatever the tokenizer's padding side): with causal attention,
trailing pads never influence real positions and position ids stay 0..n-1 exactly as in an
unpadded forward pass, so a row's log-probs do not depend on its batch mates. Token t is predicted
by the logits at t-1, and only scored positions go through log_softmax, which keeps memory at
(scored tokens x vocab) instead of (rows x width x vocab).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from privaudit.engine.batching import AdaptiveBatcher
from privaudit.targets.base import TokenDistribution, TokenLogprobs

SCORE_BATCH = 8  # rows per forward pass of `hf_token_logprobs` when the caller brings no batcher


@dataclass(frozen=True)
class ScoreItem:
    """One token sequence; its tokens at positions >= `start` (>= 1: they need context) are scored."""

    ids: tuple[int, ...]
    start: int


@dataclass
class TeacherForced:
    """The scored tokens of one batch: row by row, positions ascending (flat tensors, same order)."""

    token_logprobs: Any  # (scored,) float32: log p(token | tokens before it)
    rows: Any  # (scored,) long: the row each scored token belongs to
    counts: list[int]  # scored tokens per row
    top_values: Any = None  # (scored, k) log-probs of the k most likely tokens at each position
    top_ids: Any = None  # (scored, k) their token ids
    means: Any = None  # (scored,) E_{z~p}[log p(z)] at each position (with `stats`)
    stds: Any = None  # (scored,) sqrt(Var_{z~p}[log p(z)]) at each position (with `stats`)

    def sums(self) -> list[float]:
        """Each row's summed log-prob, accumulated in float64 (what `score` returns)."""
        import torch

        sums = torch.zeros(len(self.counts), dtype=torch.float64, device=self.token_logprobs.device)
        sums.index_add_(0, self.rows, self.token_logprobs.double())
        return [float(s) for s in sums.cpu()]

    def per_row(self, values: Any = None) -> list[list[float]]:
        """Each row's per-token log-probs (what `token_logprobs` returns), or `values`' split by row."""
        flat = (self.token_logprobs if values is None else values).cpu().tolist()
        out, pos = [], 0
        for n in self.counts:
            out.append(flat[pos : pos + n])
            pos += n
        return out

    def distributions(self) -> list[TokenDistribution]:
        """Each row's log-probs with its positions' means and stds (needs `teacher_forced(stats=True)`)."""
        if self.means is None or self.stds is None:
            raise ValueError("teacher_forced ran without stats=True")
        return [TokenDistribution(lp, mu, sd)
                for lp, mu, sd in zip(self.per_row(), self.per_row(self.means), self.per_row(self.stds))]


def distribution_stats(logp: Any) -> tuple[Any, Any]:
    """Mean and std of log p(z) for z ~ p, per row of a (positions x vocab) log-softmax (Min-K%++'s mu, sigma).

    Terms where p(z) underflows to 0 contribute 0 (their weight), not 0 * -inf.
    """
    import torch

    p = logp.exp()
    finite = p > 0
    mu = torch.where(finite, p * logp, torch.zeros_like(logp)).sum(-1)
    var = torch.where(finite, p * (logp - mu.unsqueeze(-1)) ** 2, torch.zeros_like(logp)).sum(-1)
    return mu, var.clamp_min(0).sqrt()


def teacher_forced(model: Any, batch: Sequence[ScoreItem], pad_id: int, device: Any, top_k: int = 0,
                   stats: bool = False) -> TeacherForced:
    """One forward pass over `batch`; log-probs of every scored token (and its top-k alternatives;
    with `stats`, the mean and std of log p over each position's next-token distribution)."""
    import torch

    width = max(1, max(len(it.ids) for it in batch))
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    target_mask = torch.zeros((len(batch), width), dtype=torch.bool)  # True where token t is scored
    for row, it in enumerate(batch):
        input_ids[row, : len(it.ids)] = torch.tensor(it.ids, dtype=torch.long)
        attention_mask[row, : len(it.ids)] = 1
        target_mask[row, it.start : len(it.ids)] = True
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    target_mask = target_mask.to(device)
    with torch.inference_mode():
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        pred_mask = target_mask[:, 1:]
        picked = logits[:, :-1][pred_mask].float().log_softmax(-1)
        targets = input_ids[:, 1:][pred_mask]
        token_lp = picked.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        rows = torch.arange(len(batch), device=input_ids.device).unsqueeze(1).expand_as(pred_mask)[pred_mask]
        top_values = top_ids = None
        if top_k > 0 and picked.shape[0] > 0:
            top_values, top_ids = torch.topk(picked, k=min(top_k, picked.shape[-1]), dim=-1)
        means, stds = distribution_stats(picked) if stats else (None, None)
    counts = [int(c) for c in pred_mask.sum(dim=1).cpu()]
    return TeacherForced(token_lp, rows, counts, top_values, top_ids, means, stds)


def hf_token_logprobs(model: Any, tokenizer: Any, texts: Sequence[str], top_k: int = 0, device: Any = None,
                      batcher: AdaptiveBatcher | None = None) -> list[TokenLogprobs]:
    """Per-token log-probs and character offsets of each whole text (the completions API's `logprobs`).

    Each text is tokenized once with offsets, BOS included where the tokenizer adds one (so the
    first real token has a log-prob; without BOS it has None). Special tokens are not reported.
    `batcher` (a target's, with its size and OOM back-off) groups the texts into forward passes.
    """
    if not texts:
        return []
    enc = tokenizer(list(texts), add_special_tokens=True, return_offsets_mapping=True,
                    return_special_tokens_mask=True)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    device = device if device is not None else next(model.parameters()).device
    items = [ScoreItem(ids=tuple(seq), start=1) for seq in enc["input_ids"]]

    def run(batch: list[tuple[int, ScoreItem]]) -> list[TokenLogprobs]:
        scored = teacher_forced(model, [it for _, it in batch], pad_id, device, top_k)
        values = scored.token_logprobs.cpu().tolist()
        top_vals = scored.top_values.cpu().tolist() if scored.top_values is not None else None
        top_ids = scored.top_ids.cpu().tolist() if scored.top_ids is not None else None
        out, pos = [], 0
        for (r, _), n in zip(batch, scored.counts):
            out.append(_token_view(tokenizer, texts[r], enc, r, values[pos : pos + n],
                                   top_vals[pos : pos + n] if top_vals else None,
                                   top_ids[pos : pos + n] if top_ids else None))
            pos += n
        return out

    batcher = batcher if batcher is not None else AdaptiveBatcher(SCORE_BATCH)
    return batcher.map(list(enumerate(items)), [len(it.ids) for it in items], run)


def _token_view(tokenizer: Any, text: str, enc: Any, r: int, values: list[float],
                top_vals: list[list[float]] | None, top_ids: list[list[int]] | None) -> TokenLogprobs:
    """One text's non-special tokens with their offsets, log-probs (position t is values[t-1]) and top-k."""
    seq, special, offsets = enc["input_ids"][r], enc["special_tokens_mask"][r], enc["offset_mapping"][r]
    tokens: list[str] = []
    lps: list[float | None] = []
    starts: list[int] = []
    tops: list[dict[str, float] | None] = []
    for t in range(len(seq)):
        if special[t]:
            continue
        s, e = offsets[t]
        tokens.append(text[s:e])
        starts.append(int(s))
        if t == 0:  # nothing before it to condition on
            lps.append(None)
            tops.append(None)
            continue
        lps.append(float(values[t - 1]))
        if top_vals is not None and top_ids is not None:
            top: dict[str, float] = {}
            for v, i in zip(top_vals[t - 1], top_ids[t - 1]):  # most likely first: where two ids decode
                top.setdefault(tokenizer.decode([int(i)]), float(v))  # to one string, the likelier counts
            tops.append(top)
        else:
            tops.append(None)
    return TokenLogprobs(tokens, lps, starts, tops)
