"""Length-bucketed batching with automatic batch-size back-off on out-of-memory, sized by the run.

Why: padding wastes compute in proportion to the length spread inside a batch, so items are sorted
by token length before batching (longest first, so an out-of-memory error shows up on the first
batch rather than late in a run) and results are put back in input order. A batch size that does
not fit is halved and the failed batch retried; the smaller size sticks for later calls, so a run
pays for finding the limit once. Used by the local targets for both generation and scoring.

One batch size: a run's `batch_size` (`--batch-size`) is how many prompts an attack sends per
target call *and* how many rows a local model holds on the device at once. A batcher built without
an explicit size (an `hf:` spec without `:batch_size=`) follows the run's size, which the run sets
for its duration with `run_batch_size`. It is a context variable rather than an argument because
it must reach the forward passes of every target of the run, nested ones (baseline, reference,
judge) and those inside wrappers (cache, output filter, fairness prompt) included, without a
sizing method on the Target contract that only device backends would have.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Generic, Iterator, Sequence, TypeVar

from privaudit.errors import TargetError

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_BATCH_SIZE = 16  # rows per forward pass outside a run (e.g. `privaudit serve`, library calls)
_RUN_BATCH_SIZE: ContextVar[int | None] = ContextVar("privaudit_run_batch_size", default=None)


@contextmanager
def run_batch_size(size: int) -> Iterator[None]:
    """Inside the block, batchers without an explicit size put at most `size` rows on the device."""
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {size}")
    token = _RUN_BATCH_SIZE.set(size)
    try:
        yield
    finally:
        _RUN_BATCH_SIZE.reset(token)


def current_run_batch_size() -> int | None:
    """The batch size of the run in progress (None outside `run_batch_size`)."""
    return _RUN_BATCH_SIZE.get()

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

    `fn` takes a list of items and returns one result per item, in order. `batch_size=None` follows
    the run's batch size (`DEFAULT_BATCH_SIZE` outside a run); an explicit size overrides it. The
    out-of-memory limit lives on the instance: one target keeps one batcher, so a size found to fit
    is reused, whatever size later runs ask for.
    """

    def __init__(self, batch_size: int | None = None, *, min_batch_size: int = 1) -> None:
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.requested = batch_size  # None: the run's batch size
        self.limit: int | None = None  # the largest size known to fit, once an OOM has shown it
        self.min_batch_size = max(1, min_batch_size)
        self.backoffs = 0  # how many times the size was halved (reported by benchmarks)

    @property
    def batch_size(self) -> int:
        """Rows per batch now: the requested (or run's) size, never above the out-of-memory limit."""
        wanted = self.requested if self.requested is not None else (current_run_batch_size() or DEFAULT_BATCH_SIZE)
        return wanted if self.limit is None else min(wanted, self.limit)

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
                self.limit = max(self.min_batch_size, self.batch_size // 2)
                self.backoffs += 1
                continue  # retry the same items with the smaller size
            if len(out) != len(chunk):
                raise RuntimeError(f"batch function returned {len(out)} results for {len(chunk)} items")
            for i, r in zip(chunk, out):
                results[i] = r
            pos += len(chunk)
        return results  # type: ignore[return-value]
