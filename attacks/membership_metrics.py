"""Pure metric functions of membership inference and canary exposure. No models, no I/O.

Convention everywhere: a *higher* score means "more likely a member" (training document), so an
attack's score is e.g. the negative loss. Labels are booleans (True = member).

- ROC AUC is the Mann-Whitney probability that a random member outscores a random non-member,
  ties counting one half (equal to the trapezoid area under the ROC curve): scikit-learn's
  `roc_auc_score` and `roc_curve`; inside the bootstrap, where it is computed a thousand times,
  the same number as scipy's Mann-Whitney U / (members x non-members), vectorised over replicates
  (scikit-learn's input checks cost ~5 ms a call, 25 times the statistic).
- TPR at a low FPR is the headline of "Membership Inference Attacks From First Principles"
  (Carlini et al., S&P 2022, Sec. III): an attack that is confident on a few members matters even
  when its AUC is modest.
- Intervals: a stratified percentile bootstrap, scipy's `bootstrap`, with a seeded NumPy
  generator (same seed, same interval). Documents of one data subject are not independent (a
  memorized subject's documents all score high), so with `clusters` the bootstrap resamples
  *subjects*, each with all of its documents (method `cluster_bootstrap`; Field & Welsh,
  "Bootstrapping clustered data", JRSS B 69:369, 2007, the "randomized cluster" bootstrap,
  consistent when clusters are independent; Davison & Hinkley 1997, Bootstrap Methods, Sec. 3.8,
  resampling at the top level of hierarchical data). Clusters are stratified by what they hold
  (only members, only non-members, both), so every replicate keeps both classes: each stratum is
  one of scipy's independent samples, its observations the clusters. A stratum of one cluster
  resamples to itself (scipy needs two observations a sample, and NumPy draws nothing for it), so
  it is held fixed. A document without a subject is its own cluster, so without clusters this is
  the document-level stratified bootstrap (method `bootstrap`), replicate for replicate.
- Exposure (Carlini et al., "The Secret Sharer", USENIX Security 2019, Sec. 4) by sampling:
  log2(#candidates) - log2(rank of the secret); and by distribution modelling (Sec. 4.2,
  "approximation by distribution modeling"): fit a skew-normal to the candidates' scores and
  read -log2 P(candidate >= secret), which can exceed log2 of the sample size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from privaudit.metrics import Estimate


@dataclass(frozen=True)
class RocCurve:
    """ROC points at every distinct score threshold, from (0, 0) to (1, 1); thresholds descending.

    The first threshold is +inf (nothing flagged), as in scikit-learn's `roc_curve`.
    """

    fpr: tuple[float, ...]
    tpr: tuple[float, ...]
    thresholds: tuple[float, ...]


def _split(scores: Sequence[float], labels: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores and labels must be 1-d of the same length, got {s.shape} and {y.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(f"need members and non-members, got {len(pos)} and {len(neg)}")
    return pos, neg


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve: P(member score > non-member score) + 0.5 P(tie); scikit-learn."""
    _split(scores, labels)
    from sklearn.metrics import roc_auc_score  # lazy: scikit-learn costs ~2 s of CLI start

    return float(roc_auc_score(np.asarray(labels, dtype=bool), np.asarray(scores, dtype=float)))


def _auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray | float:
    """AUC as Mann-Whitney U / (n_pos n_neg), scipy's; vectorised over leading (replicate) axes."""
    from scipy.stats import mannwhitneyu  # lazy: scipy.stats costs ~1 s, and specs load without it

    u = mannwhitneyu(pos, neg, axis=-1, method="asymptotic", use_continuity=False).statistic
    return u / (pos.shape[-1] * neg.shape[-1])


def roc_curve(scores: Sequence[float], labels: Sequence[bool]) -> RocCurve:
    """(FPR, TPR) when flagging every score >= each distinct threshold (no points dropped); scikit-learn."""
    _split(scores, labels)
    from sklearn.metrics import roc_curve as sk_roc_curve

    fpr, tpr, thresholds = sk_roc_curve(np.asarray(labels, dtype=bool), np.asarray(scores, dtype=float),
                                        drop_intermediate=False)
    return RocCurve(fpr=tuple(float(x) for x in fpr), tpr=tuple(float(x) for x in tpr),
                    thresholds=(math.inf, *(float(t) for t in thresholds[1:])))


