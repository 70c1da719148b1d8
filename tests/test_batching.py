"""Length-bucketed batching: order restored, longest first, halving on out-of-memory."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from privaudit.engine.batching import (
    DEFAULT_BATCH_SIZE,
    AdaptiveBatcher,
    current_run_batch_size,
    is_out_of_memory,
    length_sorted_batches,
    run_batch_size,
)
from privaudit.errors import TargetError


@given(st.lists(st.integers(min_value=0, max_value=500), max_size=60), st.integers(min_value=1, max_value=9))
def test_batches_cover_every_index_once_sorted_longest_first(lengths, batch_size):
    batches = length_sorted_batches(lengths, batch_size)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)


@given(st.lists(st.text(max_size=12), max_size=40), st.integers(min_value=1, max_value=7))
def test_map_returns_results_in_input_order(items, batch_size):
    seen_batches: list[list[str]] = []

    def fn(batch: list[str]) -> list[str]:
        seen_batches.append(batch)
        return [s.upper() for s in batch]

    out = AdaptiveBatcher(batch_size).map(items, [len(s) for s in items], fn)
    assert out == [s.upper() for s in items]
    assert all(len(b) <= batch_size for b in seen_batches)


def test_map_batches_similar_lengths_together():
    lengths = [1, 50, 2, 49, 3, 48]
    seen: list[list[int]] = []
    AdaptiveBatcher(2).map(lengths, lengths, lambda b: (seen.append(b), b)[1])
    assert seen == [[50, 49], [48, 3], [2, 1]]


def test_out_of_memory_halves_batch_size_and_retries_the_same_items():
    calls: list[int] = []

    def fn(batch: list[int]) -> list[int]:
        calls.append(len(batch))
        if len(batch) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [x * 2 for x in batch]

    batcher = AdaptiveBatcher(16)
    items = list(range(10))
    assert batcher.map(items, [1] * 10, fn) == [x * 2 for x in items]
    assert batcher.batch_size == 2  # 16 -> 8 -> 4 -> 2, then kept
    assert batcher.backoffs == 3
    assert calls[:3] == [10, 8, 4]
    # the reduced size sticks: a later call starts at 2 and never fails
    calls.clear()
    batcher.map(items, [1] * 10, fn)
    assert set(calls) == {2}


def test_cpu_allocator_failure_counts_as_out_of_memory():
    assert is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"))
    assert is_out_of_memory(torch.OutOfMemoryError("x"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_other_errors_propagate_without_backoff():
    batcher = AdaptiveBatcher(8)

    def fn(batch):
        raise ValueError("bad item")

    with pytest.raises(ValueError, match="bad item"):
        batcher.map([1, 2], [1, 1], fn)
    assert batcher.batch_size == 8


def test_out_of_memory_at_batch_size_one_is_a_target_error():
    def fn(batch):
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(TargetError, match="out of memory even at batch size 1"):
        AdaptiveBatcher(4).map([1, 2, 3], [5, 5, 5], fn)


def test_cost_counts_rows_per_item():
    seen: list[int] = []
    AdaptiveBatcher(8).map(list(range(6)), [1] * 6, lambda b: (seen.append(len(b)), b)[1], cost=4)
    assert seen == [2, 2, 2]


def _recording(seen: list[int]):
    return lambda b: (seen.append(len(b)), b)[1]


def test_without_a_size_the_batcher_follows_the_run_batch_size():
    """One batch size: a batcher nobody sized uses the run's `--batch-size` (16 outside a run)."""
    seen: list[int] = []
    batcher = AdaptiveBatcher()
    batcher.map(list(range(40)), [1] * 40, _recording(seen))
    assert seen == [DEFAULT_BATCH_SIZE, DEFAULT_BATCH_SIZE, 40 - 2 * DEFAULT_BATCH_SIZE]
    seen.clear()
    with run_batch_size(7):
        assert batcher.batch_size == 7 and current_run_batch_size() == 7
        batcher.map(list(range(20)), [1] * 20, _recording(seen))
    assert seen == [7, 7, 6]
    assert batcher.batch_size == DEFAULT_BATCH_SIZE and current_run_batch_size() is None


def test_an_explicit_size_overrides_the_run_batch_size():
    seen: list[int] = []
    with run_batch_size(32):
        AdaptiveBatcher(4).map(list(range(10)), [1] * 10, _recording(seen), cost=2)
    assert seen == [2, 2, 2, 2, 2]  # 4 rows per batch, 2 rows per item


def test_an_out_of_memory_limit_outlives_the_run_that_found_it():
    def fn(batch: list[int]) -> list[int]:
        if len(batch) > 5:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return batch

    batcher = AdaptiveBatcher()
    with run_batch_size(32):
        batcher.map(list(range(40)), [1] * 40, fn)
        assert batcher.batch_size == 4 and batcher.backoffs == 3  # 32 -> 16 -> 8 -> 4
    with run_batch_size(64):
        assert batcher.batch_size == 4  # a later, bigger run does not find the limit again
    with run_batch_size(2):
        assert batcher.batch_size == 2
