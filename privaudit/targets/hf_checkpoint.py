"""What an `hf:` spec names and how its checkpoint loads: options, file checks, device and dtype,
the file fingerprint, and the tokenizer and model loads themselves (always `local_files_only`).

Kept apart from `HFTarget` so a resumed run can check a spec's identity (`spec_fingerprint`) from
files alone, without importing torch or loading weights.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any, Mapping, MutableMapping

from privaudit.engine.hashing import file_sha256
from privaudit.errors import InputError, TargetError

DTYPES = ("float32", "bfloat16", "float16")
OPTIONS = ("adapter", "device", "dtype", "batch_size")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "spiece.model")
# Files whose bytes decide what the model outputs (weights, architecture, tokenizer, chat template).
FINGERPRINT_PATTERNS = (
    "config.json", "*.safetensors", "*.bin", "*.pt", "adapter_config.json",
    "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "merges.txt",
    "special_tokens_map.json", "chat_template.jinja", "chat_template.json",
)
HUB_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def forbid_hub_network(environ: MutableMapping[str, str] = os.environ) -> None:
    """Put huggingface_hub and transformers in offline mode for this process (the CLI calls it at start).

    Both libraries read these variables once, when they are imported, which is why this used to
    happen when `privaudit.targets.hf` was imported. A library must not rewrite its host's
    environment on import (a notebook importing privaudit would silently lose hub access), and
    every load here passes `local_files_only=True` anyway; the CLI owns its process, so it sets
    them before transformers is imported, as a second guard that nothing reaches a hub.
    """
    for name in HUB_OFFLINE_VARIABLES:
        environ[name] = "1"


def parse_hf_options(where: str, options: Mapping[str, str], allowed: tuple[str, ...] = OPTIONS) -> int | None:
    """Check a spec's options; returns its explicit `batch_size`, or None when the spec sets none."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise InputError(f"target '{where}': unknown option(s) {', '.join(unknown)} (known: {', '.join(allowed)})")
    if "batch_size" not in options:
        return None
    try:
        return int(options["batch_size"])
    except ValueError:
        raise InputError(f"target '{where}': batch_size must be an integer, got '{options['batch_size']}'") from None


def check_checkpoint(model_path: Path, adapter_path: Path | None) -> Path:
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


def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device '{device}' requested but no CUDA device is available (use device=cpu)")
    if device != "cpu" and not device.startswith("cuda"):
        raise InputError(f"device '{device}' is not one of cpu, cuda, cuda:N, auto")
    return device


def resolve_dtype(dtype: str | None, device: str):
    """fp32 on CPU (bf16 matmuls are slow there and scores lose precision); bf16 on GPUs by default."""
    import torch

    if dtype in (None, "", "auto"):
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if dtype not in DTYPES:
        raise InputError(f"dtype '{dtype}' is not one of {', '.join(DTYPES)}")
    return getattr(torch, dtype)


def checkpoint_fingerprint(model_path: Path, adapter_path: Path | None, dtype: Any) -> str:
    """sha256 over the bytes of config, weights, tokenizer (and adapter) files, plus the dtype.

    A pure function of files on disk, so a resumed run can check its target without loading it.
    Names and bytes only, never paths: a hub cache snapshot and a copy of it share one fingerprint.
    """
    h = hashlib.sha256()
    for folder in [model_path] + ([adapter_path] if adapter_path else []):
        for f in _fingerprint_files(folder):
            h.update(f.name.encode() + b"\0" + file_sha256(f).encode() + b"\0")
    h.update(str(dtype).encode())
    return h.hexdigest()


def _fingerprint_files(folder: Path) -> list[Path]:
    seen: dict[str, Path] = {}
    for pattern in FINGERPRINT_PATTERNS:
        for f in folder.glob(pattern):
            if f.is_file():
                seen[f.name] = f
    return [seen[n] for n in sorted(seen)]


def load_tokenizer(folder: Path):
    """The tokenizer, left-padded for generation, with a pad token (any id: pads are masked out)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise TargetError(f"{folder}: cannot load tokenizer: {first_line(exc)}") from exc
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.convert_ids_to_tokens(0)
    return tok


def load_model(model_path: Path, adapter_path: Path | None, dtype: Any, device: str, tokenizer: Any):
    """The causal LM (with its PEFT adapter attached, frozen) on `device`, in eval mode."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, local_files_only=True)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise TargetError(f"{model_path}: cannot load model: {first_line(exc)}") from exc
    if adapter_path is not None:
        from peft import PeftModel

        try:
            with warnings.catch_warnings():  # peft calls a transformers API deprecated in 5.x: noise for users
                warnings.simplefilter("ignore", FutureWarning)
                model = PeftModel.from_pretrained(model, adapter_path, is_trainable=False, local_files_only=True)
        except Exception as exc:  # any failure to attach means wrong base model or a corrupt adapter
            raise TargetError(
                f"{adapter_path}: adapter does not match base model {model_path}: {first_line(exc)}"
            ) from exc
    model.to(device)
    model.eval()
    vocab = model.get_output_embeddings().weight.shape[0]
    if len(tokenizer) > vocab:
        raise TargetError(
            f"{model_path}: tokenizer has {len(tokenizer)} tokens but the model only {vocab} "
            f"(tokenizer from a different model?)"
        )
    return model


def first_line(exc: BaseException) -> str:
    """The most telling line of a library error (torch's state-dict errors put the cause on line 2+)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
    telling = next((ln for ln in lines if "size mismatch" in ln or "not found" in ln), lines[0])
    return telling[:300]
