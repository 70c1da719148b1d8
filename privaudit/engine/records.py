"""Out-of-core reads of a run's records: slim summary frames and the top records of an ordering.

Why: at the scale of a user base (100k data subjects, a few probes each) results.jsonl is GBs and
reading every record into one DataFrame (prompts, outputs and all) made a summary's memory grow
with the number of subjects. Summaries need a few small columns, and reports that list records
(evidence, worst subjects) need the first rows of an ordering, never all rows. So:

- `record_frame` streams the records through an attack's `slim` function (which drops what its
  summary does not read, e.g. prompts and outputs) into the same DataFrame `pd.DataFrame(records)`
  would give on the slimmed records, with repeated strings and dicts shared rather than copied;
- `top_records` streams the records and keeps only the `limit` first of an ordering (a heap of
  `limit` records), for reports and their evidence excerpts.

results.jsonl stays the append-only, resumable source of truth; nothing here writes it.
"""

from __future__ import annotations

import heapq
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import pandas as pd

from privaudit.engine.store import read_records

Record = Mapping[str, Any]


def _interned(pool: dict[Any, Any], value: Any) -> Any:
    """One shared object per distinct string (or flat dict of strings) of a column."""
    if isinstance(value, str):
        return pool.setdefault(value, value)
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return pool.setdefault(("dict", tuple(value.items())), value)
    return value


def record_frame(records: Iterable[Record], slim: Callable[[Record], Record] | None = None) -> pd.DataFrame:
    """`pd.DataFrame([slim(r) for r in records])`, built one record at a time with shared values.

    Columns appear in first-seen order and a record lacking a column gets NaN there, as with a list
    of dicts; tests/test_scale_summaries.py checks the frames (and every PII metric) are equal.
    """
    columns: dict[str, list[Any]] = {}
    pools: dict[str, dict[Any, Any]] = {}
    n = 0
    for rec in records:
        row = slim(rec) if slim is not None else rec
        for key, value in row.items():
            col = columns.get(key)
            if col is None:
                col = columns[key] = [float("nan")] * n
                pools[key] = {}
            col.append(_interned(pools[key], value))
        n += 1
        for col in columns.values():
            if len(col) < n:
                col.append(float("nan"))
    if not n:
        return pd.DataFrame()
    return pd.DataFrame.from_records(_rows(columns, n), columns=list(columns), nrows=n)


def _rows(columns: dict[str, list[Any]], n: int) -> Iterable[tuple[Any, ...]]:
    cols = list(columns.values())
    for i in range(n):
        yield tuple(col[i] for col in cols)


def run_record_frame(root: Path, attack: str, target: str, slim: Callable[[Record], Record] | None = None) -> pd.DataFrame:
    """`record_frame` over one (attack, target) of a run folder's results.jsonl."""
    return record_frame(read_records(Path(root), attack=attack, target=target), slim)


def top_records(root: Path, attack: str, target: str, key: Callable[[Record], Any], limit: int,
                where: Callable[[Record], bool] | None = None) -> list[dict[str, Any]]:
    """The `limit` records of (attack, target) with the largest `key`, largest first; ties in file order.

    Memory is `limit` records whatever the run's size (heapq.nlargest keeps a heap of `limit`):
    what an HTML report's evidence list or a per-subject table should call instead of loading every
    record. `where` filters first (e.g. `lambda r: r.get("kind") == "extract"`).
    """
    if limit <= 0:
        return []
    stream = read_records(Path(root), attack=attack, target=target)
    if where is not None:
        stream = (r for r in stream if where(r))
    return heapq.nlargest(limit, stream, key=key)
