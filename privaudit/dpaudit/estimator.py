"""The one-run epsilon lower bound of Steinke, Nasr and Jagielski, "Privacy Auditing with One (1)
Training Run" (NeurIPS 2023), as pure functions of counts.

Setting (their Sec. 3): m canaries, each included in training by an independent fair coin. The
auditor guesses "member" for some canaries and "non-member" for others and abstains on the rest:
r guesses, v of them correct. Under (epsilon, delta)-DP the number of correct guesses is
stochastically dominated by Binomial(r, e^eps / (1 + e^eps)), up to a delta term (their Theorem 3
/ Proposition 5.2; the p-value of Algorithm 1 in their Appendix):

    p(eps) = P[Binomial(r, q) >= v] + 2 m delta * max_{1 <= i <= v} P[v - i <= Binomial(r, q) < v] / i

with q = e^eps / (1 + e^eps). The claim "the training was (eps, delta)-DP" is rejected at
significance beta when p(eps) <= beta; p is increasing in eps, so the set of rejected epsilons is
an interval [0, eps*) and eps* is the lower bound reported at confidence 1 - beta.

Choosing the guesses after seeing the scores is itself a choice that must be paid for: this module
does it with a Bonferroni correction over a fixed grid fixed before the scores are seen
(`bonferroni_bound`): each of the G (signal, k+, k-) cells is tested at beta / G, so the largest
bound among them holds at confidence 1 - beta jointly. (jax_privacy offers the same two options,
Bonferroni or a held-out split; with the few hundred canaries a CI run can afford, halving m for
a split costs more than log G in significance.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from privaudit.errors import InputError

EPS_CAP = 64.0  # an all-correct audit bounds epsilon by about log(r) + log(1/beta); 64 is far above any r here


def _check_counts(m: int, r: int, v: int) -> None:
    if not 0 <= v <= r <= m:
        raise InputError(f"dp audit: need 0 <= correct ({v}) <= guesses ({r}) <= canaries ({m})")


def p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """P-value of observing >= v correct out of r guesses under an (eps, delta)-DP null hypothesis.

    Steinke et al., Algorithm 1 (Appendix): binomial tail plus the delta term 2 m delta alpha,
    alpha = max_i P[v - i <= Binomial(r, q) < v] / i. `v = 0` is always explained (p = 1).
    """
    from scipy.stats import binom

    _check_counts(m, r, v)
    if eps < 0 or not 0 <= delta <= 1:
        raise InputError(f"dp audit: need eps >= 0 and 0 <= delta <= 1, got eps={eps}, delta={delta}")
    if v == 0:
        return 1.0
    q = 1.0 / (1.0 + math.exp(-eps))
    tail = float(binom.sf(v - 1, r, q))  # P[Binomial(r, q) >= v]
    if delta == 0:
        return min(tail, 1.0)
    alpha = max((float(binom.sf(v - i - 1, r, q)) - tail) / i for i in range(1, v + 1))
    return min(tail + 2 * m * delta * alpha, 1.0)


def epsilon_lower_bound(m: int, r: int, v: int, delta: float, beta: float = 0.05) -> float:
    """The largest eps whose (eps, delta)-DP claim the counts reject at significance `beta` (0 if none).

    Bisection on the increasing function p(eps) (to 1e-6); capped at `EPS_CAP`. r = 0 (abstain on
    every canary) and v <= r / 2 (no better than chance) give 0.
    """
    if not 0 < beta < 1:
        raise InputError(f"dp audit: beta must be in (0, 1), got {beta}")
    _check_counts(m, r, v)
    if r == 0 or p_value(m, r, v, 0.0, delta) > beta:
        return 0.0
    lo, hi = 0.0, 1.0
    while p_value(m, r, v, hi, delta) <= beta:
        lo, hi = hi, hi * 2
        if hi > EPS_CAP:
            return EPS_CAP
    while hi - lo > 1e-6:
        mid = (lo + hi) / 2
        if p_value(m, r, v, mid, delta) <= beta:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(frozen=True)
class Guesses:
    """One cell of the grid: `k_pos` highest scores guessed member, `k_neg` lowest guessed non-member."""

    k_pos: int
    k_neg: int
    guesses: int
    correct: int


def count_guesses(scores: Sequence[float], included: Sequence[bool], k_pos: int, k_neg: int) -> Guesses:
    """Guess member for the k_pos highest scores and non-member for the k_neg lowest; count correct.

    Ties are broken by position (a stable sort), so the count is a pure function of its inputs.
    """
    if len(scores) != len(included):
        raise InputError(f"dp audit: {len(scores)} scores for {len(included)} canaries")
    if k_pos < 0 or k_neg < 0 or k_pos + k_neg > len(scores):
        raise InputError(f"dp audit: k+ ({k_pos}) + k- ({k_neg}) must be between 0 and {len(scores)} canaries")
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    neg, pos = order[:k_neg], order[len(order) - k_pos:] if k_pos else []
    correct = sum(bool(included[i]) for i in pos) + sum(not included[i] for i in neg)
    return Guesses(k_pos, k_neg, k_pos + k_neg, correct)


def guess_grid(m: int, fractions: Sequence[float] = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0)) -> list[tuple[int, int]]:
    """The fixed (k+, k-) grid: k+ = k- = f * m / 2 for each fraction f (symmetric, f = 1 guesses all)."""
    cells = []
    for f in fractions:
        k = max(1, int(round(f * m / 2)))
        if 2 * k <= m and (k, k) not in cells:
            cells.append((k, k))
    return cells


@dataclass(frozen=True)
class Bound:
    """The reported bound: the best grid cell, tested at beta / cells (Bonferroni)."""

    epsilon: float
    signal: str
    k_pos: int
    k_neg: int
    guesses: int
    correct: int
    cells: int
    beta: float


def bonferroni_bound(scores_by_signal: dict[str, Sequence[float]], included: Sequence[bool], delta: float,
                     beta: float = 0.05, grid: Sequence[tuple[int, int]] | None = None) -> Bound:
    """The largest lower bound over every (signal, k+, k-) cell, each at significance beta / cells.

    The grid is fixed by m before any score is read, so the union bound makes the maximum valid at
    confidence 1 - beta. An empty score table or no canaries is an input error.
    """
    m = len(included)
    if m == 0 or not scores_by_signal:
        raise InputError("dp audit: no canaries or no scores to audit")
    grid = list(grid) if grid is not None else guess_grid(m)
    cells = len(grid) * len(scores_by_signal)
    best: Bound | None = None
    for signal, scores in scores_by_signal.items():
        for k_pos, k_neg in grid:
            g = count_guesses(scores, included, k_pos, k_neg)
            eps = epsilon_lower_bound(m, g.guesses, g.correct, delta, beta / cells)
            if best is None or eps > best.epsilon:
                best = Bound(eps, signal, k_pos, k_neg, g.guesses, g.correct, cells, beta)
    assert best is not None
    return best
