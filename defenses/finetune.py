"""The shared fine-tuning recipe: personalize a base causal LM on a personal corpus (no defense).

This is the "none" variant of `privaudit compare` and the training loop that scrubbing (same loop on
scrubbed texts) and DP-SGD (same data pipeline and loss under Opacus) reuse, so variants differ only
in the defense. Full-parameter or LoRA (peft); seeded (same seed, same weights); the utility metric
is perplexity on held-out documents, measured before and after training so the cost of every
defense is reported next to its privacy gain.

Loss: each sequence's mean token cross-entropy, averaged over the batch. The per-sequence form is
what DP-SGD clips (one sequence = one privacy unit), so plain and private training optimize the
same objective.

Base model for the experiments: `pretrain_base` trains a tiny Llama on *public* text (documents
about people who are not the data subjects), so the base has learned the language and the document
templates but none of the subjects' PII. That is the "before fine-tuning" baseline an extraction
rate is measured against (analysing_pii_leakage subtracts what the public base model already
produces), and it gives DP-SGD a realistic starting point: private fine-tuning of a public model
(Li et al., "Large Language Models Can Be Strong Differentially Private Learners", ICLR 2022).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from privaudit.defenses.registry import (
    DefendedModel, Defense, DefenseContext, TrainingReport, register_defense,
)
from privaudit.errors import InputError
from privaudit.progress import ProgressReporter

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models load from local folders only, never a hub

ADAPTER_DIR = "adapter"


@dataclass(frozen=True)
class FinetuneConfig:
    """How to fine-tune: optimizer settings, sequence length and (optionally) LoRA."""

    epochs: int = 10
    learning_rate: float = 3e-3
    batch_size: int = 16
    max_length: int = 128
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    seed: int = 0
    weight_decay: float = 0.0
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_length", "lora_r"):
            if getattr(self, name) < 1:
                raise InputError(f"finetune: {name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise InputError(f"finetune: learning_rate must be > 0, got {self.learning_rate}")
        if self.warmup_steps < 0:
            raise InputError(f"finetune: warmup_steps must be >= 0, got {self.warmup_steps}")


# -- model and data plumbing (shared with scrub and dp_sgd) -----------------------------------

def load_causal_lm(path: Path):
    """Load (model, tokenizer) from a local `hf:` folder; a missing folder is an input error."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise InputError(f"{path}: not a model folder (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype="float32")
    return model, tokenizer


def encode_texts(tokenizer: Any, texts: Sequence[str], max_length: int):
    """Tokenize to a right-padded (input_ids, attention_mask) TensorDataset, EOS appended.

    All rows share one length (the longest document, capped at `max_length`) so that Opacus'
    Poisson-sampled batches and plain batches stack the same way.
    """
    import torch
    from torch.utils.data import TensorDataset

    if not texts:
        raise InputError("finetune: no training texts")
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    rows = []
    for text in texts:
        ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
        if eos is not None:
            ids.append(eos)
        rows.append(ids[:max_length])
    length = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), length), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), length), dtype=torch.long)
    for i, r in enumerate(rows):
        input_ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        attention[i, : len(r)] = 1
    return TensorDataset(input_ids, attention)


def token_nll(model: Any, input_ids, attention_mask):
    """Per-token negative log-likelihood [B, T-1] of the next token, and its mask [B, T-1].

    Position ids are passed expanded to the batch: Opacus' per-sample gradients need every
    module input to carry the batch dimension (DESIGN.md: GPT-2's position embedding fails otherwise).
    """
    import torch
    import torch.nn.functional as F

    positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0).expand_as(input_ids)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions).logits
    logits = logits[:, :-1, :]
    targets = input_ids[:, 1:]
    mask = attention_mask[:, 1:].to(logits.dtype)
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), reduction="none")
    return nll.view(targets.shape) * mask, mask


