"""Per-subject risk ranking: which data subjects a model reveals most about, from the records.

A rate over 20 subjects hides that one person may lose every field while the others lose none;
a privacy officer answering a data-subject request needs the persons in order. Per target, each
subject gets (from the records, never from the summary's rounded numbers):

- `fields_leaked`: PII fields some template produced verbatim (ProPILE Sec. 3.1, the (subject,
  field) unit of `pii.exact_match_rate`), out of `fields_probed`;
- `best_likelihood_rank`: the best rank of any true value among its candidates under the
  likelihood probe (ProPILE Sec. 3.2; 1 = the model prefers the true value to every decoy);
- `membership_score`: for the subject's best-scoring training document, the share of non-member
  documents it outscores under the best membership method (1.0 = above every non-member).

Subjects are ordered by fields leaked (more first), then best rank (lower first), then membership
score (higher first); missing values sort last. summary.json holds the whole ranking
(`subject_risk`), the report its top.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from typing import Any, Sequence

import pandas as pd

RISK_TOP = 10


def _subjects(block: dict[str, dict[str, Any]], subject: Any) -> dict[str, Any]:
    key = str(subject)
    return block.setdefault(key, {"subject_id": key, "fields_leaked": 0, "fields_probed": 0, "leaked_fields": [],
                                  "best_likelihood_rank": None, "likelihood_candidates": None,
                                  "membership_score": None})


def _pii(records: pd.DataFrame, block: dict[str, dict[str, Any]]) -> None:
    if "kind" not in records.columns or "subject_id" not in records.columns:
        return
    extract = records[records["kind"] == "extract"]
    if len(extract) and "exact" in extract.columns:
        pairs = extract.assign(exact=extract["exact"].astype(bool)).groupby(["subject_id", "pii_type"], sort=True)["exact"].any()
        for (subject, field), leaked in pairs.items():
            row = _subjects(block, subject)
            row["fields_probed"] += 1
            if leaked:
                row["fields_leaked"] += 1
                row["leaked_fields"].append(str(field))
    likelihood = records[records["kind"] == "likelihood"]
    if len(likelihood) and "rank" in likelihood.columns:
        for subject, grp in likelihood.groupby("subject_id", sort=True):
            ranks = pd.to_numeric(grp["rank"], errors="coerce").dropna()
            if ranks.empty:
                continue
            best = grp.loc[ranks.idxmin()]
            row = _subjects(block, subject)
            row["best_likelihood_rank"] = int(best["rank"])
            cands = best.get("num_candidates")
            row["likelihood_candidates"] = int(cands) if isinstance(cands, (int, float)) and math.isfinite(cands) else None


def _best_method(result: Any, methods: Sequence[str]) -> str | None:
    aucs = {m: result.metrics[f"auc.{m}"].value for m in methods if f"auc.{m}" in result.metrics}
    aucs = {m: v for m, v in aucs.items() if isinstance(v, float) and math.isfinite(v)}
    return max(aucs, key=lambda m: (aucs[m], m)) if aucs else (methods[0] if methods else None)


def _membership(result: Any, records: pd.DataFrame, block: dict[str, dict[str, Any]]) -> None:
    if "probe" not in records.columns or "scores" not in records.columns:
        return
    docs = records[(records["probe"] == "doc") & records["scores"].map(lambda s: isinstance(s, dict))]
    if docs.empty:
        return
    methods = sorted({m for s in docs["scores"] for m in s})
    method = _best_method(result, methods)
    if method is None:
        return
    score = docs["scores"].map(lambda s: s.get(method))
    member = docs["member"].astype(bool)
    others = sorted(float(v) for v in score[~member] if isinstance(v, (int, float)) and math.isfinite(v))
    if not others:
        return
    for subject, grp in docs[member].groupby("subject_id", sort=True):
        values = [float(v) for v in score[grp.index] if isinstance(v, (int, float)) and math.isfinite(v)]
        if values and subject is not None:
            row = _subjects(block, subject)
            row["membership_score"] = bisect_left(others, max(values)) / len(others)


def _order(row: dict[str, Any]) -> tuple[Any, ...]:
    rank = row["best_likelihood_rank"]
    mem = row["membership_score"]
    return (-row["fields_leaked"], rank if rank is not None else math.inf, -(mem if mem is not None else -1.0),
            row["subject_id"])


def subject_risk(results: Sequence[Any]) -> list[dict[str, Any]]:
    """Per target, every subject ranked by what leaks about it (see the module docstring)."""
    blocks: dict[str, dict[str, dict[str, Any]]] = {}
    for result in results:
        records = getattr(result, "records", None)
        if not isinstance(records, pd.DataFrame) or records.empty:
            continue
        if result.attack == "pii":
            _pii(records, blocks.setdefault(str(result.target), {}))
        elif result.attack == "membership":
            _membership(result, records, blocks.setdefault(str(result.target), {}))
    out = []
    for target, block in blocks.items():
        if not block:
            continue
        rows = sorted(block.values(), key=_order)
        out.append({"target": target, "subjects": [{"rank": i + 1, **r} for i, r in enumerate(rows)]})
    return out
