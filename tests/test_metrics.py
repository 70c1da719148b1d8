"""Metric functions against hand-computed values and scipy's reference implementation."""

from __future__ import annotations

import math

import pytest
import statsmodels.stats.proportion  # noqa: F401  (wilson_interval imports it on first use: warm, so hypothesis' deadline times the interval, not the import)
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binomtest

from privaudit.metrics import Estimate, exposure_bits, proportion, rank_of_truth, wilson_interval


@given(n=st.integers(min_value=1, max_value=5000), data=st.data())
def test_wilson_matches_scipy(n, data):
    k = data.draw(st.integers(min_value=0, max_value=n))
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(ref.low, abs=1e-9)
    assert high == pytest.approx(ref.high, abs=1e-9)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_hand_computed_zero_of_twenty():
    # z=1.96: upper = z^2/n / (1 + z^2/n) = 0.19207 / 1.19207 = 0.1611
    low, high = wilson_interval(0, 20)
    assert low == 0.0
    assert high == pytest.approx(0.1611, abs=1e-3)


def test_proportion_with_no_trials_is_uninformative():
    est = proportion(0, 0)
    assert math.isnan(est.value) and (est.low, est.high, est.n) == (0.0, 1.0, 0)


def test_exposure_bits():
    assert exposure_bits(1, 1024) == pytest.approx(10.0)
    assert exposure_bits(1024, 1024) == pytest.approx(0.0)
    assert exposure_bits(4, 16) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        exposure_bits(0, 10)


def test_rank_of_truth_counts_ties_against_the_truth():
    assert rank_of_truth(-1.0, [-2.0, -3.0]) == 1
    assert rank_of_truth(-1.0, [-1.0, -0.5, -3.0]) == 3


# -- the metric contract and clustered intervals -------------------------------------------------
from privaudit.metrics import (  # noqa: E402
    MetricSpec,
    clustered_mean,
    clustered_proportion,
    count_value,
    metric_specs,
    paired_difference,
    point_value,
)


def _perfectly_clustered(subjects: int, probes: int) -> tuple[list[bool], list[int]]:
    """Subject 0 leaks on every probe, the others on none."""
    hits = [s == 0 for s in range(subjects) for _ in range(probes)]
    return hits, [s for s in range(subjects) for _ in range(probes)]


@pytest.mark.parametrize("subjects", [10, 20, 100])
def test_perfectly_clustered_hits_get_the_width_of_the_number_of_subjects(subjects):
    hits, clusters = _perfectly_clustered(subjects, 27)
    est = clustered_proportion(hits, clusters)
    by_subject = wilson_interval(1, subjects)
    by_probe = wilson_interval(27, 27 * subjects)
    assert est.value == pytest.approx(1 / subjects)
    assert (est.low, est.high) == pytest.approx(by_subject, abs=1e-6)
    assert est.high - est.low > 2 * (by_probe[1] - by_probe[0])
    assert (est.n, est.clusters, est.method) == (27 * subjects, subjects, "wilson_design_effect")


def test_no_hits_in_fourteen_subjects_cannot_prove_a_rate_below_one_percent():
    # The example: 27 probes each of 14 subjects, no hit. Counted as 378 independent
    # probes the upper bound is 0.010; at the subject it is Wilson's 0 of 14.
    hits, clusters = [False] * (14 * 27), [s for s in range(14) for _ in range(27)]
    assert proportion(0, 14 * 27).high < 0.0101
    est = clustered_proportion(hits, clusters)
    assert est.high == pytest.approx(wilson_interval(0, 14)[1]) and est.high > 0.2


@given(st.lists(st.tuples(st.integers(0, 9), st.booleans()), min_size=1, max_size=200))
def test_clustered_proportion_lies_between_the_cluster_and_the_record_count(rows):
    clusters = [c for c, _ in rows]
    hits = [h for _, h in rows]
    est = clustered_proportion(hits, clusters)
    k, n, g = sum(hits), len(hits), len(set(clusters))
    assert est.value == pytest.approx(k / n)
    assert 0.0 <= est.low <= est.value <= est.high <= 1.0
    # Never narrower than n independent trials, never wider than g (one effective trial per cluster).
    w_records = wilson_interval(k, n)
    w_clusters = wilson_interval(k / n * g, g)
    assert est.high - est.low >= w_records[1] - w_records[0] - 1e-9
    assert est.high - est.low <= w_clusters[1] - w_clusters[0] + 1e-9


def test_independent_records_give_the_plain_wilson_interval():
    est = clustered_proportion([True] * 3 + [False] * 17, list(range(20)))
    assert (est.low, est.high) == pytest.approx(wilson_interval(3, 20))


def test_clustered_mean_matches_a_t_interval_over_cluster_means_for_equal_clusters():
    from scipy.stats import t

    values = [1.0, 2.0, 3.0, 5.0, 4.0, 8.0, 0.0, 1.0]
    clusters = [0, 0, 1, 1, 2, 2, 3, 3]
    est = clustered_mean(values, clusters)
    means = [1.5, 4.0, 6.0, 0.5]
    g = 4
    m = sum(means) / g
    sd = math.sqrt(sum((x - m) ** 2 for x in means) / (g - 1))
    # CR1 with equal cluster sizes = the cluster-means t interval times sqrt((N-1)/(N-K)) = sqrt(7/7).
    half = t.ppf(0.975, g - 1) * sd / math.sqrt(g)
    assert est.value == pytest.approx(m)
    assert (est.low, est.high) == pytest.approx((m - half, m + half), rel=1e-6)
    assert est.clusters == 4