def per_sequence_loss(model: Any, input_ids, attention_mask):
    """Each sequence's mean token cross-entropy [B]: the unit DP-SGD clips."""
    nll, mask = token_nll(model, input_ids, attention_mask)
    return nll.sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def perplexity(model: Any, tokenizer: Any, texts: Sequence[str], batch_size: int = 16, max_length: int = 256) -> float:
    """Token-level perplexity exp(total NLL / total tokens) on `texts`: the utility metric.

    Held-out documents are never trained on, so lower perplexity there means the model kept (or
    gained) general language ability; a defense that costs utility raises it.
    """
    import torch

    if not texts:
        return float("nan")
    data = encode_texts(tokenizer, texts, max_length)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0.0
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            ids, att = data.tensors[0][start : start + batch_size], data.tensors[1][start : start + batch_size]
            width = int(att.sum(dim=1).max())
            nll, mask = token_nll(model, ids[:, :width], att[:, :width])
            total += float(nll.sum())
            count += float(mask.sum())
    model.train(was_training)
    return math.exp(total / max(count, 1.0))


def count_trainable(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def apply_lora(model: Any, cfg: Any):
    """Wrap `model` with a LoRA adapter (peft) on `cfg.lora_targets`; only the adapter trains."""
    from peft import LoraConfig, get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in cfg.lora_targets if t not in names]
    if missing:
        raise InputError(f"lora_targets: module '{missing[0]}' not in the model (it has e.g. q_proj, v_proj, o_proj)")
    lora_cfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=list(cfg.lora_targets),
                          lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, lora_cfg)


