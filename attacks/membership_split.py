"""How the member / non-member split was built, and whether it is shifted: membership's sanity checks.

Duan et al. ("Do Membership Inference Attacks Work on Large Language Models?", COLM 2024, MIMIR,
Sec. 4-5) show that many reported MIA successes measure a *distribution shift* between members and
non-members (different time, topic or source), not membership: their fix is to report how
non-members were drawn and their n-gram overlap with members (13-grams, Sec. 5.1). Das et al.
("Blind Baselines Beat Membership Inference Attacks for Foundation Models", 2024) add that a score
using no model at all reaches high AUC on shifted splits. So beside every membership result:

- construction: the generator that drew both splits (the corpus' `meta`), and the share of
  non-member documents whose data subject also has member documents (same subjects vs held-out
  subjects: privaudit's generator holds out whole subjects, so a subject is in one split);
- n-gram overlap: for each non-member document, the share of its word 13-grams that occur in some
  member document (a document shorter than n words counts as one n-gram, its whole word sequence);
  mean over non-members with a subject-clustered interval (`clustered_mean`);
- blind baseline: ROC AUC of model-free features (character length, zlib compressibility), the
  larger departure from 0.5 reported oriented (max(AUC, 1 - AUC)): near 0.5 means text features
  alone cannot tell the splits apart, so the attacks' AUCs are about the model.

Pure functions of documents and stored records; no model.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import pandas as pd

from privaudit.attacks.membership_metrics import auc_estimate, zlib_entropy_bytes
from privaudit.metrics import Estimate, clustered_mean

NGRAM = 13  # MIMIR's overlap unit (Duan et al. 2024, Sec. 5.1)
BLIND_FEATURES = {"length": "character length", "compressibility": "zlib bytes / UTF-8 bytes"}
_WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens: a tokenizer-free unit shared by every model."""
    return _WORD.findall(text.lower())


def ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    """The word n-grams of `text`; a text shorter than n words is one n-gram (all of its words)."""
    w = words(text)
    if not w:
        return set()
    if len(w) < n:
        return {tuple(w)}
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def ngram_overlaps(texts: Sequence[str], members: Sequence[bool], n: int = NGRAM) -> list[float]:
    """For each document, the share of its n-grams found in a document of the *other* split.

    A non-member's value is MIMIR's overlap with the member set; a member's, its overlap with the
    non-members (reported per record, summarised over non-members).
    """
    grams = [ngrams(t, n) for t in texts]
    pool = {True: set(), False: set()}
    for g, m in zip(grams, members):
        pool[bool(m)] |= g
    return [len(g & pool[not m]) / len(g) if g else 0.0 for g, m in zip(grams, members)]


def blind_features(text: str) -> dict[str, float]:
    """Model-free features of one document (Das et al. 2024's blind attacks use such text statistics)."""
    raw = max(1, len(text.encode("utf-8")))
    return {"length": float(len(text)), "compressibility": zlib_entropy_bytes(text) / raw}


def summarize_split(docs: pd.DataFrame, clusters: Sequence[Any], labels: Sequence[bool], *, bootstrap: int,
                    confidence: float, generator: str | None = None) -> tuple[dict[str, Estimate], dict[str, Any]]:
    """(metrics, table row) of the split's construction, its n-gram overlap and its blind baseline.

    Reads the record fields `ngram_overlap` and `blind` (written when the documents were scored);
    records from before them give only the subject overlap.
    """
    metrics: dict[str, Estimate] = {}
    non = [i for i, y in enumerate(labels) if not y]
    member_subjects = {c for c, y in zip(clusters, labels) if y and c is not None}
    shared = sum(1 for i in non if clusters[i] is not None and clusters[i] in member_subjects)
    row: dict[str, Any] = {
        "generator": generator, "members": sum(labels), "non_members": len(non),
        "member_subjects": len(member_subjects),
        "non_member_subjects": len({clusters[i] for i in non if clusters[i] is not None}),
        "non_members_sharing_a_subject": shared,
        "construction": ("held-out documents of subjects who also have member documents" if shared == len(non)
                         else "held-out subjects (no non-member shares a subject with a member)" if shared == 0
                         else f"{shared} of {len(non)} non-members share a subject with a member"),
    }
    if "ngram_overlap" in docs and docs["ngram_overlap"].notna().all():
        values = [float(v) for v in docs["ngram_overlap"]]
        est = clustered_mean([values[i] for i in non], [_own(clusters[i], i) for i in non], confidence)
        metrics["split_ngram_overlap"] = est
        row.update(ngram=NGRAM, ngram_overlap=est.value, ngram_overlap_low=est.low, ngram_overlap_high=est.high)
    if "blind" in docs and all(isinstance(b, dict) for b in docs["blind"]):
        best: tuple[float, str, Estimate] | None = None
        for seed, feature in enumerate(BLIND_FEATURES):
            scores = [float(b[feature]) for b in docs["blind"]]
            est = auc_estimate(scores, labels, clusters=list(clusters), num_resamples=bootstrap,
                               confidence=confidence, seed=500 + seed)
            oriented = est if est.value >= 0.5 else _flip(est)
            row[f"blind_auc_{feature}"] = est.value
            if best is None or oriented.value > best[0]:
                best = (oriented.value, feature, oriented)
        if best is not None:
            metrics["split_blind_auc"] = best[2]
            row.update(blind_feature=best[1], blind_auc=best[2].value, blind_auc_low=best[2].low,
                       blind_auc_high=best[2].high)
    return metrics, row


def split_assumption(row: dict[str, Any]) -> str:
    """One sentence for the result's assumptions: how non-members were drawn and how shifted they are."""
    parts = [f"non-members: {row['construction']}"]
    if row.get("generator"):
        parts.append(f"both splits drawn by {row['generator']}")
    if "ngram_overlap" in row:
        parts.append(f"{row['ngram']}-gram overlap of non-members with members {row['ngram_overlap']:.2f}")
    if "blind_auc" in row:
        parts.append(f"blind baseline (no model, {BLIND_FEATURES[row['blind_feature']]}) AUC "
                     f"{row['blind_auc']:.2f} [{row['blind_auc_low']:.2f}, {row['blind_auc_high']:.2f}]")
    return "; ".join(parts) + " (MIMIR, Duan et al. 2024: a shifted split inflates every AUC)"


def _own(cluster: Any, i: int) -> Any:
    return cluster if cluster is not None else ("doc", i)


def _flip(est: Estimate) -> Estimate:
    return Estimate(value=1.0 - est.value, low=1.0 - est.high, high=1.0 - est.low, n=est.n, method=est.method,
                    clusters=est.clusters)

