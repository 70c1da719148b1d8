"""Shared helpers for privaudit benchmarks: wall time, peak memory, machine description.

Peak memory is measured two ways because they answer different questions:
- `tracemalloc` peak: Python-level allocations (records, prompts, result lists); this is what must
  stay flat as the number of subjects grows (results stream to the run store).
- `ru_maxrss` delta: the process' resident-set high-water mark growth, which includes torch tensors
  (tracemalloc does not see them). It only ever grows, so run each size in a fresh process when
  comparing absolute values; deltas within one process understate later sizes.
"""

from __future__ import annotations

import os
import platform
import resource
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class Measurement:
    """Wall seconds, tracemalloc peak (MiB) and ru_maxrss growth (MiB) of one measured block."""

    wall_s: float = 0.0
    py_peak_mib: float = 0.0
    rss_delta_mib: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@contextmanager
def measure(trace_python: bool = True) -> Iterator[Measurement]:
    """Measure wall time, Python peak and RSS high-water growth of the `with` block."""
    m = Measurement()
    rss0 = rss_mib()
    if trace_python:
        tracemalloc.start()
    t0 = time.perf_counter()
    try:
        yield m
    finally:
        m.wall_s = time.perf_counter() - t0
        if trace_python:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            m.py_peak_mib = peak / 2**20
        m.rss_delta_mib = rss_mib() - rss0


def rss_mib() -> float:
    """The process' peak resident set so far, in MiB."""
    raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return raw / 2**20 if platform.system() == "Darwin" else raw / 1024


def best_of(fn: Callable[[], T], repeats: int = 3) -> tuple[float, T]:
    """Best wall time of `repeats` calls (best, not mean: noise on a shared machine only adds time)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out  # type: ignore[return-value]


def machine_info() -> dict[str, Any]:
    """Platform, CPU count, load average, torch version/threads and device, for RESULTS.md lines."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover
        pass
    return info


def print_header(title: str) -> None:
    """Print a benchmark title and the machine line, so pasted output says where it ran."""
    print(f"== {title} ==")
    print("machine: " + ", ".join(f"{k}={v}" for k, v in machine_info().items()))