def tpr_at_fpr(scores: Sequence[float], labels: Sequence[bool], max_fpr: float) -> float:
    """Highest TPR of any threshold whose FPR is <= `max_fpr` (Carlini et al. 2022, Sec. III).

    With fewer than 1/max_fpr non-members this is the TPR at zero false positives: the fraction of
    members scoring strictly above every non-member, the conservative reading of a small sample.
    """
    if not 0.0 <= max_fpr <= 1.0:
        raise ValueError(f"max_fpr must be in [0, 1], got {max_fpr}")
    pos, neg = _split(scores, labels)
    return float(_tpr_at_fpr(pos, neg, max_fpr))


def _tpr_at_fpr(pos: np.ndarray, neg: np.ndarray, max_fpr: float) -> np.ndarray | float:
    """The statistic of `tpr_at_fpr`, vectorised over leading (replicate) axes."""
    allowed = int(math.floor(max_fpr * neg.shape[-1] + 1e-9))  # false positives the budget allows
    if allowed >= neg.shape[-1]:
        return np.ones(pos.shape[:-1]) if pos.ndim > 1 else 1.0
    # flag scores strictly above the (allowed+1)-th highest non-member score: at most `allowed` FPs
    cut = -np.sort(-neg, axis=-1)[..., allowed]
    return np.mean(pos > np.expand_dims(cut, -1), axis=-1)


def _cluster_index(scores: Sequence[float], labels: Sequence[bool],
                   clusters: Sequence[object] | None) -> tuple[np.ndarray, np.ndarray, list[list[tuple[np.ndarray, np.ndarray]]]]:
    """(member scores, non-member scores, strata): each stratum a list of clusters, each cluster
    (positions of its members in `pos`, positions of its non-members in `neg`).

    Strata, in this order: clusters holding only members, only non-members, both. A cluster label
    of None is a cluster of one document.
    """
    pos, neg = _split(scores, labels)
    y = np.asarray(labels, dtype=bool)
    if clusters is None:
        labels_of = [("doc", i) for i in range(len(y))]
    else:
        if len(clusters) != len(y):
            raise ValueError(f"{len(y)} scores but {len(clusters)} cluster labels")
        labels_of = [("doc", i) if c is None else ("cluster", c) for i, c in enumerate(clusters)]
    pos_at = np.cumsum(y) - 1  # position of document j among the members (valid where y[j])
    neg_at = np.cumsum(~y) - 1
    members: dict[object, tuple[list[int], list[int]]] = {}
    for j, key in enumerate(labels_of):
        entry = members.setdefault(key, ([], []))
        (entry[0] if y[j] else entry[1]).append(int(pos_at[j] if y[j] else neg_at[j]))
    strata: list[list[tuple[np.ndarray, np.ndarray]]] = [[], [], []]
    for p_idx, n_idx in members.values():
        which = 0 if not n_idx else 1 if not p_idx else 2
        strata[which].append((np.asarray(p_idx, dtype=int), np.asarray(n_idx, dtype=int)))
    return pos, neg, strata


