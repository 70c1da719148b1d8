"""DP-SGD fine-tuning with Opacus: the same recipe as `finetune`, with per-sequence clipping and noise.

One entry point, `train_dp_sgd`: Poisson-sampled batches, each sequence's gradient clipped to
`max_grad_norm`, Gaussian noise of std `noise_multiplier * max_grad_norm` added to the sum (Abadi et
al., "Deep Learning with Differential Privacy", CCS 2016, Alg. 1). Either a target epsilon (Opacus
picks the noise multiplier for the planned epochs) or a noise multiplier is given. What is
*reported* is the epsilon the accountant says was actually spent for the steps really taken
(`PrivacyEngine.get_epsilon(delta)`), next to delta, noise multiplier, clip norm and sample rate.

Privacy unit (`privacy_unit`): what one clipped example is, so what epsilon is about.
- "document" (default): every training sequence, i.e. every copy of a document. A document repeated
  r times, or a data subject who appears in k documents, is protected only at group level k, roughly
  (k * epsilon, k * e^(k*epsilon) * delta): read that epsilon next to the corpus' repetition count.
- "subject": user-level DP (McMahan et al., "Learning Differentially Private Recurrent Language
  Models", ICLR 2018): one example per data subject, their distinct training documents joined, so
  epsilon bounds what the model reveals about a person, the question a personalized model raises.
  Documents without a subject (filler, canaries) stay one example per distinct document. A subject
  whose documents do not fit `max_length` tokens is an input error, never silently truncated.

Delta default: 1e-5, or 10^floor(log10(1/N)) when that is smaller (N = training documents), so
delta stays below 1/N as the DP definition requires to be meaningful.

Which layers work (opacus 1.6, transformers 5.x, torch 2.13; checked by tests and the benchmark):
- Llama configs (LlamaForCausalLM): Embedding, Linear (q/k/v/o, gate/up/down, lm_head) have
  Opacus grad samplers; LlamaRMSNorm has none and falls back to functorch per-sample gradients in
  "hooks" mode; rotary embeddings hold no parameters. All three modes ("hooks", "functorch",
  "ghost") train. Ghost clipping computes norms without materializing per-sample gradients for
  Linear/Embedding/LayerNorm and falls back to fast gradient clipping for the other layers.
- GPT-2 configs: the learned position embedding only works because `token_nll` passes
  `position_ids` expanded to the batch (with broadcast position ids of batch 1 every mode fails
  with "stack expects each tensor to be equal size"). GPT-2's Conv1D has no registered grad
  sampler and uses the functorch fallback.
- Tied input/output embeddings (GPT-2 default): ghost clipping refuses shared parameters
  ("Parameter tying is not supported with Ghost Clipping"); the lm_head is untied (a copy of the
  embedding) before training, and the record notes it.
- BatchNorm, InstanceNorm with running stats, nn.LSTM/GRU/RNN and MultiheadAttention fail
  ModuleValidator: training stops with one line naming the layer, unless `fix_layers = true`
  lets `ModuleValidator.fix` replace them (GroupNorm, DPLSTM, DPMultiheadAttention), which
  changes the architecture and is noted in the record.
- LoRA (peft): only the adapter's Linear layers train; all modes work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from privaudit.defenses.finetune import (
    apply_lora, encode_texts, finish_training, open_base, per_sequence_loss, train_epochs,
)
from privaudit.defenses.registry import DefendedModel, Defense, DefenseContext, PrivacyReport, register_defense
from privaudit.errors import InputError
from privaudit.progress import ProgressReporter

GradSampleMode = Literal["hooks", "functorch", "ghost"]
PrivacyUnit = Literal["document", "subject"]
PRIVACY_UNITS: tuple[str, ...] = ("document", "subject")
UNIT_SEPARATOR = "\n\n"  # between one subject's documents in a "subject" example
IGNORE_INDEX = -100


@dataclass(frozen=True)
class DPConfig:
    """DP-SGD settings. Exactly one of `target_epsilon` and `noise_multiplier` must be set."""

    target_epsilon: float | None = None
    noise_multiplier: float | None = None
    delta: float | None = None  # default: min(1e-5, 10^floor(log10(1/N)))
    max_grad_norm: float = 1.0
    epochs: int = 10
    batch_size: int = 16  # expected batch size; the sample rate is batch_size / N
    learning_rate: float = 3e-3
    max_length: int = 128
    poisson_sampling: bool = True
    grad_sample_mode: GradSampleMode = "hooks"
    accountant: Literal["prv", "rdp", "gdp"] = "prv"
    privacy_unit: PrivacyUnit = "document"
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    fix_layers: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.target_epsilon is None) == (self.noise_multiplier is None):
            raise InputError("dp_sgd: set exactly one of target_epsilon and noise_multiplier")
        if self.target_epsilon is not None and self.target_epsilon <= 0:
            raise InputError(f"dp_sgd: target_epsilon must be > 0, got {self.target_epsilon}")
        if self.noise_multiplier is not None and self.noise_multiplier < 0:
            raise InputError(f"dp_sgd: noise_multiplier must be >= 0, got {self.noise_multiplier}")
        if self.delta is not None and not 0 < self.delta < 1:
            raise InputError(f"dp_sgd: delta must be in (0, 1), got {self.delta}")
        if self.max_grad_norm <= 0:
            raise InputError(f"dp_sgd: max_grad_norm must be > 0, got {self.max_grad_norm}")
        for name in ("epochs", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise InputError(f"dp_sgd: {name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise InputError(f"dp_sgd: learning_rate must be > 0, got {self.learning_rate}")
        check_privacy_unit(self.privacy_unit)


def default_delta(num_examples: int) -> float:
    """1e-5, or the power of ten at or below 1/N when N > 1e5 (delta must stay below 1/N)."""
    if num_examples < 1:
        raise InputError("dp_sgd: no training documents")
    return min(1e-5, 10.0 ** math.floor(math.log10(1.0 / num_examples)))


def check_privacy_unit(unit: str) -> None:
    """One error for an unknown unit, whether it comes from a config or a direct call."""
    if unit not in PRIVACY_UNITS:
        raise InputError(f"dp_sgd: privacy_unit must be one of {', '.join(PRIVACY_UNITS)}, got {unit!r}")


def privacy_units(corpus: Any, unit: str) -> dict[str, str]:
    """The training examples DP-SGD clips one at a time, by id, for privacy unit `unit`.

    "document": every training copy (`corpus.train_texts()`, repeats included), ids `copy-N`.
    "subject": one example per subject (id = subject id) with each of their distinct training
    documents once, in corpus order; under per-subject clipping more copies would only reweight the
    subject's own examples. Documents without a subject: one example each (id = document id).
    """
    check_privacy_unit(unit)
    if unit == "document":
        return {f"copy-{i}": text for i, text in enumerate(corpus.train_texts())}
    grouped: dict[str, list[str]] = {}
    for doc in corpus.split_documents("train"):
        grouped.setdefault(doc.subject_id or doc.id, []).append(doc.text)
    return {uid: UNIT_SEPARATOR.join(texts) for uid, texts in grouped.items()}


def check_units_fit(tokenizer: Any, units: Mapping[str, str], max_length: int) -> None:
    """A subject-level example that `max_length` would cut is an input error naming the subject."""
    for uid, text in units.items():
        needed = len(tokenizer(text, add_special_tokens=True)["input_ids"]) + 1  # + EOS
        if needed > max_length:
            raise InputError(f"dp_sgd: privacy unit '{uid}' needs {needed} tokens, over max_length {max_length}: "
                             "raise max_length (privacy_unit = \"subject\" trains each subject's documents "
                             "as one sequence)")


def check_dp_layers(model: Any, fix_layers: bool = False) -> tuple[Any, tuple[str, ...]]:
    """Run Opacus' ModuleValidator per named layer; fail with one line naming the first bad layer.

    With `fix_layers`, `ModuleValidator.fix` replaces fixable layers (BatchNorm -> GroupNorm, LSTM
    -> DPLSTM, ...) and the replacements are returned as notes. Returns (model, notes).
    """
    from opacus.validators import ModuleValidator

    def problems(m: Any) -> list[tuple[str, str, str]]:
        found = []
        for name, sub in m.named_modules():
            validator = ModuleValidator.VALIDATORS.get(type(sub))
            if validator is None or not any(p.requires_grad for p in sub.parameters(recurse=False)):
                continue
            for err in validator(sub):
                found.append((name or "<root>", type(sub).__name__, " ".join(str(err).split())))
        return found

    model.train()
    bad = problems(model)
    notes: list[str] = []
    if bad and fix_layers:
        before = {name: type(sub).__name__ for name, sub in model.named_modules()}
        model = ModuleValidator.fix(model)
        after = {name: type(sub).__name__ for name, sub in model.named_modules()}
        notes = [f"ModuleValidator.fix replaced {n} ({t} -> {after[n]})" for n, t in before.items()
                 if n in after and after[n] != t]
        bad = problems(model)
    if bad:
        name, kind, why = bad[0]
        hint = "" if fix_layers else "; set fix_layers = true to let Opacus replace it where it can"
        raise InputError(f"dp_sgd: layer '{name}' ({kind}) is not supported by Opacus: {why}{hint}")
    return model, tuple(notes)


def untie_embeddings(model: Any) -> bool:
    """Give the lm_head its own copy of tied input embeddings (ghost clipping refuses shared params)."""
    import torch

    head, emb = model.get_output_embeddings(), model.get_input_embeddings()
    if head is None or emb is None or head.weight is not emb.weight:
        return False
    head.weight = torch.nn.Parameter(emb.weight.detach().clone(), requires_grad=emb.weight.requires_grad)
    model.config.tie_word_embeddings = False
    if hasattr(model, "_tied_weights_keys"):
        model._tied_weights_keys = None
    return True


def train_dp_sgd(
    base: Path,
    train_texts: Sequence[str] | Mapping[str, str],
    heldout_texts: Sequence[str],
    cfg: DPConfig,
    out_dir: Path,
    progress: ProgressReporter | None = None,
    *,
    name: str = "dp_sgd",
) -> DefendedModel:
    """Fine-tune `base` with DP-SGD (Opacus); save it; report the epsilon actually spent.

    `train_texts` are the privacy units, one example each (see `privacy_units`); a mapping gives
    them ids for error messages. Raises InputError (one line) for an unsupported layer, a subject
    that does not fit `max_length`, or invalid settings.
    """
    import torch
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader

    progress = progress or ProgressReporter(quiet=True)
    model, tokenizer, base_ppl = open_base(base, cfg.seed, heldout_texts, cfg.batch_size, cfg.max_length)
    units = dict(train_texts) if isinstance(train_texts, Mapping) else {
        f"example-{i}": t for i, t in enumerate(train_texts)}
    if cfg.privacy_unit == "subject":
        check_units_fit(tokenizer, units, cfg.max_length)
        notes: list[str] = ["privacy unit: one data subject (all their training documents in one example); "
                            "documents without a subject: one example each"]
    else:
        notes = ["privacy unit: one training sequence; a document repeated r times or a subject in k "
                 "documents is covered only at group size r or k"]
    if untie_embeddings(model):
        notes.append("tied input/output embeddings were untied before DP training")
    if cfg.lora:
        model = apply_lora(model, cfg)
    model, fixed = check_dp_layers(model, cfg.fix_layers)
    notes.extend(fixed)

    data = encode_texts(tokenizer, list(units.values()), cfg.max_length)
    n = len(data)
    delta = cfg.delta if cfg.delta is not None else default_delta(n)
    batch_size = min(cfg.batch_size, n)
    loader = DataLoader(data, batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(cfg.seed))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    engine = PrivacyEngine(accountant=cfg.accountant)
    common = dict(module=model, optimizer=optimizer, data_loader=loader, max_grad_norm=cfg.max_grad_norm,
                  poisson_sampling=cfg.poisson_sampling, grad_sample_mode=cfg.grad_sample_mode,
                  loss_reduction="mean", noise_generator=torch.Generator().manual_seed(cfg.seed + 1))
    criterion = torch.nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX, reduction="mean")
    if cfg.grad_sample_mode == "ghost":
        common["criterion"] = criterion
    try:
        if cfg.target_epsilon is not None:
            wrapped = engine.make_private_with_epsilon(target_epsilon=cfg.target_epsilon, target_delta=delta,
                                                       epochs=cfg.epochs, **common)
        else:
            wrapped = engine.make_private(noise_multiplier=cfg.noise_multiplier, **common)
    except (NotImplementedError, ValueError) as exc:
        raise InputError(f"dp_sgd: Opacus cannot train this model: {' '.join(str(exc).split())}") from None
    if cfg.grad_sample_mode == "ghost":
        private_model, dp_optimizer, dp_criterion, dp_loader = wrapped
    else:
        private_model, dp_optimizer, dp_loader = wrapped
        dp_criterion = None

    def step(ids, att) -> float | None:
        dp_optimizer.zero_grad(set_to_none=True)
        loss = dp_step_loss(private_model, ids, att, dp_criterion)
        loss.backward()
        dp_optimizer.step()
        if not len(ids):
            return None
        return float(loss.detach() if dp_criterion is None else loss.item())

    private_model.train()
    steps, seconds, last_epoch_losses = train_epochs(
        dp_loader, cfg.epochs, step, progress, f"DP-SGD fine-tuning ({cfg.grad_sample_mode})")
    epsilon = float(engine.get_epsilon(delta))
    noise = float(dp_optimizer.noise_multiplier)
    sample_rate = float(1 / len(dp_loader))
    if hasattr(private_model, "_close"):
        private_model._close()  # remove Opacus hooks so the saved model is a plain transformers model
    privacy = PrivacyReport(
        epsilon=epsilon, delta=delta, noise_multiplier=noise, max_grad_norm=cfg.max_grad_norm,
        sample_rate=sample_rate, steps=steps, accountant=cfg.accountant, target_epsilon=cfg.target_epsilon,
        grad_sample_mode=cfg.grad_sample_mode, poisson_sampling=cfg.poisson_sampling,
        privacy_unit=cfg.privacy_unit,
    )
    return finish_training(model, tokenizer, base, out_dir, cfg, name=name, steps=steps, seconds=seconds,
                           losses=last_epoch_losses, heldout_texts=heldout_texts, base_perplexity=base_ppl,
                           privacy=privacy, notes=tuple(notes))


def dp_step_loss(model: Any, input_ids, attention_mask, dp_criterion: Any = None):
    """The batch loss for one DP step: mean over sequences of each sequence's mean token loss.

    With ghost clipping the Opacus criterion wrapper computes the same per-sequence loss (its
    `shape=` path averages over non-ignored tokens) and its `backward()` runs the two passes.
    """
    import torch

    if dp_criterion is None:
        if len(input_ids) == 0:  # an empty Poisson batch: the step still happens (noise only)
            return sum(p.sum() * 0.0 for p in model.parameters() if p.requires_grad)
        return per_sequence_loss(model, input_ids, attention_mask).mean()
    positions = torch.arange(input_ids.shape[1]).unsqueeze(0).expand_as(input_ids)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions).logits[:, :-1, :]
    labels = input_ids[:, 1:].masked_fill(attention_mask[:, 1:] == 0, IGNORE_INDEX)
    return dp_criterion(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), shape=logits.shape)


def epsilon_from_history(accountant: str, noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """Recompute epsilon from (noise multiplier, sample rate, steps) with a fresh Opacus accountant.

    Used to check (and let users check) that a reported epsilon matches its training history.
    """
    from opacus.accountants import create_accountant

    acc = create_accountant(mechanism=accountant)
    acc.history = [(noise_multiplier, sample_rate, steps)]
    return float(acc.get_epsilon(delta=delta))


@register_defense
class DPSGDDefense(Defense):
    """DP-SGD fine-tuning (Opacus) from the same base on the same corpus."""

    name = "dp_sgd"
    Params = DPConfig

    def apply(self, ctx: DefenseContext) -> DefendedModel:
        units = privacy_units(ctx.corpus, self.params.privacy_unit)
        return train_dp_sgd(ctx.base_path, units, ctx.corpus.heldout_texts(), self.params, ctx.out_dir,
                            ctx.progress, name=self.name)
