"""The attack base: the one probe loop (`RunContext.probe`) and the `pii_record_fields` declaration."""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd
import pytest

from privaudit.attacks.base import Attack, AttackResult, RunContext
from privaudit.engine.store import RunStore
from privaudit.errors import TargetError


def _items(n: int) -> list[tuple[str, int]]:
    return [(f"item{i}", i) for i in range(n)]


def test_probe_stores_one_record_per_item_in_batches_of_the_run_batch_size(tmp_path) -> None:
    calls: list[list[int]] = []

    def call(batch: list[int]) -> list[int]:
        calls.append(batch)
        return [x * x for x in batch]

    with RunStore(tmp_path / "run") as store:
        ctx = RunContext(store=store, batch_size=3)
        n = ctx.probe("a", "t", _items(7), call=call, record=lambda x, y: {"x": x, "square": y}, label="squares")
        records = ctx.records("a", "t")
    assert n == 7 and calls == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(records["item"]) == [f"item{i}" for i in range(7)]
    assert list(records["square"]) == [i * i for i in range(7)]


def test_resume_skips_finished_items(tmp_path) -> None:
    calls: list[list[int]] = []

    def call(batch: list[int]) -> list[int]:
        calls.append(batch)
        return batch

    with RunStore(tmp_path / "run") as store:
        ctx = RunContext(store=store, batch_size=4)
        ctx.probe("a", "t", _items(3), call=call, record=lambda x, y: {"x": y}, label="first")
        calls.clear()
        assert ctx.probe("a", "t", _items(6), call=call, record=lambda x, y: {"x": y}, label="resumed") == 3
        assert ctx.probe("a", "t", _items(6), call=call, record=lambda x, y: {"x": y}, label="done") == 0
        assert len(ctx.records("a", "t")) == 6
    assert calls == [[3, 4, 5]]


def test_sort_key_orders_pending_items_and_batch_size_overrides_the_run(tmp_path) -> None:
    calls: list[list[str]] = []
    words = ["ccc", "a", "bb", "dddd", "e"]

    def call(batch: list[str]) -> list[int]:
        calls.append(batch)
        return [len(w) for w in batch]

    with RunStore(tmp_path / "run") as store:
        ctx = RunContext(store=store, batch_size=16)
        ctx.probe("a", "t", [(w, w) for w in words], call=call, record=lambda w, n: {"n": n}, label="words",
                  sort_key=len, batch_size=2)
    assert calls == [["a", "e"], ["bb", "ccc"], ["dddd"]]  # stable: "a" before "e"


def test_items_of_one_unit_share_a_batch_and_units_are_counted(tmp_path) -> None:
    """k samples of one conversation: batches count conversations, every pending sample is stored."""
    calls: list[list[tuple[str, int]]] = []
    samples = [(f"{c}/s{j}", (c, j)) for c in "xyz" for j in range(3)]

    def call(batch: list[tuple[str, int]]) -> list[str]:
        calls.append(batch)
        return [f"{c}{j}" for c, j in batch]

    with RunStore(tmp_path / "run") as store:
        ctx = RunContext(store=store, batch_size=2)
        ctx.save("a", "t", "y/s1", {"reply": "y1"})  # stored by an earlier, interrupted run
        n = ctx.probe("a", "t", samples, call=call, record=lambda s, r: {"reply": r}, label="chats",
                      unit=lambda s: s[0])
        records = ctx.records("a", "t")
    assert n == 3
    assert calls == [[("x", 0), ("x", 1), ("x", 2), ("y", 0), ("y", 2)], [("z", 0), ("z", 1), ("z", 2)]]
    assert sorted(records["reply"]) == sorted(f"{c}{j}" for c in "xyz" for j in range(3))


def test_batches_never_mix_groups_and_hold_at_most_batch_size_in_weight(tmp_path) -> None:
    """Scan rounds: one sampling config per round, a call holds up to `batch_size` generations."""
    calls: list[list[tuple[int, int, str]]] = []
    rounds = [(1, 1), (0, 3)]  # (round, samples per prompt), listed out of order
    items = [(f"{r}|{p}", (r, k, p)) for r, k in rounds for p in "abc"]

    def call(batch: list[tuple[int, int, str]]) -> list[None]:
        calls.append(batch)
        return [None] * len(batch)

    with RunStore(tmp_path / "run") as store:
        ctx = RunContext(store=store, batch_size=4)
        ctx.probe("a", "t", items, call=call, record=lambda it, _: {"round": it[0]}, label="scan",
                  group=lambda it: it[0], weight=lambda it: it[1])
    assert calls == [[(0, 3, "a")], [(0, 3, "b")], [(0, 3, "c")], [(1, 1, "a"), (1, 1, "b"), (1, 1, "c")]]


def test_a_record_of_none_leaves_the_item_pending(tmp_path) -> None:
    with RunStore(tmp_path / "run") as store:
        ctx = RunContext(store=store)
        ctx.probe("a", "t", _items(4), call=lambda b: b, record=lambda x, y: None if x % 2 else {"x": y},
                  label="half")
        assert [k for k, _ in ctx.pending("a", "t", _items(4))] == ["item1", "item3"]


def test_a_target_answering_fewer_probes_than_asked_is_an_error_not_a_silent_gap(tmp_path) -> None:
    with RunStore(tmp_path / "run") as store:
        ctx = RunContext(store=store, batch_size=4)
        with pytest.raises(TargetError, match="3 outputs for 4 probes"):
            ctx.probe("a", "t", _items(4), call=lambda b: b[:3], record=lambda x, y: {"x": y}, label="short")


class _Minimal(Attack):
    name = "minimal-for-base-tests"
    Params = dict

    def run(self, target: Any, ctx: RunContext) -> AttackResult:  # pragma: no cover - never run
        raise NotImplementedError

    def summarize(self, target_name: str, records: pd.DataFrame) -> AttackResult:  # pragma: no cover
        raise NotImplementedError


def test_the_old_name_pii_fields_still_declares_the_masked_columns_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="pii_record_fields"):
        class OldPlugin(_Minimal):
            pii_fields = frozenset({"secret"})

    assert OldPlugin.pii_record_fields == frozenset({"secret"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")

        class NewPlugin(_Minimal):
            pii_record_fields = frozenset({"truth"})

    with pytest.warns(DeprecationWarning, match="pii_record_fields"):
        assert NewPlugin.pii_fields == frozenset({"truth"})
