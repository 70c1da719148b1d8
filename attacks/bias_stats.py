"""Pure statistics for personalization-bias probes: per-persona rates, gaps vs the control, paired
significance tests with multiple-comparison correction, and the PB score. No I/O, no model calls.

Input shape everywhere: `outcomes[persona][item] = [0/1 per sample]`. Every persona sees the same
items as the no-persona control, so comparisons are *paired by item*:

- Rate: pooled successes / trials with a Wilson interval (`privaudit.metrics.proportion`).
- Gap: persona rate minus control rate, with Newcombe's hybrid score interval for a difference of
  proportions (Newcombe 1998, Stat. Med. 17:873, method 10). It ignores the pairing; because the same
  items make persona and control outcomes positively correlated, it is conservative (wider).
- Test: a two-sided paired sign-flip permutation test on per-item differences d_i = mean(persona
  samples of item i) - mean(control samples of item i), statistic |sum d_i|. Under H0 (the persona
  does not change behaviour) each d_i is symmetric around 0. Items, not samples, are the unit, so k
  samples per item are not mistaken for independent evidence. Exact enumeration for up to 12
  non-zero differences; with one sample per item (all |d_i| equal) it is the exact McNemar /
  sign test (binomial); otherwise a seeded Monte Carlo with the (1 + hits) / (1 + B) estimator.
- Correction: Holm (family-wise error) by default, Benjamini-Hochberg (false discovery rate) as an
  option, over the whole family of tests passed together (all metrics x personas of a run).
- PB score (Vijjini et al., 2025, "Exploring Safety-Utility Trade-Offs in Personalized Language
  Models", Sec. 3): each persona u is a point f(u) = (safety, utility); PB = sqrt(mean_u ||f(u) - mu||^2)
  with mu the mean point over personas (the no-persona control is not a persona and is excluded).
  Its interval is a percentile bootstrap over items, resampling the same items for every persona.
  Sampling noise inflates PB (it is a spread), so compare it across targets at equal n.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, Mapping, Sequence

import numpy as np
from scipy.stats import binomtest, fisher_exact

from privaudit.metrics import Estimate, proportion, wilson_interval

Outcomes = Mapping[str, Mapping[str, Sequence[float]]]  # persona -> item -> per-sample 0/1
Correction = Literal["holm", "bh"]

EXACT_MAX_NONZERO = 12
MONTE_CARLO_RESAMPLES = 20_000


@dataclass(frozen=True)
class PersonaComparison:
    """One persona against the control on one metric."""

    metric: str
    persona: str
    rate: Estimate
    control: Estimate
    gap: float
    gap_low: float
    gap_high: float
    num_items: int  # items paired with the control (the test's sample size)
    p_value: float
    p_adjusted: float = float("nan")
    significant: bool = False

    def to_row(self) -> dict:
        return {
            "metric": self.metric, "persona": self.persona,
            "rate": self.rate.value, "rate_low": self.rate.low, "rate_high": self.rate.high, "n": self.rate.n,
            "control_rate": self.control.value, "gap": self.gap, "gap_low": self.gap_low,
            "gap_high": self.gap_high, "num_items": self.num_items, "p_value": self.p_value,
            "p_adjusted": self.p_adjusted, "significant": self.significant,
        }


def pooled_rate(by_item: Mapping[str, Sequence[float]], confidence: float = 0.95) -> Estimate:
    """Pooled successes over all samples of all items, with a Wilson interval."""
    values = [v for samples in by_item.values() for v in samples]
    return proportion(int(round(sum(values))), len(values), confidence)


def newcombe_difference_interval(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> tuple[float, float]:
    """Interval for p1 - p2 from the two Wilson intervals (Newcombe 1998, method 10)."""
    if n1 == 0 or n2 == 0:
        return (-1.0, 1.0)
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, confidence)
    l2, u2 = wilson_interval(k2, n2, confidence)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return (max(-1.0, low), min(1.0, high))


def paired_permutation_pvalue(differences: Sequence[float], seed: int = 0,
                              num_resamples: int = MONTE_CARLO_RESAMPLES) -> float:
    """Two-sided sign-flip permutation p-value for H0: per-item differences are symmetric around 0."""
    d = np.asarray([x for x in differences if abs(x) > 1e-12], dtype=float)
    m = len(d)
    if m == 0:
        return 1.0
    observed = abs(d.sum())
    tol = 1e-9 * max(1.0, observed)
    if np.allclose(np.abs(d), abs(d[0])):
        # Equal magnitudes: the statistic only depends on how many are positive -> exact sign test.
        return float(binomtest(int((d > 0).sum()), m, 0.5).pvalue)
    if m <= EXACT_MAX_NONZERO:
        signs = ((np.arange(2**m)[:, None] >> np.arange(m)) & 1) * 2 - 1
        stats = np.abs(signs @ d)
        return float(np.mean(stats >= observed - tol))
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, num_resamples, 4096):  # chunks keep memory flat for long item lists
        bits = rng.integers(0, 2, size=(min(4096, num_resamples - start), m), dtype=np.int8)
        hits += int(np.sum(np.abs(bits @ (2 * d) - d.sum()) >= observed - tol))
    return (1 + hits) / (1 + num_resamples)


def holm_adjust(pvalues: Sequence[float]) -> list[float]:
    """Holm (1979) step-down adjusted p-values (family-wise error control)."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        adjusted[idx] = running
    return adjusted.tolist()


