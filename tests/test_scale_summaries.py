"""Out-of-core summaries (issue 18): the slim, streamed record frame gives the very same PII summary
as every record in one DataFrame; per-subject tables and record listings take the top of an order;
the resumable store's key index and the masker hold a user base's worth of keys and values."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest

from privaudit.attacks.pii_extraction import PiiParams
from privaudit.attacks.pii_summary import per_subject_table, slim_record, summarize_records, worst_subject_fields
from privaudit.engine import store as store_mod
from privaudit.engine.records import record_frame, run_record_frame, top_records
from privaudit.engine.store import KeyIndex, RunStore, read_records, record_key
from privaudit.masking import Masker

TARGET = "openai:http://127.0.0.1:1/v1#m"
TEMPLATES = [("email-twin-1", "email", 1, "twin"), ("email-triplet-phone", "email", 2, "triplet"),
             ("phone-twin-1", "phone", 1, "twin"), ("phone-triplet-email", "phone", 2, "triplet")]


def _records(n_subjects: int, seed: int = 5) -> list[dict]:
    """Records shaped like the PII attack's (extract and likelihood kinds), with correlated hits."""
    rng = random.Random(seed)
    recs = []
    for s in range(n_subjects):
        sid, name = f"s{s:04d}", f"Person{s} Lastname{s % 7}"
        truth = {"email": f"person{s}@example{s % 3}.com", "phone": f"(201) 555-{s:04d}"}
        leaky = rng.random() < 0.3
        for tid, pii_type, level, assoc in TEMPLATES:
            known = {"name": name} if level == 1 else {"name": name, "email" if pii_type == "phone" else "phone":
                                                       truth["email" if pii_type == "phone" else "phone"]}
            exact = leaky and rng.random() < 0.5
            partial = exact or rng.random() < 0.2
            item = f"extract|{sid}|{pii_type}|{tid}"
            recs.append({"key": record_key("pii", TARGET, item), "attack": "pii", "target": TARGET, "item": item,
                         "kind": "extract", "subject_id": sid, "pii_type": pii_type, "template_id": tid,
                         "level": level, "association": assoc, "known": known, "prompt": f"{name}'s {pii_type} is",
                         "truth": truth[pii_type], "outputs": [f" out {rng.random()}"], "exact": exact,
                         "partial": partial, "exact_sample": 0 if exact else None,
                         "partial_sample": 0 if partial else None, "num_samples": 1, "do_sample": False})
            if tid.endswith("twin-1"):
                rank = rng.randint(1, 20)
                item = f"likelihood|{sid}|{pii_type}|{tid}"
                recs.append({"key": record_key("pii", TARGET, item), "attack": "pii", "target": TARGET,
                             "item": item, "kind": "likelihood", "subject_id": sid, "pii_type": pii_type,
                             "template_id": tid, "level": level, "association": assoc, "known": known,
                             "prompt": "p", "truth": truth[pii_type], "truth_logprob": -rng.random() * 10,
                             "best_other_logprob": -rng.random() * 10, "rank": rank, "num_candidates": 20,
                             "exposure_bits": 4.32 - (rank.bit_length() - 1), "top1": rank == 1, "top5": rank <= 5})
    return recs


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    with RunStore(tmp_path / "run", flush_every=50) as store:
        store.extend(_records(60))
    return tmp_path / "run"


def _jsonish(result) -> str:
    return json.dumps({"metrics": {k: vars(v) for k, v in result.metrics.items()}, "tables": result.tables,
                       "charts": result.charts, "provenance": result.provenance}, sort_keys=True, default=str)


def test_slim_streamed_frame_gives_the_same_summary_as_every_record_in_one_dataframe(run_dir: Path):
    params = PiiParams(subjects="unused.jsonl", likelihood=True)
    full = pd.DataFrame(list(read_records(run_dir, attack="pii", target=TARGET)))
    slim = run_record_frame(run_dir, "pii", TARGET, slim_record)
    assert "outputs" not in slim.columns and "prompt" not in slim.columns and len(slim) == len(full)
    old = summarize_records("pii", TARGET, full, params)
    new = summarize_records("pii", TARGET, slim, params)
    assert len(old.metrics) > 10 and old.metrics["exact_match_rate"].value > 0  # the test can fail
    assert _jsonish(new) == _jsonish(old)  # every value, interval, table row and chart point


