"""The run store: append-only results, torn-line repair, resume keys, lock, permissions."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat

import pytest

from privaudit.engine.store import RunStore, read_records, record_key
from privaudit.errors import RunLockedError


def _rec(i: int) -> dict:
    return {"key": record_key("pii", "t", f"item{i}"), "attack": "pii", "target": "t", "value": i}


def test_append_flush_and_read_back(tmp_path):
    with RunStore(tmp_path / "run", flush_every=3) as store:
        for i in range(7):
            store.append(_rec(i))
    got = [r["value"] for r in read_records(tmp_path / "run")]
    assert got == list(range(7))


def test_reopen_knows_finished_items_and_never_duplicates(tmp_path):
    with RunStore(tmp_path) as store:
        store.extend(_rec(i) for i in range(5))
    with RunStore(tmp_path) as store:
        assert store.is_done(record_key("pii", "t", "item3"))
        assert not store.is_done(record_key("pii", "t", "item9"))
        store.extend(_rec(i) for i in range(10))  # 0..4 are skipped
    values = [r["value"] for r in read_records(tmp_path)]
    assert values == list(range(10))


def test_torn_last_line_is_cut_on_reopen(tmp_path):
    with RunStore(tmp_path) as store:
        store.extend(_rec(i) for i in range(3))
    with open(tmp_path / "results.jsonl", "a") as fh:
        fh.write('{"key": "pii\\u001ft\\u001fitem3", "val')  # a writer killed mid-line
    assert [r["value"] for r in read_records(tmp_path)] == [0, 1, 2]
    with RunStore(tmp_path) as store:
        assert not store.is_done(record_key("pii", "t", "item3"))
        store.append(_rec(3))
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["value"] for line in lines] == [0, 1, 2, 3]


def _hold_lock(path, ready, release):
    with RunStore(path):
        ready.set()
        release.wait(10)


def test_second_writer_is_refused_with_a_clear_message(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(tmp_path, ready, release))
    proc.start()
    try:
        assert ready.wait(30)
        with pytest.raises(RunLockedError, match="another privaudit run"):
            RunStore(tmp_path).open()
    finally:
        release.set()
        proc.join(10)
    with RunStore(tmp_path):  # free again once the first run ends
        pass


def test_run_folder_and_files_are_user_only(tmp_path):
    run = tmp_path / "run"
    with RunStore(run) as store:
        store.append(_rec(0))
        store.update_manifest(seed=1)
    assert stat.S_IMODE(os.stat(run).st_mode) == 0o700
    for name in ("results.jsonl", "manifest.json"):
        assert stat.S_IMODE(os.stat(run / name).st_mode) == 0o600


def test_manifest_merges_and_records_environment(tmp_path):
    with RunStore(tmp_path) as store:
        store.update_manifest(seed=3)
        manifest = store.update_manifest(status="complete")
    assert manifest["seed"] == 3 and manifest["status"] == "complete"
    assert "torch" in manifest["environment"]["packages"]


def test_record_without_key_is_a_bug(tmp_path):
    with RunStore(tmp_path) as store, pytest.raises(ValueError):
        store.append({"attack": "pii"})


def test_manifest_update_can_drop_keys_of_an_earlier_run(tmp_path):
    with RunStore(tmp_path) as store:
        store.update_manifest(status="failed", error="x.jsonl: no such file")
        manifest = store.update_manifest(status="running", remove=("error", "finished"))
    assert manifest["status"] == "running" and "error" not in manifest
    assert "error" not in json.loads((tmp_path / "manifest.json").read_text())


def test_discard_forgets_results_and_privaudit_files_but_keeps_the_users(tmp_path):
    run = tmp_path / "run"
    with RunStore(run) as store:
        store.extend(_rec(i) for i in range(3))
        store.update_manifest(seed=1)
    for name in ("cache.sqlite", "summary.json"):
        (run / name).write_text("old")
    (run / "work" / "pii_soft_prompt").mkdir(parents=True)
    (run / "notes.txt").write_text("mine")
    with RunStore(run) as store:
        assert store.is_done(record_key("pii", "t", "item1"))
        store.discard(["summary.json"])
        assert not store.is_done(record_key("pii", "t", "item1"))
        assert store.read_manifest() == {}
        store.append(_rec(7))
    assert [r["value"] for r in read_records(run)] == [7]
    assert not (run / "cache.sqlite").exists() and not (run / "summary.json").exists()
    assert not (run / "work").exists() and not (run / "manifest.json").exists()
    assert (run / "notes.txt").read_text() == "mine"
