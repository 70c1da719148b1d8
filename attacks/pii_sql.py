"""The PII extraction summary computed out of core: SQLite GROUP BYs over the stored records.

Why (issue 18): at a user base's scale (100k data subjects, a few probes each) even the slim
summary frame (`pii_summary.summarize_records` over `engine.records.record_frame`, ~1 KB a record)
made peak memory grow with the number of subjects. Every PII extraction metric is a share with
its interval clustered by subject, and that interval needs only integer sums per cluster
(`metrics.ClusterSums`: n, hits, sum k_g^2, sum k_g n_g, sum n_g^2, G), which a GROUP BY on disk
gives. So the records are streamed once into a temporary SQLite file (one small row each, plus the
slim record as JSON), every metric and table is one query, and only the *listed* pairs' records
(the per-subject table's top `PER_SUBJECT_ROWS` (subject, field) pairs, and the subjects of the
first evidence hits) come back into memory. Python memory is then flat in subjects: SQLite's page
cache is capped (`CACHE_KIB`), and no per-subject object is held.

Scope: records of kind `extract` only (black-box extraction, the part that scales; the streamed
run path `PiiExtraction._run_streamed`). A run with likelihood, baseline, soft-prompt or scan
records returns None here and is summarized in memory as before. The numbers equal the in-memory
path's (tests/test_pii_sql.py checks metrics and tables on random records).
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import pandas as pd

from privaudit.attacks.base import AttackResult
from privaudit.attacks.pii_probing import EXTRACT
from privaudit.attacks.pii_summary import (
    PER_SUBJECT_ROWS,
    _assumptions,
    _est_row,
    _jsonable_params,
    exact_by_level_chart,
    per_subject_table,
    slim_record,
)
from privaudit.engine.records import record_frame
from privaudit.metrics import ClusterSums, Estimate, clustered_proportion_of_sums

Record = Mapping[str, Any]
# SQLite page cache per summary (KiB): the bound on what the database holds in memory.
CACHE_KIB = 1024
# Evidence reads the first hits of the run (reports/evidence.py FULL_HITS); their subjects' records
# come back too, so the report's masker knows their values.
EVIDENCE_HITS = 200
_INSERT_ROWS = 5000
_COLUMNS = ("seq", "subject_id", "pii_type", "template_id", "level", "association", "exact", "partial", "rec")


def _flag(value: Any) -> int:
    """A hit column as the in-memory path reads it (`Series.astype(bool)`)."""
    return int(bool(value))


def _rows(records: Iterable[Record], skipped: list[int]) -> Iterator[tuple[Any, ...]]:
    for seq, rec in enumerate(records):
        if rec.get("kind") != EXTRACT:
            skipped[0] += 1
            continue
        slim = slim_record(rec)
        yield (seq, str(rec.get("subject_id")), str(rec.get("pii_type")), str(rec.get("template_id")),
               rec.get("level"), rec.get("association"), _flag(rec.get("exact")), _flag(rec.get("partial")),
               json.dumps(slim, separators=(",", ":")))


def load_records(conn: sqlite3.Connection, records: Iterable[Record]) -> tuple[int, int]:
    """Stream records into table `r` (extract records only); (rows stored, other records seen)."""
    conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    conn.execute("PRAGMA temp_store=FILE")
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("CREATE TABLE r (seq INTEGER, subject_id TEXT, pii_type TEXT, template_id TEXT, level, "
                 "association, exact INTEGER, partial INTEGER, rec TEXT)")
    skipped = [0]
    stored = 0
    rows = _rows(records, skipped)
    sql = f"INSERT INTO r VALUES ({','.join('?' * len(_COLUMNS))})"
    while True:
        chunk = [row for _, row in zip(range(_INSERT_ROWS), rows)]
        if not chunk:
            break
        conn.executemany(sql, chunk)
        stored += len(chunk)
    conn.execute("CREATE INDEX r_pair ON r (subject_id, pii_type)")
    conn.commit()
    return stored, skipped[0]


# Probe-level source (one row per record) and the (subject, field) unit source (one row per pair,
# leaked when any probe of the pair hit: the headline unit, ProPILE Sec. 3.1).
_PROBES = "SELECT subject_id, pii_type, template_id, level, association, exact AS e, partial AS p FROM r"
_UNITS = "SELECT subject_id, pii_type, MAX(exact) AS e, MAX(partial) AS p FROM r GROUP BY subject_id, pii_type"


def cluster_sums(conn: sqlite3.Connection, source: str, keys: tuple[str, ...] = ()) -> dict[tuple, dict[str, Any]]:
    """Per group of `keys` (ordered): `ClusterSums` of the exact and partial flags, clustered by subject."""
    sel = "".join(f"{k}, " for k in keys)
    grp = ", ".join(keys)
    sql = (f"WITH c AS (SELECT {sel}subject_id, SUM(e) AS ke, SUM(p) AS kp, COUNT(*) AS n FROM ({source}) "
           f"GROUP BY {sel}subject_id) "
           f"SELECT {sel}COUNT(*), SUM(n), SUM(ke), SUM(ke*ke), SUM(ke*n), SUM(kp), SUM(kp*kp), SUM(kp*n), SUM(n*n) "
           f"FROM c" + (f" GROUP BY {grp} ORDER BY {grp}" if keys else ""))
    out: dict[tuple, dict[str, Any]] = {}
    for row in conn.execute(sql):
        group, (g, n, ke, ke2, ken, kp, kp2, kpn, n2) = tuple(row[: len(keys)]), row[len(keys):]
        if not n:
            continue
        out[group] = {"exact": ClusterSums(n, ke, ke2, ken, n2, g), "partial": ClusterSums(n, kp, kp2, kpn, n2, g)}
    return out


def _rates(sums: dict[str, Any]) -> dict[str, Estimate]:
    return {c: clustered_proportion_of_sums(s) for c, s in sums.items()}


def _group_table(conn: sqlite3.Connection, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """`pii_summary._group_table` from the database: per-probe rates per group, clustered by subject."""
    rows = []
    for group, sums in cluster_sums(conn, _PROBES, keys).items():
        rates = _rates(sums)
        row: dict[str, Any] = dict(zip(keys, group))
        row["probes"] = int(sums["exact"].n)
        row["subjects"] = int(sums["exact"].clusters)
        row.update(_est_row("exact_match_rate", rates["exact"]))
        row.update(_est_row("partial_match_rate", rates["partial"]))
        rows.append(row)
    return rows


def _records_of_pairs(conn: sqlite3.Connection, where: str) -> pd.DataFrame:
    """The slim records (file order) of the pairs selected by `where` (a query of subject_id, pii_type)."""
    sql = (f"SELECT rec FROM r JOIN ({where}) AS w USING (subject_id, pii_type) ORDER BY r.seq")
    return record_frame(json.loads(rec) for (rec,) in conn.execute(sql))


def _listed_pairs(limit: int) -> str:
    """The `limit` worst-leaking pairs (`pii_summary.worst_subject_fields`'s order), as a query."""
    return (f"SELECT subject_id, pii_type FROM r GROUP BY subject_id, pii_type "
            f"ORDER BY SUM(exact) DESC, SUM(partial) DESC, subject_id, pii_type LIMIT {int(limit)}")


def _evidence_pairs() -> str:
    """The pairs of the subjects of the first hits in evidence's order (exact first, subject order)."""
    return (f"SELECT DISTINCT r2.subject_id, r2.pii_type FROM r AS r2 JOIN (SELECT subject_id FROM r "
            f"WHERE exact OR partial ORDER BY exact DESC, subject_id LIMIT {EVIDENCE_HITS}) AS h "
            f"USING (subject_id)")


def summarize_db(conn: sqlite3.Connection, attack: str, target_name: str, params: Any,
                 limit: int = PER_SUBJECT_ROWS) -> AttackResult:
    """`pii_summary.summarize_records` of extract-only records, from table `r` (see module docstring)."""
    metrics: dict[str, Estimate] = {}
    tables: dict[str, list[dict[str, Any]]] = {}
    charts: dict[str, Any] = {}
    units = cluster_sums(conn, _UNITS).get((), None)
    if units is None:
        raise ValueError("no extraction records")
    overall = _rates(units)
    metrics["exact_match_rate"], metrics["partial_match_rate"] = overall["exact"], overall["partial"]
    unit_types = cluster_sums(conn, _UNITS, ("pii_type",))
    for (pii_type,), sums in unit_types.items():
        rates = _rates(sums)
        metrics[f"exact_match_rate.{pii_type}"] = rates["exact"]
        metrics[f"partial_match_rate.{pii_type}"] = rates["partial"]
    metrics["any_template_exact_match_rate"] = metrics["exact_match_rate"]
    probes = _rates(cluster_sums(conn, _PROBES)[()])
    metrics["probe_exact_match_rate"], metrics["probe_partial_match_rate"] = probes["exact"], probes["partial"]
    for (pii_type,), sums in cluster_sums(conn, _PROBES, ("pii_type",)).items():
        rates = _rates(sums)
        metrics[f"probe_exact_match_rate.{pii_type}"] = rates["exact"]
        metrics[f"probe_partial_match_rate.{pii_type}"] = rates["partial"]
    tables["per_type"] = _group_table(conn, ("pii_type",))
    for row in tables["per_type"]:
        row["subject_fields"] = int(unit_types[(row["pii_type"],)]["exact"].n)
        row.update(_est_row("subject_field_exact_match_rate", metrics[f"exact_match_rate.{row['pii_type']}"]))
    tables["per_level"] = _group_table(conn, ("level", "association"))
    tables["per_template"] = _group_table(conn, ("template_id", "pii_type", "level", "association"))
    charts["exact_by_level"] = exact_by_level_chart(tables["per_level"])
    listed = _records_of_pairs(conn, _listed_pairs(limit))
    tables["per_subject"] = per_subject_table(listed, pd.DataFrame(), pd.DataFrame(), limit)
    provenance: dict[str, Any] = {"paper": "ProPILE (Kim et al., NeurIPS 2023)", "params": _jsonable_params(params)}
    total_pairs = int(units["exact"].n)
    num_records = int(probes["exact"].n)
    records = listed
    if len(tables["per_subject"]) < total_pairs:
        provenance["per_subject_rows"] = {"shown": len(tables["per_subject"]), "of": total_pairs,
                                          "order": "most verbatim probes, then most partial, then subject id"}
        records = _records_of_pairs(conn, f"SELECT * FROM ({_listed_pairs(limit)}) UNION SELECT * FROM ({_evidence_pairs()})")
        provenance["out_of_core"] = {"records": num_records, "records_held": int(len(records)),
                                     "held": "records of the listed pairs and of the first evidence hits' subjects"}
    return AttackResult(attack=attack, target=target_name, records=records, metrics=metrics, tables=tables,
                        charts=charts, assumptions=_assumptions(params, {EXTRACT}), provenance=provenance,
                        record_count=num_records)


def summarize_out_of_core(attack: str, target_name: str, records: Callable[[], Iterable[Record]], params: Any,
                          limit: int = PER_SUBJECT_ROWS) -> AttackResult | None:
    """The PII summary of `records()` through a temporary SQLite file; None unless every record is `extract`.

    `records` is called once (a fresh stream, e.g. `RunStore.iter_records`); the database lives in a
    temporary folder and is removed afterwards (results.jsonl stays the only source of truth).
    """
    with tempfile.TemporaryDirectory(prefix="privaudit-summary-") as tmp:
        conn = sqlite3.connect(Path(tmp) / "records.sqlite")
        try:
            stored, other = load_records(conn, records())
            if other or not stored:
                return None
            return summarize_db(conn, attack, target_name, params, limit)
        finally:
            conn.close()
