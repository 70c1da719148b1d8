"""Length-bucketed batching with automatic batch-size back-off on out-of-memory.

Why: padding wastes compute in proportion to the length spread inside a batch, so items are sorted
by token length before batching (longest first, so an out-of-memory error shows up on the first
batch rather than late in a run) and results are put back in input order. A batch size that does
not fit is halved and the failed batch retried; the smaller size sticks for later calls, so a run
pays for finding the limit once. Used by the local targets for both generation and scoring.
"""

from __future__ import annotations

import gc
from typing import Callable, Generic, Sequence, TypeVar

from privaudit.errors import TargetError

T = TypeVar("T")
R = TypeVar("R")

_OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory", "failed to allocate")


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of at most `batch_size`, longest items first.

    The sort is stable, so equal-length items keep their input order (deterministic batches).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA and CPU allocator failures (torch raises either OutOfMemoryError or RuntimeError)."""
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):  # pragma: no cover - torch is a hard dependency
        pass
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        isinstance(exc, MemoryError) or any(m in str(exc).lower() for m in _OOM_MARKERS)
    )


def release_memory() -> None:
    """Free what Python and the CUDA caching allocator hold (after OOM, or when a model is dropped)."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


class AdaptiveBatcher(Generic[T, R]):
    """Maps a batch function over items in length-sorted batches, halving the size on OOM.

    `fn` takes a list of items and returns one result per item, in order. The current batch size
    lives on the instance: one target keeps one batcher, so a size found to fit is reused.
    """

    def __init__(self, batch_size: int, *, min_batch_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.min_batch_size = max(1, min_batch_size)
        self.backoffs = 0  # how many times the size was halved (reported by benchmarks)

    def map(
        self,
        items: Sequence[T],
        lengths: Sequence[int],
        fn: Callable[[list[T]], Sequence[R]],
        *,
        cost: int = 1,
    ) -> list[R]:
        """Run `fn` over `items` in batches of `batch_size // cost` items; results in input order.

        `cost` is how many rows one item expands to inside `fn` (e.g. k samples per prompt), so the
        batch size always counts rows the device holds at once.
        """
        if len(items) != len(lengths):
            raise ValueError(f"{len(items)} items but {len(lengths)} lengths")
        results: list[R | None] = [None] * len(items)
        order = sorted(range(len(items)), key=lambda i: -lengths[i])
        pos = 0
        while pos < len(order):
            size = max(1, self.batch_size // max(1, cost))
            chunk = order[pos : pos + size]
            try:
                out = list(fn([items[i] for i in chunk]))
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                release_memory()
                if self.batch_size <= self.min_batch_size or size == 1:
                    raise TargetError(
                        f"out of memory even at batch size {self.batch_size} (longest item {lengths[chunk[0]]} "
                        f"tokens); use a smaller model, dtype=bfloat16, or shorter inputs"
                    ) from exc
                self.batch_size = max(self.min_batch_size, self.batch_size // 2)
                self.backoffs += 1
                continue  # retry the same items with the smaller size
            if len(out) != len(chunk):
                raise RuntimeError(f"batch function returned {len(out)} results for {len(chunk)} items")
            for i, r in zip(chunk, out):
                results[i] = r
            pos += len(chunk)
        return results  # type: ignore[return-value]
