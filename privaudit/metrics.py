"""Pure metric functions with their confidence intervals, and the metric contract. No I/O here.

Every rate a report shows comes with an interval at its unit of analysis, so a user can tell
"0 hits in 20 probes" from "0 hits in 20,000 probes", and 27 correlated probes of one person from
27 people. The contract (`MetricSpec`) says for each metric what kind of number it is, which
direction is worse and what one unit of analysis is; the gate reads it (privaudit.gate).

Interval methods (the `method` field of an `Estimate`):
- `wilson`: independent Bernoulli trials (Wilson 1927), computed by statsmodels.
- `wilson_design_effect`: records that share a cluster (probes of one subject, samples of one
  item, guesses of one author). Wilson's interval at the effective sample size n / deff, with the
  design effect deff from the cluster-robust variance of the ratio estimator (Kish 1965, Survey
  Sampling Sec. 8.2; Korn & Graubard 1998 for effective-n intervals of proportions). Where the
  variance is degenerate (no hit or every record a hit) deff is not estimable and the conservative
  worst case, one effective trial per cluster, is used: n_eff is never below the number of clusters
  and never above the number of records.
- `cluster_robust_t`: a mean or a paired difference with a cluster-robust (CR1) standard error and
  a t quantile with G - 1 degrees of freedom (Cameron & Miller 2015, J. Human Resources 50:317),
  from statsmodels' OLS with `cov_type="cluster"`. A paired difference whose every unit agrees has
  no variance to estimate; its interval is then +- the Wilson upper bound of 0 discordant units in
  G (a McNemar-type bound: the difference cannot exceed the share of units that differ).
- `newcombe`: a difference of two independent rates, Newcombe's hybrid score interval (Newcombe
  1998, method 10) from statsmodels.
- `point` / `accountant` / `count`: a value without sampling error (perplexity, epsilon spent,
  a count of significant tests); gateable on the value.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable, Literal, Mapping, Sequence

Kind = Literal["proportion", "mean", "difference", "count", "point"]
Direction = Literal["higher_is_worse", "lower_is_worse", "two_sided"]
KINDS: tuple[str, ...] = ("proportion", "mean", "difference", "count", "point")
DIRECTIONS: tuple[str, ...] = ("higher_is_worse", "lower_is_worse", "two_sided")
# Kinds whose value is meaningful without a sample (n = 0 does not make them unmeasured).
VALUE_KINDS = frozenset({"count", "point"})


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a two-sided confidence interval and the sample behind it.

    `n` counts the records (probes, samples, documents) and `clusters` the independent units the
    interval was computed over when they differ (subjects, items, authors); `None` when each record
    is its own unit.
    """

    value: float
    low: float
    high: float
    n: int
    method: str = "wilson"
    clusters: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Estimate":
        clusters = d.get("clusters")
        return cls(**{k: d[k] for k in ("value", "low", "high", "n") if k in d}, method=d.get("method", "wilson"),
                   clusters=clusters if isinstance(clusters, int) else None)