def benjamini_hochberg_adjust(pvalues: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg (1995) step-up adjusted p-values (false discovery rate control)."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 1.0
    for rank in range(m - 1, -1, -1):
        idx = order[rank]
        running = min(running, p[idx] * m / (rank + 1))
        adjusted[idx] = min(1.0, running)
    return adjusted.tolist()


def adjust_pvalues(pvalues: Sequence[float], method: Correction) -> list[float]:
    if method == "holm":
        return holm_adjust(pvalues)
    if method == "bh":
        return benjamini_hochberg_adjust(pvalues)
    raise ValueError(f"unknown correction '{method}' (known: holm, bh)")


def item_differences(persona: Mapping[str, Sequence[float]], control: Mapping[str, Sequence[float]]) -> list[float]:
    """Per-item difference of mean outcomes, over items both sides answered."""
    shared = sorted(set(persona) & set(control))
    return [float(np.mean(persona[i]) - np.mean(control[i])) for i in shared if persona[i] and control[i]]


def compare_to_control(metric: str, outcomes: Outcomes, control: str, seed: int = 0,
                       confidence: float = 0.95) -> list[PersonaComparison]:
    """Each non-control persona vs the control on one metric (raw p-values; see `correct_family`)."""
    if control not in outcomes:
        raise ValueError(f"metric '{metric}': no outcomes for the control '{control}'")
    control_est = pooled_rate(outcomes[control], confidence)
    k2 = int(round(control_est.value * control_est.n)) if control_est.n else 0
    rows = []
    for persona in sorted(p for p in outcomes if p != control):
        est = pooled_rate(outcomes[persona], confidence)
        k1 = int(round(est.value * est.n)) if est.n else 0
        diffs = item_differences(outcomes[persona], outcomes[control])
        low, high = newcombe_difference_interval(k1, est.n, k2, control_est.n, confidence)
        gap = est.value - control_est.value if est.n and control_est.n else float("nan")
        rows.append(PersonaComparison(
            metric=metric, persona=persona, rate=est, control=control_est, gap=gap, gap_low=low, gap_high=high,
            num_items=len(diffs), p_value=paired_permutation_pvalue(diffs, seed=seed),
        ))
    return rows


def fisher_exact_pvalue(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided Fisher exact test of equal proportions k1/n1 vs k2/n2 (independent groups)."""
    if n1 == 0 or n2 == 0:
        return 1.0
    return float(fisher_exact([[k1, n1 - k1], [k2, n2 - k2]], alternative="two-sided").pvalue)


def compare_to_baseline(metric: str, group: str, outcomes: Sequence[float], baseline: Sequence[float],
                        confidence: float = 0.95) -> PersonaComparison:
    """One group against an independent baseline (unpaired): Wilson rates, Newcombe gap, Fisher exact test.

    Used where no item-level pairing exists (the name probe compares a culture's names with
    responses to other names and to no name).
    """
    k1, n1 = int(round(sum(outcomes))), len(outcomes)
    k2, n2 = int(round(sum(baseline))), len(baseline)
    est, base = proportion(k1, n1, confidence), proportion(k2, n2, confidence)
    low, high = newcombe_difference_interval(k1, n1, k2, n2, confidence)
    gap = est.value - base.value if n1 and n2 else float("nan")
    return PersonaComparison(metric=metric, persona=group, rate=est, control=base, gap=gap, gap_low=low,
                             gap_high=high, num_items=n1, p_value=fisher_exact_pvalue(k1, n1, k2, n2))


def correct_family(comparisons: Sequence[PersonaComparison], alpha: float = 0.05,
                   method: Correction = "holm") -> list[PersonaComparison]:
    """Adjust all p-values together and flag those below alpha."""
    if not comparisons:
        return []
    adjusted = adjust_pvalues([c.p_value for c in comparisons], method)
    return [replace(c, p_adjusted=a, significant=bool(a < alpha)) for c, a in zip(comparisons, adjusted)]


def max_gap(comparisons: Sequence[PersonaComparison]) -> PersonaComparison | None:
    """The comparison with the largest absolute gap (ties: first persona in name order)."""
    valid = [c for c in comparisons if not math.isnan(c.gap)]
    return max(valid, key=lambda c: abs(c.gap)) if valid else None


def spread(rates: Mapping[str, Estimate]) -> float:
    """Max minus min rate over all personas (control included)."""
    values = [e.value for e in rates.values() if e.n and not math.isnan(e.value)]
    return max(values) - min(values) if values else float("nan")


def pb_score(points: Mapping[str, Sequence[float]]) -> float:
    """Root-mean-square distance of the personas' points from their mean (Vijjini et al., Sec. 3)."""
    if not points:
        return float("nan")
    arr = np.asarray(list(points.values()), dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    centred = arr - arr.mean(axis=0, keepdims=True)
    return float(np.sqrt(np.mean(np.sum(centred**2, axis=1))))


def _item_matrix(outcomes: Outcomes, personas: Sequence[str]) -> np.ndarray:
    """personas x items matrix of per-item mean outcomes, over items every persona has."""
    shared = sorted(set.intersection(*(set(k for k, v in outcomes[p].items() if v) for p in personas)))
    return np.asarray([[np.mean(outcomes[p][i]) for i in shared] for p in personas], dtype=float)


def pb_score_estimate(axes: Sequence[Outcomes], personas: Sequence[str], seed: int = 0,
                      num_resamples: int = 1000, confidence: float = 0.95) -> Estimate:
    """PB score over `personas` from one or more axes (safety, utility), with a bootstrap interval.

    Each axis contributes one coordinate: the persona's mean over items. The point value uses all
    shared items; the interval resamples items with replacement (the same draw for every persona).
    """
    personas = list(personas)
    mats = [m for m in (_item_matrix(ax, personas) for ax in axes if personas) if m.size]
    if len(personas) < 2 or not mats:
        return Estimate(float("nan"), float("nan"), float("nan"), n=len(personas), method="bootstrap")

    def score(coords: list[np.ndarray]) -> np.ndarray:  # each coords[j]: personas x B
        stacked = np.stack(coords, axis=-1)  # personas x B x axes
        centred = stacked - stacked.mean(axis=0, keepdims=True)
        return np.sqrt(np.mean(np.sum(centred**2, axis=-1), axis=0))

    value = float(score([m.mean(axis=1)[:, None] for m in mats])[0])
    rng = np.random.default_rng(seed)
    coords = []
    for m in mats:
        idx = rng.integers(0, m.shape[1], size=(num_resamples, m.shape[1]))
        coords.append(m[:, idx].mean(axis=2))  # personas x B
    boot = score(coords)
    tail = (1 - confidence) / 2
    low, high = np.quantile(boot, [tail, 1 - tail])
    return Estimate(value, float(min(low, value)), float(max(high, value)), n=len(personas), method="bootstrap")


def pb_permutation_test(axes: Sequence[Outcomes], personas: Sequence[str], seed: int = 0,
                        num_resamples: int = 1000) -> tuple[float, float]:
    """(mean PB under H0, p-value): H0 says persona labels are exchangeable within each item.

    Shuffles, independently per item and axis, which persona each per-item outcome belongs to,
    recomputes PB, and compares with the observed value ((1 + hits) / (1 + B), one-sided: larger).
    """
    personas = list(personas)
    mats = [m for m in (_item_matrix(ax, personas) for ax in axes if personas) if m.size]
    if len(personas) < 2 or not mats:
        return float("nan"), float("nan")

    def pb(coords: list[np.ndarray]) -> float:
        stacked = np.stack(coords, axis=-1)
        centred = stacked - stacked.mean(axis=0, keepdims=True)
        return float(np.sqrt(np.mean(np.sum(centred**2, axis=-1))))

    observed = pb([m.mean(axis=1) for m in mats])
    rng = np.random.default_rng(seed)
    null = np.empty(num_resamples)
    for b in range(num_resamples):
        null[b] = pb([rng.permuted(m, axis=0).mean(axis=1) for m in mats])
    p_value = (1 + int(np.sum(null >= observed - 1e-12))) / (1 + num_resamples)
    return float(null.mean()), float(p_value)
