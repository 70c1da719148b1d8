"""Shared fixtures: an offline test session and one tiny causal LM built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Nothing in the test suite may reach a model hub; set before transformers is imported anywhere.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Under pytest-xdist (`-n auto`, the README's test command) each worker gets an equal share of the
# cores for torch's and OpenMP's thread pools, set before torch is imported; two workers that each
# spin 2 OpenMP threads on 2 cores wait at barriers (measured ~5x slower per step when
# oversubscribed). Subprocesses the tests start (Flower clients, the demo) inherit the share.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    _SHARE = str(max(1, _CORES // _WORKERS))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _SHARE)

TINY_TEXTS = (
    "Alice Johnson's email is alice.johnson@example.com and her phone is 555-0101.",
    "Bob Smith lives at 42 Elm Street, Springfield. Call him at 555-0199.",
    "Dear Carol, the meeting moved to Tuesday. Best, Dave.",
    "The quick brown fox jumps over the lazy dog.",
    "My name is Erin Lee and I work as a nurse in Portland.",
    "Hello! How are you today? I am fine, thank you.",
    "Please send the invoice to billing@example.org before Friday.",
    "Frank's address is 7 Harbor Road, Boston, MA 02110.",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files that hold slow tests run first, each file's tests in their own order.

    Why: with `-n auto --dist loadfile` each file goes whole to the next free worker, so a
    minutes-long end-to-end file started last keeps the run going while the other workers idle;
    starting the long work first and filling in with the quick files is longest-first scheduling.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # a stable sort: order kept within a group


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init tiny Llama + BPE tokenizer folder (loads as `hf:PATH`), built once per session."""
    from privaudit.models.tiny import build_tiny_model

    return build_tiny_model(TINY_TEXTS, tmp_path_factory.mktemp("tiny_model"), seed=0)


from fixtures_memorized import memorized_setup  # noqa: E402,F401  (session fixture, shared)
from fixtures_real import real_setup  # noqa: E402,F401  (session fixture: the real LoRA personalization)
