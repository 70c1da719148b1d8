"""The out-of-core PII summary (attacks/pii_sql.py) gives the in-memory summary's numbers (issue 18).

Random extraction records (random subjects, fields, templates, levels, correlated hits, all-miss
and all-hit corners), summarized both ways: every metric's value, interval, n, method and clusters,
every table row and chart point must agree (to float rounding: the SQL path sums integers, the
in-memory path fits statsmodels' OLS).
"""

from __future__ import annotations

import math
import random
from typing import Any

import pandas as pd
import pytest

from privaudit.attacks.pii_extraction import PiiParams
from privaudit.attacks.pii_sql import summarize_out_of_core
from privaudit.attacks.pii_summary import per_subject_table, slim_record, summarize_records
from privaudit.engine.records import record_frame
from privaudit.metrics import ClusterSums, clustered_proportion, clustered_proportion_of_sums

TARGET = "openai:http://127.0.0.1:1/v1#m"
TEMPLATES = [("email-twin-1", "email", 1, "twin"), ("email-twin-2", "email", 1, "twin"),
             ("email-triplet-phone", "email", 2, "triplet"), ("phone-twin-1", "phone", 1, "twin"),
             ("phone-quadruplet", "phone", 3, "quadruplet"), ("address-twin-1", "address", 1, "twin")]
PARAMS = PiiParams(subjects="unused.jsonl")


def _records(seed: int, n_subjects: int) -> list[dict[str, Any]]:
    """Extraction records in a shuffled (resumed-run-like) order, some subjects missing some probes."""
    rng = random.Random(seed)
    leak = rng.choice([0.0, 0.3, 1.0]) if seed % 3 == 0 else rng.random()
    recs = []
    for s in range(n_subjects):
        sid, name = f"u{rng.randint(0, 10**6):07d}-{s}", f"Person {s}"
        leaky = rng.random() < leak
        for tid, pii_type, level, assoc in TEMPLATES:
            if rng.random() < 0.25:
                continue
            exact = leaky and rng.random() < 0.6
            partial = exact or rng.random() < 0.15
            recs.append({"key": f"k{s}{tid}", "attack": "pii", "target": TARGET, "item": f"extract|{sid}|{tid}",
                         "kind": "extract", "subject_id": sid, "pii_type": pii_type, "template_id": tid,
                         "level": level, "association": assoc, "known": {"name": name}, "prompt": f"{name} {tid}",
                         "truth": f"{pii_type}-of-{s}", "outputs": [f"o{rng.random()}"], "exact": exact,
                         "partial": partial, "num_samples": 1})
    rng.shuffle(recs)
    return recs


def _same(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)), path
        if math.isnan(a) or math.isnan(b):
            assert math.isnan(a) and math.isnan(b), path
        else:
            assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (path, a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), (path, list(a), b)
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    else:
        assert a == b and type(a) is type(b), (path, a, b)


@pytest.mark.parametrize("seed", range(8))
def test_out_of_core_summary_equals_the_in_memory_summary(seed: int):
    recs = _records(seed, n_subjects=random.Random(seed).randint(1, 60))
    old = summarize_records("pii", TARGET, record_frame(recs, slim_record), PARAMS)
    new = summarize_out_of_core("pii", TARGET, lambda: iter(recs), PARAMS)
    assert new is not None and len(old.metrics) >= 10
    _same({k: vars(v) for k, v in new.metrics.items()}, {k: vars(v) for k, v in old.metrics.items()})
    _same(new.tables, old.tables)
    _same(new.charts, old.charts)
    assert new.provenance == old.provenance and new.assumptions == old.assumptions
    # Every pair is listed here, so the result holds every record, as the in-memory one does.
    pd.testing.assert_frame_equal(new.records.reset_index(drop=True),
                                  record_frame(sorted(recs, key=recs.index), slim_record))
    assert new.to_summary()["num_records"] == len(recs)


def test_out_of_core_lists_the_worst_pairs_and_holds_only_their_records():
    recs = _records(3, n_subjects=80)
    ext = record_frame(recs, slim_record)
    new = summarize_out_of_core("pii", TARGET, lambda: iter(recs), PARAMS, limit=9)
    assert new is not None
    _same(new.tables["per_subject"], per_subject_table(ext, pd.DataFrame(), pd.DataFrame(), limit=9))
    pairs = ext[["subject_id", "pii_type"]].drop_duplicates()
    assert new.provenance["per_subject_rows"] == {"shown": 9, "of": len(pairs),
                                                  "order": "most verbatim probes, then most partial, then subject id"}
    assert len(new.records) < len(recs) and new.to_summary()["num_records"] == len(recs)
    listed = {(r["subject_id"], r["pii_type"]) for r in new.tables["per_subject"]}
    held = set(zip(new.records["subject_id"], new.records["pii_type"]))
    assert listed <= held  # the masker knows every listed value


def test_other_record_kinds_fall_back_to_the_in_memory_path():
    recs = _records(1, 5) + [{"kind": "likelihood", "subject_id": "x", "pii_type": "email", "rank": 1}]
    assert summarize_out_of_core("pii", TARGET, lambda: iter(recs), PARAMS) is None


def test_cluster_sums_give_the_statsmodels_interval():
    rng = random.Random(0)
    for _ in range(50):
        sizes = [rng.randint(1, 5) for _ in range(rng.randint(1, 30))]
        q = rng.random()
        hits = [[rng.random() < q for _ in range(m)] for m in sizes]
        flat = [h for c in hits for h in c]
        labels = [g for g, c in enumerate(hits) for _ in c]
        ks = [sum(c) for c in hits]
        sums = ClusterSums(len(flat), sum(ks), sum(k * k for k in ks), sum(k * n for k, n in zip(ks, sizes)),
                           sum(n * n for n in sizes), len(sizes))
        _same(vars(clustered_proportion_of_sums(sums)), vars(clustered_proportion(flat, labels)))


def test_a_re_render_summarizes_pii_out_of_core_without_holding_every_record(tmp_path, monkeypatch):
    """`privaudit report` (load_run) streams the PII records into SQLite: the result holds only the
    listed pairs' records, and its numbers are the in-memory summary's."""
    import json

    from privaudit.attacks import pii_summary
    from privaudit.attacks import pii_sql
    from privaudit.engine.store import RunStore
    from privaudit.reports.rundir import load_run

    recs = _records(4, n_subjects=40)
    with RunStore(tmp_path / "run", flush_every=50) as store:
        store.extend(recs)
    (tmp_path / "run" / "manifest.json").write_text(json.dumps(
        {"config": {"attacks": {"pii": {"subjects": str(tmp_path / "subjects.jsonl")}}}}), encoding="utf-8")
    monkeypatch.setattr(pii_sql.summarize_out_of_core, "__defaults__", (5,))
    (result,) = load_run(tmp_path / "run").results
    old = pii_summary.summarize_records("pii", TARGET, record_frame(recs, slim_record), PARAMS)
    _same({k: vars(v) for k, v in result.metrics.items()}, {k: vars(v) for k, v in old.metrics.items()})
    assert len(result.tables["per_subject"]) == 5 and len(result.records) < len(recs)
    assert result.to_summary()["num_records"] == len(recs)