def _stratified_bootstrap(pos: np.ndarray, neg: np.ndarray, strata: list[list[tuple[np.ndarray, np.ndarray]]],
                          statistic, num_resamples: int, confidence: float, seed: int) -> tuple[float, float] | None:
    """Percentile interval of `statistic(member scores, non-member scores)` over clusters resampled
    within strata (scipy's `bootstrap`); None when no stratum has two clusters (nothing varies).

    `statistic` reduces the last axis: it gets the documents of many replicates stacked
    (replicates x documents). When every cluster of a stratum holds as many members and
    non-members as the others (clusters of one document, or subjects of one make-up) all replicates
    are one call; otherwise one call per group of replicates of one make-up.
    """
    from scipy.stats import bootstrap

    varying = [k for k, s in enumerate(strata) if len(s) >= 2]
    if not varying:
        return None
    fixed = [c for k, s in enumerate(strata) if len(s) == 1 for c in s]
    fixed_p = np.concatenate([p for p, _ in fixed] or [np.empty(0, dtype=int)])
    fixed_q = np.concatenate([q for _, q in fixed] or [np.empty(0, dtype=int)])
    uniform = all(len({(len(p), len(q)) for p, q in strata[k]}) == 1 for k in varying)

    def stacked(draws: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Member and non-member positions of every replicate (replicates x documents), uniform strata."""
        reps = len(draws[0])
        mem, non = [np.broadcast_to(fixed_p, (reps, len(fixed_p)))], [np.broadcast_to(fixed_q, (reps, len(fixed_q)))]
        for k, draw in zip(varying, draws):
            p_of = np.stack([p for p, _ in strata[k]])  # clusters x members of one cluster
            q_of = np.stack([q for _, q in strata[k]])
            mem.append(p_of[draw].reshape(reps, draw.shape[1] * p_of.shape[1]))
            non.append(q_of[draw].reshape(reps, draw.shape[1] * q_of.shape[1]))
        return np.concatenate(mem, axis=1), np.concatenate(non, axis=1)

    def one(draw_of: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Member and non-member positions of one replicate: draw_of[j] the clusters drawn from varying[j]."""
        chosen = [strata[k][i] for k, draw in zip(varying, draw_of) for i in draw] + fixed
        return np.concatenate([p for p, _ in chosen]), np.concatenate([q for _, q in chosen])

    def replicates(*draws: np.ndarray, axis: int = -1) -> np.ndarray:
        draws = [np.atleast_2d(d) for d in draws]  # each replicates x clusters of its stratum
        if uniform:
            mem, non = stacked(draws)
            return np.asarray(statistic(pos[mem], neg[non]), dtype=float)
        per_replicate = [one([d[b] for d in draws]) for b in range(len(draws[0]))]
        by_shape: dict[tuple[int, int], list[int]] = {}
        for b, (p, q) in enumerate(per_replicate):
            by_shape.setdefault((len(p), len(q)), []).append(b)
        out = np.empty(len(per_replicate))
        for rows in by_shape.values():
            out[rows] = statistic(pos[np.stack([per_replicate[b][0] for b in rows])],
                                  neg[np.stack([per_replicate[b][1] for b in rows])])
        return out

    result = bootstrap(tuple(np.arange(len(strata[k])) for k in varying), replicates, n_resamples=num_resamples,
                       confidence_level=confidence, method="percentile", vectorized=True, paired=False,
                       rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _estimate(point: float, interval: tuple[float, float] | None, n: int, clusters: int | None) -> Estimate:
    low, high = interval if interval is not None else (point, point)
    # a percentile interval that misses its own point estimate (tiny samples) is widened to hold it
    return Estimate(value=point, low=float(min(low, point)), high=float(max(high, point)), n=n,
                    method="bootstrap" if clusters is None else "cluster_bootstrap", clusters=clusters)


def _bootstrapped(scores: Sequence[float], labels: Sequence[bool], clusters: Sequence[object] | None,
                  statistic, num_resamples: int, confidence: float, seed: int, point: float | None = None) -> Estimate:
    pos, neg, strata = _cluster_index(scores, labels, clusters)
    interval = _stratified_bootstrap(pos, neg, strata, statistic, num_resamples, confidence, seed)
    num_clusters = None if clusters is None else sum(len(s) for s in strata)
    value = float(statistic(pos, neg)) if point is None else point
    return _estimate(value, interval, len(pos) + len(neg), num_clusters)


def auc_estimate(scores: Sequence[float], labels: Sequence[bool], *, clusters: Sequence[object] | None = None,
                 num_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> Estimate:
    """AUC with a stratified percentile-bootstrap interval; n = members + non-members.

    `clusters[j]` names document j's data subject (None: its own cluster); given, the bootstrap
    resamples subjects (method `cluster_bootstrap`, `clusters` = number of clusters).
    """
    return _bootstrapped(scores, labels, clusters, _auc, num_resamples, confidence, seed,
                         point=roc_auc(scores, labels))


def tpr_at_fpr_estimate(scores: Sequence[float], labels: Sequence[bool], max_fpr: float, *,
                        clusters: Sequence[object] | None = None, num_resamples: int = 1000,
                        confidence: float = 0.95, seed: int = 0) -> Estimate:
    """TPR at FPR <= max_fpr with a stratified percentile-bootstrap interval; n = members + non-members.

    `clusters` as in `auc_estimate`.
    """
    stat = lambda p, q: _tpr_at_fpr(p, q, max_fpr)  # noqa: E731
    return _bootstrapped(scores, labels, clusters, stat, num_resamples, confidence, seed)


# -- membership scores from token log-probabilities ----------------------------------------------

def mean_logprob(token_logprobs: Sequence[float]) -> float:
    """Negative average token loss: the LOSS attack's score (Yeom et al., CSF 2018)."""
    if not token_logprobs:
        raise ValueError("no tokens")
    return float(np.mean(token_logprobs))


def min_k_prob(token_logprobs: Sequence[float], k: float = 0.2) -> float:
    """Mean log-prob of the k fraction of least likely tokens (Min-K% Prob, Shi et al., ICLR 2024, Sec. 3).

    At least one token is always used; members have fewer surprising tokens, so a higher value.
    """
    if not 0.0 < k <= 1.0:
        raise ValueError(f"k must be in (0, 1], got {k}")
    if not token_logprobs:
        raise ValueError("no tokens")
    lp = np.sort(np.asarray(token_logprobs, dtype=float))
    count = max(1, int(len(lp) * k))
    return float(lp[:count].mean())


def zlib_entropy_bytes(text: str) -> int:
    """Length in bytes of the zlib-compressed UTF-8 text: a model-free measure of its complexity."""
    import zlib

    return len(zlib.compress(text.encode("utf-8")))


def zlib_ratio_score(mean_token_logprob: float, text: str) -> float:
    """Loss over zlib entropy (Carlini et al., "Extracting Training Data from LLMs", USENIX Sec. 2021,
    Sec. 5.2), negated so that higher means member: low loss on text zlib finds complex is suspicious."""
    return float(mean_token_logprob / zlib_entropy_bytes(text))


def reference_ratio_score(target_mean_logprob: float, reference_mean_logprob: float) -> float:
    """Target log-likelihood minus a reference model's (Carlini et al. 2021, Sec. 5.2; Mireshghallah
    et al., EMNLP 2022): calibrates away how easy a text is for any model of the language."""
    return float(target_mean_logprob - reference_mean_logprob)


# -- canary exposure -------------------------------------------------------------------------------

def sampled_exposure(true_score: float, candidate_scores: Sequence[float]) -> tuple[int, float]:
    """(rank, exposure bits) of the secret among itself + sampled candidates (Secret Sharer, Sec. 4).

    Higher score = more likely; ties count against the secret. Max exposure is log2(n + 1).
    """
    from privaudit.metrics import exposure_bits, rank_of_truth

    rank = rank_of_truth(true_score, list(candidate_scores))
    return rank, exposure_bits(rank, len(candidate_scores) + 1)


def fitted_exposure(true_score: float, candidate_scores: Sequence[float]) -> float:
    """Exposure by distribution modelling (Secret Sharer, Sec. 4.2): fit a skew-normal to candidate
    scores, exposure = -log2 P(candidate score >= secret's). Not bounded by the sample size."""
    from scipy.stats import skewnorm

    c = np.asarray(candidate_scores, dtype=float)
    if len(c) < 3 or float(np.std(c)) == 0.0:
        raise ValueError("need at least 3 candidates with distinct scores")
    a, loc, scale = skewnorm.fit(c)
    log_tail = float(skewnorm.logsf(true_score, a, loc, scale))
    return max(0.0, -log_tail / math.log(2))


# -- Min-K%++ (Zhang et al., 2024) ----------------------------------------------------------------

SIGMA_FLOOR = 1e-6  # a next-token distribution this peaked is one-hot in float32: its z-scores are 0/0


def min_k_plus_plus(token_logprobs: Sequence[float], means: Sequence[float], stds: Sequence[float],
                    k: float = 0.2) -> float:
    """Min-K%++ (Zhang et al., "Min-K%++: Improved Baseline for Detecting Pre-Training Data from LLMs",
    2024, Sec. 3, Eq. 2-3): each token's log-prob standardised by the model's own next-token
    distribution at that position, (log p(x_t | x_<t) - mu_t) / sigma_t, with mu_t = E_{z~p}[log p(z)]
    and sigma_t^2 = Var_{z~p}[log p(z)] over the whole vocabulary, then averaged over the k fraction
    of lowest tokens (at least one), as Min-K% does with raw log-probs.

    Why: training pushes each training token toward a *mode* of its conditional (a local maximum of
    the likelihood, the paper's Sec. 3.1), so a member's tokens sit high relative to the other
    candidates at the same position, whatever the position's entropy; Min-K% compares raw
    log-probs across positions of very different entropy. sigma is floored at `SIGMA_FLOOR` so a
    one-hot position scores 0 (not 0/0).
    """
    if not 0.0 < k <= 1.0:
        raise ValueError(f"k must be in (0, 1], got {k}")
    lp = np.asarray(token_logprobs, dtype=float)
    mu = np.asarray(means, dtype=float)
    sd = np.asarray(stds, dtype=float)
    if lp.size == 0:
        raise ValueError("no tokens")
    if not lp.shape == mu.shape == sd.shape:
        raise ValueError(f"log-probs, means and stds differ in length: {lp.shape}, {mu.shape}, {sd.shape}")
    if np.any(sd < 0):
        raise ValueError("standard deviations must be >= 0")
    z = np.sort((lp - mu) / np.maximum(sd, SIGMA_FLOOR))
    count = max(1, int(len(z) * k))
    return float(z[:count].mean())


# -- LiRA offline over reference models (Carlini et al., S&P 2022) ---------------------------------

LIRA_PER_EXAMPLE_MIN = 16  # below this many references the variance is pooled over documents (Sec. VI-A)


@dataclass(frozen=True)
class LiraFit:
    """Per-document z-scores of the target against its references' Gaussian, and how it was fitted."""

    scores: tuple[float, ...]
    variance: str  # "global" (pooled over documents) or "per_example"
    references: int


def lira_offline(target_stats: Sequence[float], reference_stats: Sequence[Sequence[float]],
                 variance: str = "auto") -> LiraFit:
    """Offline LiRA (Carlini et al., "Membership Inference Attacks From First Principles", S&P 2022,
    Sec. IV-C, Algorithm 1 offline): for each document x, the statistics of R reference models that
    did *not* train on x ("OUT" models) are fitted by a Gaussian N(mu_x, sigma_x^2), and the target's
    statistic s_x is scored by the one-sided test Lambda = Phi((s_x - mu_x) / sigma_x). Returned are
    the z-scores (s_x - mu_x) / sigma_x: Phi is one increasing function for every document, so they
    rank exactly as Lambda does, without Phi's saturation to 1.0 in float64.

    `reference_stats[j][x]` is reference j's statistic of document x (here the mean token log-prob,
    the language-model analogue of the paper's logit-scaled confidence, which is already unbounded).
    `variance`: "per_example" fits sigma_x from x's R values; "global" pools the within-document
    variance over every document, the paper's choice when shadow models are few (Sec. VI-A, "fixed
    variance"; per-example variance needs dozens); "auto" is global below `LIRA_PER_EXAMPLE_MIN`.
    """
    s = np.asarray(target_stats, dtype=float)
    r = np.asarray(reference_stats, dtype=float)
    if r.ndim != 2 or r.shape[1] != s.shape[0] or s.ndim != 1:
        raise ValueError(f"reference statistics must be references x documents ({len(s)}), got shape {r.shape}")
    if r.shape[0] < 2:
        raise ValueError(f"LiRA fits a Gaussian over reference models: needs at least 2, got {r.shape[0]}")
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(r))):
        raise ValueError("statistics must be finite")
    if variance == "auto":
        variance = "global" if r.shape[0] < LIRA_PER_EXAMPLE_MIN else "per_example"
    if variance not in ("global", "per_example"):
        raise ValueError(f"variance must be auto, global or per_example, got {variance!r}")
    mu = r.mean(axis=0)
    per_doc_var = r.var(axis=0, ddof=1)
    var = np.full_like(mu, per_doc_var.mean()) if variance == "global" else per_doc_var
    sigma = np.sqrt(np.maximum(var, SIGMA_FLOOR**2))
    return LiraFit(scores=tuple(float(v) for v in (s - mu) / sigma), variance=variance, references=int(r.shape[0]))