# -- the contract -----------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricSpec:
    """One metric (or a family, `exact_match_rate.{pii_type}`) that an attack can report.

    `unit` is the unit of analysis of the *value* (what one trial is: "probe", "subject_field",
    "subject", "item", "author", "document", "variant"); the interval's cluster, where records
    share one, is in `cluster`. Names follow reports/SCHEMA.md's scheme: `FAMILY` or
    `FAMILY.MEMBER` (`top1.age`), snake_case parts, a `.` only between family and member.

    `headline` marks the few metrics that tell an attack's story (e.g. pii's `exact_match_rate`,
    membership's `auc`): the terminal summary after a run, the report's headline table and
    `privaudit diff` show these first, every other metric on request (`--verbose`, collapsed
    sections). Keep it to a few per attack.

    A declaration with `deprecated_alias_of` is an old name: its pattern is the name before a
    rename and `deprecated_alias_of` the current pattern (with the same `{placeholders}`). The gate
    accepts the old name for one release, with a one-line warning (`MetricSpecs.current_name`).
    """

    pattern: str
    kind: Kind
    direction: Direction
    unit: str
    description: str = ""
    cluster: str | None = None
    deprecated_alias_of: str | None = None  # the current name of this old name (see the docstring)
    # One of the attack's few headline metrics: the report's first-screen table and the terminal
    # summary show these (the rest stay one click away), so a reader sees the finding, not 130 rows.
    headline: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"metric {self.pattern}: kind {self.kind!r} not one of {KINDS}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"metric {self.pattern}: direction {self.direction!r} not one of {DIRECTIONS}")
        if self.deprecated_alias_of is not None:
            extra = set(_placeholders(self.deprecated_alias_of)) - set(_placeholders(self.pattern))
            if extra:
                raise ValueError(f"metric {self.pattern}: its new name {self.deprecated_alias_of!r} uses "
                                 f"{{{sorted(extra)[0]}}}, which the old name does not have")

    @property
    def regex(self) -> re.Pattern[str]:
        return _pattern_regex(self.pattern)

    def matches(self, name: str) -> bool:
        return bool(self.regex.fullmatch(name))

    def renamed(self, name: str) -> str | None:
        """The current name of `name` when this declaration is an old name that matches it, else None.

        Placeholders carry over: old `top1_hardness{hardness}` -> new `top1.hardness{hardness}`
        turns `top1_hardness3` into `top1.hardness3`.
        """
        if self.deprecated_alias_of is None:
            return None
        match = _pattern_regex(self.pattern, capture=True).fullmatch(name)
        if match is None:
            return None
        values = match.groupdict()
        return re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: values[m.group(1)], self.deprecated_alias_of)

    def contract(self) -> dict[str, Any]:
        """The fields summary.json carries next to each metric's numbers."""
        return {"kind": self.kind, "direction": self.direction, "unit": self.unit,
                "cluster": self.cluster, "pattern": self.pattern, "headline": self.headline}


_PLACEHOLDER = re.compile(r"(\{[A-Za-z_][A-Za-z0-9_]*\})")


def _placeholders(pattern: str) -> list[str]:
    return [p[1:-1] for p in _PLACEHOLDER.findall(pattern)]


def _pattern_regex(pattern: str, capture: bool = False) -> re.Pattern[str]:
    """`exact_match_rate.{pii_type}` -> a regex; with `capture`, each placeholder a named group."""
    seen: set[str] = set()
    out = []
    for part in _PLACEHOLDER.split(pattern):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            out.append("[^@]+?" if not capture else f"(?P={name})" if name in seen else f"(?P<{name}>[^@]+?)")
            seen.add(name)
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


@dataclass(frozen=True)
class MetricSpecs:
    """Every metric an attack can report, in declaration order; the first matching pattern wins."""

    specs: tuple[MetricSpec, ...] = field(default_factory=tuple)

    def __iter__(self):
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def find(self, name: str) -> MetricSpec | None:
        """The declaration `name` matches (an old, deprecated name included)."""
        return next((s for s in self.specs if s.matches(name)), None)

    def patterns(self) -> list[str]:
        """The current names (what an error lists as "its metrics"); old names are left out."""
        return [s.pattern for s in self.specs if s.deprecated_alias_of is None]

    def current_name(self, name: str) -> str:
        """`name` itself, or its current name when `name` is a deprecated old name (`top1_age` -> `top1.age`)."""
        spec = self.find(name)
        renamed = spec.renamed(name) if spec is not None else None
        return renamed if renamed is not None else name

    def renames(self) -> dict[str, str]:
        """Old pattern -> current pattern, for every deprecated name declared."""
        return {s.pattern: s.deprecated_alias_of for s in self.specs if s.deprecated_alias_of is not None}

    def __add__(self, other: "MetricSpecs") -> "MetricSpecs":
        return MetricSpecs(self.specs + tuple(other.specs))


def metric_specs(*specs: MetricSpec) -> MetricSpecs:
    return MetricSpecs(tuple(specs))


