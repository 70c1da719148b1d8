"""Scores computed from all stored document records at once: offline LiRA over reference models.

Offline LiRA (Carlini et al., "Membership Inference Attacks From First Principles", S&P 2022,
Sec. IV-C) fits each document's Gaussian from the reference models' statistics alone, but with few
references its variance is pooled over documents (Sec. VI-A), so the score needs every document's
record: it is added when the attack summarizes (and whenever a report re-summarizes), never per
batch. Labels are not used. The math is `membership_metrics.lira_offline`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from privaudit.attacks.membership_metrics import LIRA_PER_EXAMPLE_MIN, lira_offline


def computed_methods(docs: pd.DataFrame) -> set[str]:
    """Methods every stored document has a score for (those the summary reports)."""
    if not len(docs) or "scores" not in docs:
        return set()
    per_doc = [set(s) if isinstance(s, dict) else set() for s in docs["scores"]]
    return set.intersection(*per_doc)


def lira_variance_label(params: Any) -> str:
    if params.lira_variance != "auto":
        return params.lira_variance
    return "global (pooled over documents)" if len(params.references) < LIRA_PER_EXAMPLE_MIN else "per_example"


def with_lira_scores(docs: pd.DataFrame, params: Any) -> pd.DataFrame:
    """`docs` with each document's offline-LiRA z-score added to its `scores` (when references were scored).

    LiRA's per-document Gaussian needs only that document's reference statistics, but its pooled
    ("global") variance spans every document, so the score is computed here from all stored
    records rather than one batch at a time; labels are never used.
    """
    if ("lira" not in params.methods or not params.references or not len(docs)
            or "references_mean_logprob" not in docs):
        return docs
    refs = docs["references_mean_logprob"]
    if not all(isinstance(r, (list, tuple)) and len(r) == len(params.references) for r in refs):
        return docs  # records from a run with other references: not mixed
    fit = lira_offline([float(t) / int(n) for t, n in zip(docs["logprob_sum"], docs["num_tokens"])], [list(col) for col in zip(*refs)],
                       variance=params.lira_variance)
    docs = docs.copy()
    docs["scores"] = [{**s, "lira": z} for s, z in zip(docs["scores"], fit.scores)]
    return docs
