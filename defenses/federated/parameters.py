"""Which parameters are shared (averaged by FedAvg) and which stay personal, and where a client keeps them.

FedPer (Arivazhagan et al., 2019) splits a model into a shared base and personal layers. Two splits:
- "lora": the whole base model is shared; a per-client LoRA adapter (peft) is personal. The adapter
  is saved as a standard PEFT folder, so the personalized target is `hf:GLOBAL:adapter=ADAPTER`.
- "head": the last decoder block, the final norm and the LM head are personal; the rest is shared.
  The personalized target is a full `hf:` folder (global body + the client's head).
- "none" with `shared_part = "lora"` (FedIT): the base is frozen and one LoRA adapter is the shared
  part: every client trains it from the global adapter and FedAvg averages only its tensors. The
  global model is the base with the averaged adapter merged in, and every client is served it.
Per-client state lives on disk per client id (not in Flower's `Context`), so it survives ClientApp
processes, which the SuperNode starts afresh for each message.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ADAPTER_DIR = "adapter"
HEAD_FILE = "personal_head.safetensors"


def head_parameter_names(model: Any) -> set[str]:
    """State-dict keys of the last decoder block, the final norm and the (untied) LM head."""
    keys = list(model.state_dict().keys())
    layer_ids = [int(m.group(1)) for k in keys if (m := re.search(r"\.layers\.(\d+)\.", k))]
    if not layer_ids:
        from privaudit.errors import InputError

        raise InputError("federated: personal_part='head' needs a model with numbered decoder layers (.layers.N.)")
    last = f".layers.{max(layer_ids)}."
    tied = bool(getattr(getattr(model, "config", None), "tie_word_embeddings", False))
    names = {k for k in keys if last in f".{k}" or re.search(r"(^|\.)norm\.weight$", k) and ".layers." not in k}
    if not tied:
        names |= {k for k in keys if k.startswith("lm_head.")}
    return names


def personal_parameter_filter(model: Any, personal_part: str):
    """A predicate over `named_parameters()` names: True for the personal part."""
    if personal_part == "lora":
        return lambda name: "lora_" in name
    if personal_part == "none":
        return lambda name: False
    names = head_parameter_names(model)
    return lambda name: name in names


def shared_state(model: Any, cfg: Any) -> dict[str, Any]:
    """The tensors FedAvg averages, in state-dict order: the plain (un-adapted) model's outside the
    personal part, or with `cfg.shared_lora` the LoRA adapter's alone (the base is frozen)."""
    state = model.state_dict()
    if cfg.shared_lora:
        keep = [k for k in state if "lora_" in k]
    else:
        personal = head_parameter_names(model) if cfg.personal_part == "head" else set()
        keep = [k for k in state if k not in personal]
    return {k: state[k].detach().cpu().contiguous() for k in keep}


def load_shared(model: Any, received: dict[str, Any]) -> None:
    """Put the received shared tensors into `model`, refusing any that do not belong to it.

    `load_state_dict(strict=False)` alone would skip a tensor whose name does not match (a LoRA key
    sent to a model without the adapter) and train from the wrong weights without a word.
    """
    result = model.load_state_dict(received, strict=False)
    if result.unexpected_keys:
        from privaudit.errors import TargetError

        raise TargetError(f"federated: {len(result.unexpected_keys)} received weights do not belong to the client "
                          f"model (first: {result.unexpected_keys[0]})")


def attach_personal(model: Any, personal_part: str, client_dir: Path, lora_cfg: Any) -> Any:
    """Put the client's personal part onto a model that holds the current global shared weights.

    First round: a fresh LoRA adapter (seeded by the caller) or the base model's head. Every
    parameter is left trainable: the shared body learns locally too, and FedAvg averages it.
    """
    client_dir = Path(client_dir)
    if personal_part == "none":
        return model  # nothing personal; what trains is the shared part, as the caller set it up
    if personal_part == "lora":
        adapter = client_dir / ADAPTER_DIR
        if (adapter / "adapter_config.json").is_file():
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
        else:
            from privaudit.defenses.finetune import apply_lora

            model = apply_lora(model, lora_cfg)
    else:
        path = client_dir / HEAD_FILE
        if path.is_file():
            from safetensors.torch import load_file

            model.load_state_dict(load_file(str(path)), strict=False)
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def detach_personal(model: Any, personal_part: str, client_dir: Path) -> Any:
    """Save the personal part under `client_dir` and return the plain model (shared part inside)."""
    client_dir = Path(client_dir)
    if personal_part == "none":
        return model
    client_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if personal_part == "lora":
        model.save_pretrained(client_dir / ADAPTER_DIR)
        return model.unload()  # removes the LoRA layers without merging them into the shared weights
    from safetensors.torch import save_file

    names = head_parameter_names(model)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k in names}
    tmp = client_dir / (HEAD_FILE + ".tmp")
    save_file(state, str(tmp))
    tmp.replace(client_dir / HEAD_FILE)
    return model