def test_record_frame_is_the_list_of_dicts_frame(run_dir: Path):
    recs = list(read_records(run_dir))
    recs[3] = {k: v for k, v in recs[3].items() if k != "exact_sample"}  # a missing field becomes NaN
    recs[5] = {**recs[5], "extra_field": "late"}  # a column first seen mid-stream
    pd.testing.assert_frame_equal(record_frame(iter(recs)), pd.DataFrame(recs))
    assert record_frame(iter([])).empty


def test_per_subject_table_lists_the_worst_pairs_in_subject_order(run_dir: Path):
    ext = pd.DataFrame([r for r in read_records(run_dir) if r["kind"] == "extract"])
    everything = per_subject_table(ext, pd.DataFrame(), pd.DataFrame(), limit=10_000)
    top = per_subject_table(ext, pd.DataFrame(), pd.DataFrame(), limit=7)
    ranked = sorted(everything, key=lambda r: (-r["exact_probes"], -r["partial_probes"], r["subject_id"], r["pii_type"]))
    wanted = {(r["subject_id"], r["pii_type"]) for r in ranked[:7]}
    assert len(everything) == 120 and len(top) == 7
    assert {(r["subject_id"], r["pii_type"]) for r in top} == wanted
    assert top == [r for r in everything if (r["subject_id"], r["pii_type"]) in wanted]  # same rows, same order
    assert len(worst_subject_fields(ext, 7)) == 7


def test_top_records_is_the_head_of_the_sorted_records(run_dir: Path):
    def key(r):
        return (bool(r["exact"]), bool(r["partial"]))

    def where(r):
        return r["kind"] == "extract"

    every = [r for r in read_records(run_dir, attack="pii", target=TARGET) if where(r)]
    expected = sorted(every, key=key, reverse=True)[:25]
    assert top_records(run_dir, "pii", TARGET, key, 25, where) == expected
    assert top_records(run_dir, "pii", TARGET, key, 0) == []


def test_key_index_holds_keys_across_merges_and_digests_ending_in_nul(monkeypatch):
    monkeypatch.setattr(KeyIndex, "MERGE_EVERY", 7)
    index = KeyIndex()
    keys = [f"pii\x1ft\x1fitem{i}" for i in range(500)]
    nul = next(k for k in (f"nul{i}" for i in range(100_000)) if KeyIndex.digest(k).endswith(b"\0"))
    for k in [*keys, nul, keys[0]]:
        index.add(k)
    assert len(index) == 501
    assert all(k in index for k in keys) and nul in index
    assert "pii\x1ft\x1fitem500" not in index and "nul-absent" not in index


def test_store_resumes_from_the_digest_index(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(store_mod.KeyIndex, "MERGE_EVERY", 3)
    with RunStore(tmp_path / "r") as store:
        store.extend({"key": f"k{i}", "v": i} for i in range(10))
    with RunStore(tmp_path / "r") as store:
        assert store.has_records() and store.is_done("k9") and not store.is_done("k10")
        store.append({"key": "k3", "v": "again"})  # already stored: never twice
        assert store.done_keys() == frozenset(f"k{i}" for i in range(10))


def test_masker_over_a_user_base_masks_exactly_like_the_eager_regex(monkeypatch):
    values = [f"Given{i} Family{i}" for i in range(2500)] + [f"user{i}@mail{i % 9}.org" for i in range(2500)]
    tree = {"rows": [{"name": f"Given{i} Family{i}", "note": f"reach USER{i}@MAIL{i % 9}.ORG or Given{i + 1}"}
                     for i in range(0, 2500, 97)], "other": "nobody here, Al"}
    lazy = Masker(values + ["Al"]).mask_tree(tree)
    monkeypatch.setattr("privaudit.masking._EAGER_VALUES", 10**9)
    eager = Masker(values + ["Al"]).mask_tree(tree)
    assert lazy == eager
    assert lazy["rows"][1]["name"] != "Given97 Family97" and "user97@" not in lazy["rows"][1]["note"].lower()