def with_old_names(specs: MetricSpecs, renames: Mapping[str, str]) -> MetricSpecs:
    """`specs` plus each old name (old pattern -> current pattern) declared as a deprecated alias.

    The old name keeps the contract of the metric it now names, so a threshold on it is checked at
    load like the current name, and the gate can map it over (`MetricSpecs.current_name`).
    """
    by_pattern = {s.pattern: s for s in specs}
    old = []
    for old_pattern, new_pattern in renames.items():
        if new_pattern not in by_pattern:
            raise ValueError(f"old metric name {old_pattern!r}: its new name {new_pattern!r} is not declared")
        if specs.find(old_pattern) is not None:
            raise ValueError(f"old metric name {old_pattern!r} is matched by a current declaration")
        old.append(replace(by_pattern[new_pattern], pattern=old_pattern, deprecated_alias_of=new_pattern, headline=False,
                           description=f"deprecated name of {new_pattern} (accepted until the next release)"))
    return specs + MetricSpecs(tuple(old))


def with_contract(name: str, estimate: Estimate, spec: MetricSpec) -> dict[str, Any]:
    """One metric as summary.json stores it: the numbers plus its declared contract."""
    return {**estimate.to_dict(), **spec.contract(), "name": name}


# -- independent trials -----------------------------------------------------------------------
def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927); well behaved at 0 and n.

    statsmodels' `proportion_confint(method="wilson")`, imported here rather than at module level
    (statsmodels pulls in scipy.stats, ~1 s, and the CLI and a spec load must not pay for it).
    `n` may be an effective (non-integer) sample size; `successes` is then p * n.
    """
    if n <= 0:
        return (0.0, 1.0)
    if not -1e-9 <= successes <= n + 1e-9:
        raise ValueError(f"successes={successes} outside [0, {n}]")
    from statsmodels.stats.proportion import proportion_confint

    successes = min(float(n), max(0.0, float(successes)))  # the 1e-9 slack above, clipped
    low, high = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    # Exact ends: 0 hits gives a lower bound of exactly 0 (and n hits an upper bound of 1), not rounding noise.
    return (float(low) if successes > 0 else 0.0, float(high) if successes < n else 1.0)


def newcombe_interval(k1: float, n1: float, k2: float, n2: float, confidence: float = 0.95) -> tuple[float, float]:
    """Interval for p1 - p2 of two independent samples: Newcombe's hybrid score interval (Newcombe
    1998, Stat. Med. 17:873, method 10), statsmodels' `confint_proportions_2indep(method="newcomb")`.

    Counts and sizes may be effective (non-integer: clustered records at n / deff); the interval is
    clipped to [-1, 1], and is (-1, 1) when either sample is empty.
    """
    if n1 <= 0 or n2 <= 0:
        return (-1.0, 1.0)
    from statsmodels.stats.proportion import confint_proportions_2indep

    low, high = confint_proportions_2indep(min(max(k1, 0.0), n1), n1, min(max(k2, 0.0), n2), n2,
                                           method="newcomb", compare="diff", alpha=1 - confidence)
    return (max(-1.0, float(low)), min(1.0, float(high)))


def proportion(successes: int, n: int, confidence: float = 0.95) -> Estimate:
    """A rate of independent trials with its Wilson interval; n == 0 gives NaN and the uninformative [0, 1]."""
    low, high = wilson_interval(successes, n, confidence)
    value = successes / n if n else float("nan")
    return Estimate(value=value, low=low, high=high, n=n, method="wilson")


# -- clustered records ------------------------------------------------------------------------
def _cluster_codes(clusters: Sequence[Any]) -> list[int]:
    codes: dict[Any, int] = {}
    return [codes.setdefault(c, len(codes)) for c in clusters]


def _cluster_robust_mean(values: Sequence[float], clusters: Sequence[Any]) -> tuple[float, float, int]:
    """(mean, cluster-robust CR1 standard error, number of clusters), via statsmodels OLS on a constant."""
    import numpy as np
    import statsmodels.api as sm

    y = np.asarray(values, dtype=float)
    groups = np.asarray(_cluster_codes(clusters))
    num_clusters = int(groups.max()) + 1 if len(groups) else 0
    mean = float(y.mean())
    if num_clusters < 2 or float(np.ptp(y)) == 0.0:
        return mean, 0.0, num_clusters
    fit = sm.OLS(y, np.ones((len(y), 1))).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    return mean, float(fit.bse[0]), num_clusters


def clustered_proportion(hits: Sequence[bool | float], clusters: Sequence[Any], confidence: float = 0.95) -> Estimate:
    """The share of records that hit, with an interval at the cluster (method `wilson_design_effect`).

    `hits[j]` is record j's 0/1 outcome and `clusters[j]` the unit it belongs to (a subject id, an
    item id). Perfectly clustered hits (one unit hits on every record, the others never) give about
    the Wilson interval of 1 in G: the width follows the number of units, not of records.
    """
    n = len(hits)
    if len(clusters) != n:
        raise ValueError(f"{n} hits but {len(clusters)} cluster labels")
    if n == 0:
        return Estimate(value=float("nan"), low=0.0, high=1.0, n=0, method="wilson_design_effect", clusters=0)
    p, n_eff, g = _design_effect_sample([float(h) for h in hits], list(clusters))
    low, high = wilson_interval(p * n_eff, n_eff, confidence)
    return Estimate(value=p, low=low, high=high, n=n, method="wilson_design_effect", clusters=g)


def _design_effect_sample(hits: list[float], clusters: list[Any]) -> tuple[float, float, int]:
    """(share of hits, effective sample size n / deff, number of clusters) of clustered 0/1 records.

    deff comes from the cluster-robust variance of the ratio estimator (Kish 1965, Sec. 8.2);
    n_eff is clipped to [clusters, records]; where deff is not estimable (no hit, or every record a
    hit) the worst case, one effective trial per cluster. Records that are each their own cluster
    are worth n trials.
    """
    n = len(hits)
    p, se, g = _cluster_robust_mean(hits, clusters)
    if g == n:
        return p, float(n), g
    n_eff = p * (1 - p) / (se * se) if se > 0 and 0 < p < 1 else float(g)
    return p, min(float(n), max(float(g), n_eff)), g


@dataclass(frozen=True)
class ClusterSums:
    """Sufficient statistics of clustered 0/1 records: what `clustered_proportion` needs, as sums.

    With k_g hits in the n_g records of cluster g: n = sum n_g, hits = sum k_g, k2 = sum k_g^2,
    kn = sum k_g n_g, n2 = sum n_g^2, clusters = G. Integers, so a GROUP BY over records on disk
    (attacks/pii_sql.py) gives the same interval as the per-record lists, without holding them.
    """

    n: int
    hits: int
    k2: int
    kn: int
    n2: int
    clusters: int


def clustered_proportion_of_sums(s: ClusterSums, confidence: float = 0.95) -> Estimate:
    """`clustered_proportion` from `ClusterSums` (same Estimate, to float rounding).

    The CR1 variance of a mean over records (OLS on a constant, statsmodels' small-sample factor
    G/(G-1) * (n-1)/(n-1)) is G/(G-1) * sum_g (k_g - n_g p)^2 / n^2, and the sum of squares
    expands to k2 - 2 p kn + p^2 n2 (Cameron & Miller 2015); the rest is `_design_effect_sample`.
    """
    n, g = int(s.n), int(s.clusters)
    if n == 0:
        return Estimate(value=float("nan"), low=0.0, high=1.0, n=0, method="wilson_design_effect", clusters=0)
    p = s.hits / n
    if g == n:
        n_eff = float(n)
    else:
        se = 0.0
        if g >= 2 and 0 < s.hits < n:
            ss = max(0.0, s.k2 - 2 * p * s.kn + p * p * s.n2)
            se = math.sqrt(g / (g - 1) * ss) / n
        n_eff = p * (1 - p) / (se * se) if se > 0 and 0 < p < 1 else float(g)
        n_eff = min(float(n), max(float(g), n_eff))
    low, high = wilson_interval(p * n_eff, n_eff, confidence)
    return Estimate(value=p, low=low, high=high, n=n, method="wilson_design_effect", clusters=g)


def effective_sample_size(hits: Sequence[float], clusters: Sequence[Any] | None) -> float:
    """n / deff: the number of independent trials clustered 0/1 records are worth (what
    `clustered_proportion` computes its Wilson interval at); `None` clusters = independent records."""
    n = len(hits)
    if clusters is None or n == 0:
        return float(n)
    return _design_effect_sample([float(h) for h in hits], list(clusters))[1]


def clustered_mean(values: Sequence[float], clusters: Sequence[Any], confidence: float = 0.95) -> Estimate:
    """A mean over records with a cluster-robust t interval (method `cluster_robust_t`)."""
    n = len(values)
    if n == 0:
        return Estimate(value=float("nan"), low=float("nan"), high=float("nan"), n=0, method="cluster_robust_t",
                        clusters=0)
    mean, se, g = _cluster_robust_mean(values, clusters)
    if g < 2:
        return Estimate(value=mean, low=float("nan"), high=float("nan"), n=n, method="cluster_robust_t", clusters=g)
    from scipy.stats import t as student_t

    half = float(student_t.ppf(1 - (1 - confidence) / 2, g - 1)) * se
    return Estimate(value=mean, low=mean - half, high=mean + half, n=n, method="cluster_robust_t", clusters=g)


def paired_difference(a: Sequence[float], b: Sequence[float], clusters: Sequence[Any] | None = None,
                      confidence: float = 0.95, bounds: tuple[float, float] = (-1.0, 1.0)) -> Estimate:
    """mean(a) - mean(b) where a[j] and b[j] are the same probe j on two models (or two conditions).

    The interval is over the paired differences d_j = a_j - b_j with a cluster-robust t interval
    (clusters default to one per record). When no unit differs, the interval is +- the Wilson
    upper bound of 0 discordant units among G: agreement on 20 subjects cannot exclude a
    difference of 0.16. Values are clipped to `bounds` (a difference of proportions lies in [-1, 1]).
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    clusters = list(range(len(a))) if clusters is None else list(clusters)
    n = len(a)
    lo_b, hi_b = bounds
    if n == 0:
        return Estimate(value=float("nan"), low=lo_b, high=hi_b, n=0, method="cluster_robust_t", clusters=0)
    d = [float(x) - float(y) for x, y in zip(a, b)]
    mean, se, g = _cluster_robust_mean(d, clusters)
    if se == 0.0 or g < 2:
        # No unit disagrees with another (or only one unit): the share of discordant units bounds it.
        half = wilson_interval(0, max(g, 1), confidence)[1]
        return Estimate(value=mean, low=max(lo_b, mean - half), high=min(hi_b, mean + half), n=n,
                        method="cluster_robust_t", clusters=g)
    from scipy.stats import t as student_t

    half = float(student_t.ppf(1 - (1 - confidence) / 2, g - 1)) * se
    return Estimate(value=mean, low=max(lo_b, mean - half), high=min(hi_b, mean + half), n=n,
                    method="cluster_robust_t", clusters=g)


# -- values without sampling error ------------------------------------------------------------
def point_value(value: float, method: str = "point") -> Estimate:
    """A number that has no sampling interval (perplexity on a fixed set, epsilon spent): low = high = value."""
    return Estimate(value=float(value), low=float(value), high=float(value), n=0, method=method)


def count_value(count: int | float, n: int = 0) -> Estimate:
    """A count (e.g. of significant tests): gateable on its value."""
    c = float(count)
    return Estimate(value=c, low=c, high=c, n=n, method="count")


# -- other pure metrics -----------------------------------------------------------------------
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
