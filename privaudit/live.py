"""A model object still in memory (transformers or peft, possibly mid-training) as an audit target.

Why: notebooks and training scripts hold the model they personalize; saving it to disk only to let
`hf:PATH` load it again costs time and disk for every checkpoint audited. `LiveModelTarget` puts
the loaded model and tokenizer behind the same Target contract as `hf:` (it reuses HFTarget's
batched generation and teacher-forced scoring), so every attack runs on it unchanged.
`preserved_training_state` is what the training-loop audit wraps around each audit: the model's
train/eval flags, parameter gradients and the torch RNG come back exactly as they were.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
from typing import Any, Iterator

from privaudit.engine.batching import AdaptiveBatcher
from privaudit.errors import InputError
from privaudit.targets.base import CHAT, GENERATE, GRADIENTS, SCORE, TOKEN_DISTRIBUTION, TOKEN_LOGPROBS
from privaudit.targets.hf import HFTarget

LIVE_SCHEME = "live"


def is_model_object(obj: Any) -> bool:
    """A torch module with `generate` (a transformers causal LM or a peft model wrapping one)."""
    return callable(getattr(obj, "generate", None)) and callable(getattr(obj, "parameters", None))


def model_fingerprint(model: Any) -> str:
    """sha256 over every parameter's name, shape, dtype and bytes: the weights the model holds *now*.

    A training loop's model changes every step, so each audited step has its own fingerprint (the
    run folder records it, and a resumed step is refused if its weights differ). Parameters are
    copied to host memory one at a time, never the whole model at once, and never to disk.
    """
    import torch

    digest = hashlib.sha256()
    with torch.no_grad():
        for name, param in model.named_parameters():
            tensor = param.detach()
            digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
            digest.update(tensor.to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return "live-sha256:" + digest.hexdigest()


class LiveModelTarget(HFTarget):
    """A loaded causal LM and its tokenizer behind the Target contract, without touching disk.

    The model is used as it is (its device, dtype and adapters); the tokenizer is copied when it has
    no pad token, so the caller's tokenizer is never changed. `close()` only drops this target's
    reference: the model belongs to the caller.
    """

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "model", batch_size: int | None = None) -> None:
        if not is_model_object(model):
            raise InputError(f"target '{name}': {type(model).__name__} is not a causal LM with generate()")
        if tokenizer is None or not callable(tokenizer):
            raise InputError(f"target '{name}': a loaded model needs its tokenizer (load_target(model, tokenizer))")
        if batch_size is not None and batch_size < 1:
            raise InputError(f"target '{name}': batch_size must be >= 1, got {batch_size}")
        if tokenizer.pad_token_id is None:
            tokenizer = copy.copy(tokenizer)
            tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.convert_ids_to_tokens(0)
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.model_path = self.adapter_path = None
        self.model_id = self.adapter_id = None
        first = next(iter(model.parameters()), None)
        self.device = str(first.device) if first is not None else "cpu"
        self.dtype = first.dtype if first is not None else None
        self._batcher = AdaptiveBatcher(batch_size)
        self._fingerprint = None
        caps = {GENERATE, SCORE, TOKEN_LOGPROBS, TOKEN_DISTRIBUTION, GRADIENTS}
        if getattr(tokenizer, "chat_template", None):
            caps.add(CHAT)
        self.capabilities = frozenset(caps)
        self._prefix_ids = self._special_prefix()

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.model)
        return self._fingerprint

    def close(self) -> None:
        self.model = None  # the caller's model stays loaded (and on its device)

    def __repr__(self) -> str:
        return f"LiveModelTarget({self.name!r}, device={self.device!r}, dtype={self.dtype})"


@contextlib.contextmanager
def preserved_training_state(model: Any) -> Iterator[None]:
    """Audit a model mid-training and leave it as found: eval mode inside, then every module's
    `training` flag, every parameter's `.grad` (the very tensors, unmodified) and `requires_grad`,
    and the torch RNG states (so the training run's shuffling and dropout are not shifted) restored.

    Gradients are set aside (set to None) for the audit, so a probe that back-propagates (the
    soft-prompt probe) accumulates into fresh tensors that are discarded, never into the optimizer's.
    """
    import torch

    modes = [(m, m.training) for m in model.modules()]
    params = list(model.parameters())
    grads = [p.grad for p in params]
    flags = [p.requires_grad for p in params]
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    for p in params:
        p.grad = None
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
        for p, grad, flag in zip(params, grads, flags):
            p.requires_grad_(flag)
            p.grad = grad
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