def save_trained(model: Any, tokenizer: Any, base: Path, out_dir: Path, lora: bool) -> str:
    """Save a full `hf:` folder, or only the adapter next to the base; return the target spec."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if lora:
        adapter = out_dir / ADAPTER_DIR
        model.save_pretrained(adapter)
        return f"hf:{Path(base).resolve()}:adapter={adapter.resolve()}"
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return f"hf:{out_dir.resolve()}"


def warmup_schedule(optimizer: Any, warmup_steps: int):
    """Linear warm-up to the base learning rate, then constant (short runs need no decay)."""
    from torch.optim.lr_scheduler import LambdaLR

    return LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0)


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def open_base(base: Path, seed: int, heldout_texts: Sequence[str], batch_size: int, max_length: int):
    """Seed every generator, load the base model and tokenizer, measure the base's held-out perplexity.

    The start every training recipe shares (plain, scrubbed, DP-SGD), in one order, so the same
    seed gives the same weights whichever recipe runs. Returns (model, tokenizer, base perplexity).
    """
    seed_everything(seed)
    model, tokenizer = load_causal_lm(base)
    return model, tokenizer, perplexity(model, tokenizer, heldout_texts, batch_size, max_length)


def train_epochs(loader: Any, epochs: int, step: Callable[[Any, Any], float | None], progress: ProgressReporter,
                 description: str) -> tuple[int, float, list[float]]:
    """Run `step(input_ids, attention_mask)` over `loader` for `epochs` epochs with a progress bar.

    `step` does one optimizer step and returns the batch loss (None: a step without examples, as
    an empty Poisson batch in DP-SGD, which counts as a step but not as a loss). Returns (steps,
    wall seconds of the loop, the last epoch's batch losses).
    """
    steps, last_epoch_losses = 0, []
    started = time.perf_counter()
    with progress.task(description, epochs * len(loader)) as advance:
        for _ in range(epochs):
            epoch_losses = []
            for ids, att in loader:
                loss = step(ids, att)
                steps += 1
                if loss is not None:
                    epoch_losses.append(loss)
                advance(1)
            last_epoch_losses = epoch_losses
    return steps, time.perf_counter() - started, last_epoch_losses


def finish_training(
    model: Any, tokenizer: Any, base: Path, out_dir: Path, cfg: Any, *, name: str, steps: int, seconds: float,
    losses: Sequence[float], heldout_texts: Sequence[str], base_perplexity: float, **reports: Any,
) -> DefendedModel:
    """Measure held-out perplexity, save the model (or adapter), write and return the variant record.

    `cfg` supplies `lora`, `batch_size` and `max_length`; `losses` are the last epoch's batch losses;
    `reports` are extra DefendedModel fields (`privacy=`, `notes=`). The record is written last, so
    its presence marks a complete folder.
    """
    ppl = perplexity(model, tokenizer, heldout_texts, cfg.batch_size, cfg.max_length)
    spec = save_trained(model, tokenizer, base, out_dir, cfg.lora)
    training = TrainingReport(
        steps=steps, seconds=round(seconds, 3), train_loss=float(sum(losses) / max(len(losses), 1)),
        heldout_perplexity=ppl, base_heldout_perplexity=base_perplexity,
        trainable_parameters=count_trainable(model), mode="lora" if cfg.lora else "full",
    )
    record = DefendedModel(name=name, target_spec=spec, out_dir=Path(out_dir), training=training, **reports)
    record.save()
    return record


# -- the recipe --------------------------------------------------------------------------------

def finetune(
    base: Path,
    train_texts: Sequence[str],
    heldout_texts: Sequence[str],
    cfg: FinetuneConfig,
    out_dir: Path,
    progress: ProgressReporter | None = None,
    *,
    name: str = "none",
    notes: Sequence[str] = (),
) -> DefendedModel:
    """Fine-tune `base` on `train_texts`, save it under `out_dir`, report cost and held-out utility.

    Returns the defended-model record (also written to `out_dir/defended.json`, last, so a
    complete folder can be reused by a resumed comparison).
    """
    import torch
    from torch.utils.data import DataLoader

    progress = progress or ProgressReporter(quiet=True)
    model, tokenizer, base_ppl = open_base(base, cfg.seed, heldout_texts, cfg.batch_size, cfg.max_length)
    if cfg.lora:
        model = apply_lora(model, cfg)
    data = encode_texts(tokenizer, train_texts, cfg.max_length)
    generator = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(data, batch_size=cfg.batch_size, shuffle=True, generator=generator)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = warmup_schedule(optimizer, cfg.warmup_steps)

    def step(ids, att) -> float:
        loss = per_sequence_loss(model, ids, att).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        return float(loss.detach())

    model.train()
    steps, seconds, last_epoch_losses = train_epochs(
        loader, cfg.epochs, step, progress, f"fine-tuning ({'lora' if cfg.lora else 'full'})")
    return finish_training(model, tokenizer, base, out_dir, cfg, name=name, steps=steps, seconds=seconds,
                           losses=last_epoch_losses, heldout_texts=heldout_texts, base_perplexity=base_ppl,
                           notes=tuple(notes))


def pretrain_base(
    texts: Sequence[str],
    out_dir: Path,
    seed: int = 0,
    *,
    epochs: int = 8,
    learning_rate: float = 3e-3,
    batch_size: int = 16,
    max_length: int = 128,
    tokenizer_texts: Sequence[str] | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    progress: ProgressReporter | None = None,
) -> Path:
    """A "public" base model: a tiny Llama trained from scratch on `texts` (no subject PII in them).

    The tokenizer is trained on `tokenizer_texts` (default: `texts`); pass public and private texts
    together when private documents must tokenize efficiently (a tokenizer is not a memorizer of
    sequences, but it can hold rare strings as tokens: keep that in mind when reading baselines).
    Returns `out_dir`, loadable as `hf:out_dir`.
    """
    from privaudit.models.tiny import build_tiny_model

    out_dir = Path(out_dir)
    init_dir = out_dir.parent / f".{out_dir.name}.init"
    build_tiny_model(list(tokenizer_texts or texts), init_dir, seed=seed, **dict(model_kwargs or {}))
    cfg = FinetuneConfig(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, max_length=max_length,
                         seed=seed)
    finetune(init_dir, texts, (), cfg, out_dir, progress, name="pretrain")
    (out_dir / "defended.json").unlink(missing_ok=True)  # a base model, not a defended variant
    import shutil

    shutil.rmtree(init_dir, ignore_errors=True)
    return out_dir


@register_defense
class FinetuneDefense(Defense):
    """No defense: the plain fine-tuning recipe (the baseline every defense is compared with)."""

    name = "none"
    Params = FinetuneConfig

    def apply(self, ctx: DefenseContext) -> DefendedModel:
        corpus = ctx.corpus
        return finetune(ctx.base_path, corpus.train_texts(), corpus.heldout_texts(), self.params, ctx.out_dir,
                        ctx.progress, name=self.name)
