"""ProPILE's white-box probe: a soft prompt tuned on subjects whose PII the auditor knows.

ProPILE (Kim et al., NeurIPS 2023, Sec. 3.3) shows that a service provider with model access can
probe much harder than hand-written templates: learn a few continuous prompt vectors (prompt tuning,
Lester et al. 2021) prepended to the template embeddings, maximizing the log-likelihood of the true
PII of a small set of known subjects, then extract the PII of *other* subjects. The model stays
frozen: only the soft prompt trains, seeded, so the measured lift is about what the weights already
hold. One soft prompt is learned per PII type, and the lift over the same templates without it is
reported on the evaluation subjects only.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from privaudit.attacks.base import RunContext, batched
from privaudit.attacks.pii_matching import match_outputs
from privaudit.attacks.pii_probes import Probe
from privaudit.errors import CapabilityError, InputError
from privaudit.targets.base import GRADIENTS, GenerationConfig, Target

SOFT_PROMPT_KIND = "soft_prompt"


@dataclass(frozen=True)
class SoftPromptConfig:
    """How to tune: number of vectors, optimizer steps, learning rate, minibatch size, seed."""

    num_tokens: int = 8
    steps: int = 150
    learning_rate: float = 0.03
    batch_size: int = 16
    seed: int = 0


@dataclass
class WhiteBox:
    """The pieces of a local model the probe needs: the module, its tokenizer and device."""

    model: Any
    tokenizer: Any
    device: str

    @classmethod
    def of(cls, target: Target) -> "WhiteBox":
        """The white-box parts of `target` (through a cache wrapper too); CapabilityError otherwise."""
        model = getattr(target, "model", None)
        tokenizer = getattr(target, "tokenizer", None)
        if GRADIENTS not in target.capabilities or model is None or tokenizer is None:
            raise CapabilityError(
                f"target '{target.name}' exposes no model weights ('gradients' capability): the soft-prompt "
                "probe needs a local hf: or builtin: target"
            )
        return cls(model=model, tokenizer=tokenizer, device=str(getattr(target, "device", "cpu")))

    def special_prefix(self) -> list[int]:
        """Token ids the tokenizer puts before text (BOS for Llama-style tokenizers, none for GPT-2)."""
        with_special = self.tokenizer("a").input_ids
        without = self.tokenizer("a", add_special_tokens=False).input_ids
        for start in range(len(with_special) - len(without) + 1):
            if with_special[start : start + len(without)] == without:
                return list(with_special[:start])
        return []

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def pad_id(self) -> int:
        tok = self.tokenizer
        for tid in (tok.pad_token_id, tok.eos_token_id, 0):
            if tid is not None:
                return int(tid)
        return 0


def _embed(wb: WhiteBox, ids: Sequence[int]):
    import torch

    emb = wb.model.get_input_embeddings()
    return emb(torch.tensor(list(ids), dtype=torch.long, device=emb.weight.device))


def _with_soft(wb: WhiteBox, soft, prefix: list[int], prompt_ids: list[int]):
    """Embeddings of [special prefix] + soft prompt + template tokens, in the model's dtype."""
    import torch

    emb = wb.model.get_input_embeddings()
    parts = []
    if prefix:
        parts.append(_embed(wb, prefix))
    if soft is not None and soft.shape[0]:
        parts.append(soft.to(emb.weight.dtype))
    parts.append(_embed(wb, prompt_ids))
    return torch.cat(parts, dim=0)


def soft_prompt_loss(wb: WhiteBox, soft, pairs: Sequence[tuple[str, str]]):
    """Mean token negative log-likelihood of each continuation after soft prompt + its prompt."""
    import torch

    prefix = wb.special_prefix()
    rows, targets = [], []
    for prompt, continuation in pairs:
        ctx_emb = _with_soft(wb, soft, prefix, wb.encode(prompt))
        cont_ids = wb.encode(continuation)
        rows.append(torch.cat([ctx_emb, _embed(wb, cont_ids)], dim=0))
        targets.append((ctx_emb.shape[0], cont_ids))
    width = max(r.shape[0] for r in rows)
    dim = rows[0].shape[1]
    # Right padding: causal attention keeps pads from influencing real positions.
    embeds = rows[0].new_zeros((len(rows), width, dim))
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=embeds.device)
    labels = torch.full((len(rows), width), -100, dtype=torch.long, device=embeds.device)
    for i, (r, (start, cont_ids)) in enumerate(zip(rows, targets)):
        embeds[i, : r.shape[0]] = r
        mask[i, : r.shape[0]] = 1
        labels[i, start : start + len(cont_ids)] = torch.tensor(cont_ids, device=embeds.device)
    logits = wb.model(inputs_embeds=embeds, attention_mask=mask).logits.float()
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100
    )