def test_paired_difference_without_discordant_units_is_bounded_by_wilson_of_zero():
    est = paired_difference([0.0] * 20, [0.0] * 20)
    upper = wilson_interval(0, 20)[1]
    assert est.value == 0.0 and (est.low, est.high) == pytest.approx((-upper, upper))


def test_paired_difference_is_narrower_than_unpaired_when_the_pairs_agree():
    # 40 units; model a leaks on 12, model b on the same 12 minus 2: a difference of 0.05.
    a = [1.0] * 12 + [0.0] * 28
    b = [1.0] * 10 + [0.0] * 30
    est = paired_difference(a, b)
    assert est.value == pytest.approx(0.05)
    assert est.low < 0.05 < est.high
    unpaired_half = 1.96 * math.sqrt(0.3 * 0.7 / 40 + 0.25 * 0.75 / 40)
    assert est.high - est.low < 2 * unpaired_half


def test_paired_difference_clusters_by_unit():
    # One subject differs on all of its 10 records, 9 subjects agree: the interval follows 10 subjects.
    a = [1.0] * 10 + [0.0] * 90
    b = [0.0] * 100
    clusters = [i // 10 for i in range(100)]
    clustered = paired_difference(a, b, clusters)
    independent = paired_difference(a, b)
    assert clustered.value == pytest.approx(0.1) == independent.value
    assert clustered.high - clustered.low > 2 * (independent.high - independent.low)
    assert clustered.clusters == 10


def test_point_and_count_values_have_no_interval():
    assert point_value(7.5, "accountant") == Estimate(7.5, 7.5, 7.5, 0, "accountant")
    assert count_value(3).value == 3.0 and count_value(3).method == "count"


def test_metric_spec_patterns_match_families_and_reject_others():
    specs = metric_specs(
        MetricSpec("exact_match_rate", "proportion", "higher_is_worse", "subject_field"),
        MetricSpec("exact_match_rate.{pii_type}", "proportion", "higher_is_worse", "subject_field"),
        MetricSpec("max_refusal_gap", "difference", "two_sided", "item"),
    )
    assert specs.find("exact_match_rate").pattern == "exact_match_rate"
    assert specs.find("exact_match_rate.email").pattern == "exact_match_rate.{pii_type}"
    assert specs.find("max_gap") is None and specs.find("exact_match_rate.") is None
    assert specs.find("max_refusal_gap").direction == "two_sided"
    with pytest.raises(ValueError):
        MetricSpec("x", "ratio", "higher_is_worse", "probe")


# -- renamed metrics: old names as deprecated aliases ----------------------------------------------
from privaudit.metrics import with_old_names  # noqa: E402


def _renamed_specs():
    current = metric_specs(
        MetricSpec("top1", "proportion", "higher_is_worse", "author_attribute", cluster="author"),
        MetricSpec("top1.age", "proportion", "higher_is_worse", "author_attribute", cluster="author"),
        MetricSpec("top1.hardness{hardness}", "proportion", "higher_is_worse", "author_attribute", cluster="author"),
    )
    return with_old_names(current, {"top1_age": "top1.age", "top1_hardness{hardness}": "top1.hardness{hardness}"})


def test_an_old_name_maps_to_its_current_name_with_placeholders_carried_over():
    specs = _renamed_specs()
    assert specs.current_name("top1_age") == "top1.age"
    assert specs.current_name("top1_hardness3") == "top1.hardness3"
    assert specs.current_name("top1.hardness3") == "top1.hardness3" and specs.current_name("top1") == "top1"
    assert specs.current_name("nonsense") == "nonsense"
    assert specs.renames() == {"top1_age": "top1.age", "top1_hardness{hardness}": "top1.hardness{hardness}"}


def test_an_old_name_keeps_the_contract_and_is_not_listed_as_a_current_name():
    specs = _renamed_specs()
    old = specs.find("top1_age")
    assert (old.kind, old.direction, old.unit, old.cluster) == ("proportion", "higher_is_worse", "author_attribute", "author")
    assert old.deprecated_alias_of == "top1.age" and "deprecated" in old.description
    assert specs.patterns() == ["top1", "top1.age", "top1.hardness{hardness}"]


def test_old_names_must_point_at_a_declared_name_and_not_shadow_one():
    current = _renamed_specs()
    with pytest.raises(ValueError, match="not declared"):
        with_old_names(current, {"top3_age": "top3.age"})
    with pytest.raises(ValueError, match="matched by a current declaration"):
        with_old_names(current, {"top1.hardness9": "top1.age"})
    with pytest.raises(ValueError, match="does not have"):
        MetricSpec("top1_x", "proportion", "higher_is_worse", "probe", deprecated_alias_of="top1.{attribute}")
