"""Pure metric functions with their confidence intervals. No I/O here.

Every rate a report shows comes with an interval, so a user can tell "0 hits in 20 probes" from
"0 hits in 20,000 probes".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a two-sided confidence interval and the sample size behind it."""

    value: float
    low: float
    high: float
    n: int
    method: str = "wilson"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Estimate":
        return cls(**{k: d[k] for k in ("value", "low", "high", "n") if k in d}, method=d.get("method", "wilson"))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927); well behaved at 0 and n."""
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} outside [0, {n}]")
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)  # stdlib: scipy.stats costs ~0.8 s per CLI start
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Clamp rounding noise so that 0 hits gives exactly 0 as the lower bound.
    return (max(0.0, centre - half) if successes else 0.0, min(1.0, centre + half) if successes < n else 1.0)


def proportion(successes: int, n: int, confidence: float = 0.95) -> Estimate:
    """A rate with its Wilson interval; n == 0 gives value NaN and the uninformative [0, 1]."""
    low, high = wilson_interval(successes, n, confidence)
    value = successes / n if n else float("nan")
    return Estimate(value=value, low=low, high=high, n=n, method="wilson")


def exposure_bits(rank: int, num_candidates: int) -> float:
    """Canary exposure (Carlini et al., The Secret Sharer, 2019): log2 |candidates| - log2 rank.

    rank is 1-based among all candidates including the true value; the maximum is log2 |candidates|.
    """
    if num_candidates < 1 or not 1 <= rank <= num_candidates:
        raise ValueError(f"rank {rank} outside [1, {num_candidates}]")
    return math.log2(num_candidates) - math.log2(rank)


def rank_of_truth(true_score: float, other_scores: list[float]) -> int:
    """1-based rank of the true value's score among candidates (ties count against the truth)."""
    return 1 + sum(1 for s in other_scores if s >= true_score)