def train_soft_prompt(wb: WhiteBox, pairs: Sequence[tuple[str, str]], cfg: SoftPromptConfig):
    """Learn `cfg.num_tokens` prompt vectors maximizing the continuations' likelihood; model frozen.

    Initialized from the embeddings of random vocabulary tokens (Lester et al. 2021); returns the
    soft prompt (num_tokens x hidden, float32, on the model's device) and the final minibatch loss.
    """
    import torch

    if not pairs:
        raise InputError("soft prompt: no training probes (the training subjects have none of this PII type)")
    emb = wb.model.get_input_embeddings()
    gen = torch.Generator().manual_seed(cfg.seed)
    special = set(getattr(wb.tokenizer, "all_special_ids", []) or [])
    vocab = [i for i in range(emb.weight.shape[0]) if i not in special]
    init_ids = [vocab[int(j)] for j in torch.randint(len(vocab), (cfg.num_tokens,), generator=gen)]
    soft = emb.weight[init_ids].detach().float().clone().requires_grad_(True)
    flags = [p.requires_grad for p in wb.model.parameters()]
    was_training = wb.model.training
    for p in wb.model.parameters():
        p.requires_grad_(False)
    wb.model.eval()
    optimizer = torch.optim.Adam([soft], lr=cfg.learning_rate)
    rng = random.Random(f"privaudit-soft-prompt:{cfg.seed}")
    last = float("nan")
    try:
        for _ in range(cfg.steps):
            batch = rng.sample(list(pairs), min(cfg.batch_size, len(pairs)))
            loss = soft_prompt_loss(wb, soft, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            last = float(loss.detach())
    finally:
        for p, flag in zip(wb.model.parameters(), flags):
            p.requires_grad_(flag)
        wb.model.train(was_training)
    return soft.detach(), last


def generate_with_soft_prompt(wb: WhiteBox, soft, prompts: Sequence[str], max_new_tokens: int,
                              batch_size: int) -> list[str]:
    """Greedy continuations of soft prompt + each prompt, batched with left padding.

    With an empty soft prompt this is plain greedy generation (a test checks it equals the target's
    own `generate`), so the comparison with hand-written templates is like for like.
    """
    import torch

    prefix = wb.special_prefix()
    pad = wb.pad_id()
    eos = wb.tokenizer.eos_token_id
    out: list[str] = []
    for chunk in batched(list(prompts), batch_size):
        rows = [_with_soft(wb, soft, prefix, wb.encode(p)) for p in chunk]
        width = max(r.shape[0] for r in rows)
        pad_vec = _embed(wb, [pad])[0]
        embeds = pad_vec.expand(len(rows), width, pad_vec.shape[0]).clone()
        mask = torch.zeros((len(rows), width), dtype=torch.long, device=embeds.device)
        for i, r in enumerate(rows):
            embeds[i, width - r.shape[0] :] = r
            mask[i, width - r.shape[0] :] = 1
        with torch.inference_mode():
            gen = wb.model.generate(
                inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                num_beams=1, pad_token_id=pad, eos_token_id=eos,
            )
        # With only inputs_embeds given, generate returns the new tokens alone.
        out.extend(wb.tokenizer.batch_decode(gen, skip_special_tokens=True))
    return out


def split_subjects(subject_ids: Sequence[str], train_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Seeded split into (train, evaluation) subject ids; both non-empty when there are >= 2 subjects."""
    ids = sorted(set(subject_ids))
    if len(ids) < 2:
        raise InputError("soft prompt: needs at least 2 subjects (one to train on, one to evaluate)")
    random.Random(f"privaudit-soft-split:{seed}").shuffle(ids)
    n_train = min(max(1, round(len(ids) * train_fraction)), len(ids) - 1)
    return sorted(ids[:n_train]), sorted(ids[n_train:])


def _artifact_path(ctx: RunContext, target: Target, pii_type: str, cfg: SoftPromptConfig,
                   train_probes: Sequence[Probe]) -> Path | None:
    if ctx.work_dir is None:
        return None
    ident = json.dumps([target.fingerprint(), pii_type, cfg.__dict__, sorted(p.key for p in train_probes)])
    digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
    return Path(ctx.work_dir) / "pii_soft_prompt" / f"{pii_type}-{digest}.pt"


def _load_or_train(wb: WhiteBox, path: Path | None, pairs: Sequence[tuple[str, str]], cfg: SoftPromptConfig):
    import torch

    if path is not None and path.is_file():
        saved = torch.load(path, map_location=wb.device)
        return saved["soft"], float(saved["loss"])
    soft, loss = train_soft_prompt(wb, pairs, cfg)
    if path is not None:  # a resumed run reuses the learned prompt instead of retraining it
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        torch.save({"soft": soft.cpu(), "loss": loss}, path)
    return soft.to(wb.device), loss


def run_soft_prompt_probe(target: Target, train_probes: Sequence[Probe], eval_probes: Sequence[Probe],
                          cfg: SoftPromptConfig, max_new_tokens: int, ctx: RunContext, attack: str,
                          target_name: str) -> int:
    """Tune one soft prompt per PII type on `train_probes`; store soft vs template records for `eval_probes`.

    A type no training probe has is skipped (nothing to tune on). The soft prompt of a type is tuned
    (or loaded from the run folder) when its first batch comes up, so a resumed run tunes none.
    """
    trained = {p.pii_type for p in train_probes}
    items = [(f"{SOFT_PROMPT_KIND}|{p.key}", p) for p in eval_probes if p.pii_type in trained]
    if not ctx.pending(attack, target_name, items):
        return 0
    wb = WhiteBox.of(target)
    greedy = GenerationConfig(max_new_tokens=max_new_tokens, num_samples=1, do_sample=False, seed=cfg.seed)
    tuned: dict[str, tuple[Any, float, int]] = {}  # PII type -> (soft prompt, final loss, training probes)

    def soft_prompt_for(pii_type: str) -> tuple[Any, float, int]:
        if pii_type not in tuned:
            train = [p for p in train_probes if p.pii_type == pii_type]
            soft, loss = _load_or_train(wb, _artifact_path(ctx, target, pii_type, cfg, train),
                                        [(p.prompt, p.continuation) for p in train], cfg)
            tuned[pii_type] = (soft, loss, len(train))
        return tuned[pii_type]

    def call(batch: list[Probe]) -> list[tuple[str, list[str]]]:
        soft, _, _ = soft_prompt_for(batch[0].pii_type)  # a batch holds one PII type (group below)
        prompts = [p.prompt for p in batch]
        soft_out = generate_with_soft_prompt(wb, soft, prompts, max_new_tokens, ctx.batch_size)
        plain_out = target.generate(prompts, greedy)
        return list(zip(soft_out, plain_out))

    def record(probe: Probe, outputs: tuple[str, list[str]]) -> dict[str, Any]:
        s_out, t_outs = outputs
        _, loss, num_train = tuned[probe.pii_type]
        m = match_outputs(probe.pii_type, probe.truth, [s_out])
        t = match_outputs(probe.pii_type, probe.truth, t_outs[:1])
        return {
            "kind": SOFT_PROMPT_KIND, "subject_id": probe.subject_id, "pii_type": probe.pii_type,
            "template_id": probe.template_id, "level": probe.level, "association": probe.association,
            "known": dict(probe.known), "prompt": probe.prompt, "truth": probe.truth,
            "outputs": [s_out], "exact": m.exact, "partial": m.partial,
            "template_outputs": list(t_outs[:1]), "template_exact": t.exact, "template_partial": t.partial,
            "soft_prompt_tokens": cfg.num_tokens, "train_probes": num_train, "train_loss": loss,
        }

    return ctx.probe(attack, target_name, items, call=call, record=record, label=f"{attack}: soft-prompt probes",
                     group=lambda p: p.pii_type)
