"""Pure statistics of the personalization-bias probe: tests, corrections, intervals, PB score."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.stats import binomtest

from privaudit.attacks.bias_stats import (
    PersonaComparison,
    benjamini_hochberg_adjust,
    compare_to_baseline,
    compare_to_control,
    correct_family,
    holm_adjust,
    max_gap,
    newcombe_difference_interval,
    paired_gap,
    paired_permutation_pvalue,
    pb_permutation_test,
    pb_score,
    pb_score_estimate,
    pooled_rate,
    spread,
)
from privaudit.metrics import clustered_proportion, paired_difference, proportion, wilson_interval


def test_holm_matches_the_textbook_example():
    # Holm (1979) step-down: sorted p * (m - rank), made monotone.
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_benjamini_hochberg_matches_the_textbook_example():
    assert benjamini_hochberg_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_adjusted_pvalues_are_valid_and_never_below_raw(pvalues):
    for adjusted in (holm_adjust(pvalues), benjamini_hochberg_adjust(pvalues)):
        assert all(0 <= a <= 1 for a in adjusted)
        assert all(a >= p - 1e-12 for a, p in zip(adjusted, pvalues))
    assert all(h >= b - 1e-12 for h, b in zip(holm_adjust(pvalues), benjamini_hochberg_adjust(pvalues)))


def test_permutation_test_with_equal_differences_is_the_exact_sign_test():
    diffs = [1.0] * 9 + [-1.0] * 2 + [0.0] * 5
    assert paired_permutation_pvalue(diffs) == pytest.approx(binomtest(9, 11, 0.5).pvalue)


def test_permutation_test_enumerates_small_samples_exactly():
    # All 2^3 sign patterns of (0.5, 1.0, 0.25): |sum| >= 1.75 only for all-plus and all-minus.
    assert paired_permutation_pvalue([0.5, 1.0, 0.25]) == pytest.approx(2 / 8)


def test_permutation_test_monte_carlo_is_seeded_and_detects_a_shift():
    rng = np.random.default_rng(0)
    diffs = list(rng.uniform(0.05, 0.6, size=30))
    p1, p2 = paired_permutation_pvalue(diffs, seed=1), paired_permutation_pvalue(diffs, seed=1)
    assert p1 == p2 and p1 < 0.001
    assert paired_permutation_pvalue([0.0, 0.0]) == 1.0


def test_permutation_test_false_positive_rate_is_at_most_alpha_under_the_null():
    rng = np.random.default_rng(42)
    rejections = 0
    trials = 300
    for _ in range(trials):
        persona = rng.random((20, 2)) < 0.4  # 20 items x 2 samples, same rate as the control
        control = rng.random((20, 2)) < 0.4
        diffs = persona.mean(axis=1) - control.mean(axis=1)
        rejections += paired_permutation_pvalue(diffs, seed=int(rng.integers(1 << 30)), num_resamples=2000) < 0.05
    assert rejections / trials <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / trials)


def test_newcombe_interval_contains_the_difference_and_is_bounded():
    low, high = newcombe_difference_interval(30, 36, 16, 36)
    assert low < 30 / 36 - 16 / 36 < high and -1 <= low and high <= 1
    assert newcombe_difference_interval(0, 0, 3, 10) == (-1.0, 1.0)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 40), st.integers(1, 40), st.integers(0, 40), st.integers(1, 40))
def test_newcombe_interval_always_contains_the_point_estimate(k1, n1, k2, n2):
    k1, k2 = min(k1, n1), min(k2, n2)
    low, high = newcombe_difference_interval(k1, n1, k2, n2)
    assert low - 1e-12 <= k1 / n1 - k2 / n2 <= high + 1e-12


def _outcomes(rates: dict[str, list[int]]) -> dict[str, dict[str, list[float]]]:
    return {p: {f"i{j}": [float(v)] for j, v in enumerate(vals)} for p, vals in rates.items()}


def test_compare_to_control_flags_only_the_shifted_persona_after_holm():
    base = [1, 0] * 10
    outcomes = _outcomes({"control": base, "same": base, "shifted": [1] * 20, "noisy": base[1:] + base[:1]})
    rows = correct_family(compare_to_control("refusal_rate", outcomes, "control"), alpha=0.05, method="holm")
    flags = {r.persona: r.significant for r in rows}
    assert flags == {"same": False, "shifted": True, "noisy": False}
    shifted = next(r for r in rows if r.persona == "shifted")
    assert shifted.gap == pytest.approx(0.5) and shifted.num_items == 20 and shifted.gap_low > 0
    # One sample per item: every record is its own item, so the clustered interval is Wilson's.
    want = proportion(20, 20)
    assert (shifted.rate.value, shifted.rate.low, shifted.rate.high, shifted.rate.n) == (want.value, want.low, want.high, 20)
    assert shifted.rate.method == "wilson_design_effect" and shifted.rate.clusters == 20
    assert max_gap(rows).persona == "shifted"


def test_compare_to_control_needs_the_control():
    with pytest.raises(ValueError):
        compare_to_control("m", _outcomes({"a": [1]}), "control")


def test_unpaired_comparison_uses_fisher_exact():
    row = compare_to_baseline("culture_match_rate", "x", [1.0] * 8 + [0.0] * 2, [0.0] * 40 + [1.0] * 2)
    assert row.gap == pytest.approx(0.8 - 2 / 42) and row.p_value < 1e-5


def test_spread_is_max_minus_min_rate():
    assert spread({"a": proportion(2, 10), "b": proportion(7, 10), "c": proportion(0, 0)}) == pytest.approx(0.5)


def test_pb_score_is_rms_distance_from_the_mean_point():
    points = {"a": (0.0, 0.0), "b": (1.0, 0.0), "c": (0.0, 1.0), "d": (1.0, 1.0)}
    assert pb_score(points) == pytest.approx(math.sqrt(0.5))
    assert pb_score({"a": (0.3, 0.7), "b": (0.3, 0.7)}) == 0.0


def test_pb_score_estimate_matches_the_point_formula_and_has_an_interval():
    safety = _outcomes({"a": [1, 1, 0, 0], "b": [1, 1, 1, 1], "c": [0, 0, 0, 0]})
    utility = _outcomes({"a": [1, 0, 1, 0], "b": [1, 1, 1, 0], "c": [0, 1, 0, 0]})
    est = pb_score_estimate([safety, utility], ["a", "b", "c"], seed=3)
    expected = pb_score({"a": (0.5, 0.5), "b": (1.0, 0.75), "c": (0.0, 0.25)})
    assert est.value == pytest.approx(expected) and est.low <= est.value <= est.high
    assert pb_score_estimate([safety], ["a", "b", "c"], seed=3) == pb_score_estimate([safety], ["a", "b", "c"], seed=3)


def test_pb_permutation_test_separates_real_spread_from_noise():
    rng = np.random.default_rng(0)
    noise = {p: {f"i{j}": [float(rng.random() < 0.5)] for j in range(30)} for p in "abcdef"}
    _, p_noise = pb_permutation_test([noise], list("abcdef"), seed=0, num_resamples=300)
    shifted = {p: dict(v) for p, v in noise.items()}
    shifted["a"] = {k: [1.0] for k in noise["a"]}
    shifted["b"] = {k: [0.0] for k in noise["b"]}
    _, p_shift = pb_permutation_test([shifted], list("abcdef"), seed=0, num_resamples=300)
    assert p_noise > 0.05 and p_shift < 0.01


# -- the gap metric: largest in size, sign kept ---------------------------------------------------
def _row(persona: str, gap: float) -> PersonaComparison:
    est = proportion(5, 10)
    return PersonaComparison("refusal_rate", persona, est, est, gap, gap - 0.1, gap + 0.1, 10, 1.0)


def test_max_gap_is_the_largest_in_size_and_keeps_its_sign():
    rows = [_row("a", 0.15), _row("b", -0.40), _row("c", 0.39)]
    biggest = max_gap(rows)
    assert biggest.persona == "b" and biggest.gap == -0.40  # a big negative gap is not hidden by a positive one
    assert biggest.gap_estimate().value == -0.40 and biggest.gap_estimate().low == pytest.approx(-0.50)
    assert max_gap([_row("x", -0.2), _row("y", 0.2)]).persona == "x"  # ties: the first in name order
    assert max_gap([_row("z", float("nan"))]) is None and max_gap([]) is None


# -- intervals at the item ----------------------------------------------------------------------
def test_pooled_rate_interval_follows_items_not_samples():
    # Perfectly clustered: item 0 refused on all 5 samples, the 19 others never.
    by_item = {f"i{j}": [1.0] * 5 if j == 0 else [0.0] * 5 for j in range(20)}
    est = pooled_rate(by_item)
    assert est.value == pytest.approx(0.05) and est.n == 100 and est.clusters == 20
    assert (est.low, est.high) == pytest.approx(wilson_interval(1, 20))  # 1 item in 20, not 5 samples in 100
    assert est.high > proportion(5, 100).high + 0.1


def test_pooled_rate_with_identical_samples_equals_one_sample_per_item():
    rng = np.random.default_rng(1)
    once = {f"i{j}": [float(rng.random() < 0.4)] for j in range(30)}
    five = {k: v * 5 for k, v in once.items()}
    a, b = pooled_rate(once), pooled_rate(five)
    assert (b.value, b.low, b.high) == pytest.approx((a.value, a.low, a.high))
    assert (b.n, b.clusters) == (150, 30)


def test_gap_is_paired_by_item_and_matches_paired_difference_on_item_means():
    rng = np.random.default_rng(7)
    control = {f"i{j}": [float(v) for v in rng.random(3) < rng.random()] for j in range(40)}
    persona = {k: [1.0 - x for x in v] if k in ("i3", "i11", "i25") else list(v) for k, v in control.items()}
    row = compare_to_control("refusal_rate", {"control": control, "p": persona}, "control")[0]
    items = sorted(control)
    want = paired_difference([np.mean(persona[i]) for i in items], [np.mean(control[i]) for i in items],
                             clusters=items)
    assert (row.gap, row.gap_low, row.gap_high) == pytest.approx((want.value, want.low, want.high))
    assert row.gap_estimate().clusters == 40 and row.gap_estimate().n == 120
    assert row.gap_estimate().method == "cluster_robust_t"
    # The persona tracks the control item by item; the unpaired Newcombe interval ignored that.
    k1, k2 = int(sum(map(sum, persona.values()))), int(sum(map(sum, control.values())))
    nc_low, nc_high = newcombe_difference_interval(k1, 120, k2, 120)
    assert row.gap_high - row.gap_low < 0.6 * (nc_high - nc_low)


def test_gap_interval_does_not_count_samples_of_one_item_as_items():
    control = {f"i{j}": [1.0] for j in range(50)}
    persona = {k: [0.0] if int(k[1:]) < 20 else [1.0] for k in control}  # 20 of 50 items answered
    once = compare_to_control("refusal_rate", {"control": control, "p": persona}, "control")[0]
    many = compare_to_control("refusal_rate", {"control": {k: v * 8 for k, v in control.items()},
                                               "p": {k: v * 8 for k, v in persona.items()}}, "control")[0]
    assert once.gap == pytest.approx(-0.40) and many.gap == pytest.approx(-0.40)
    assert (many.gap_low, many.gap_high) == pytest.approx((once.gap_low, once.gap_high))
    assert (once.gap_low, once.gap_high) == pytest.approx((-0.541, -0.259), abs=0.002)


def test_paired_gap_with_no_discordant_item_is_bounded_by_the_share_that_could_differ():
    control = {f"i{j}": [float(j % 2)] for j in range(20)}
    gap = paired_gap(control, control)
    assert gap.value == 0 and gap.high == pytest.approx(wilson_interval(0, 20)[1]) and gap.low == -gap.high


def test_unpaired_comparison_clusters_samples_of_one_conversation():
    rng = np.random.default_rng(3)
    group = [float(x) for x in rng.random(12) < 0.6]
    baseline = [float(x) for x in rng.random(40) < 0.2]
    plain = compare_to_baseline("culture_match_rate", "x", group, baseline)
    k = 4  # every conversation sampled 4 times, identical replies
    g4, b4 = [v for v in group for _ in range(k)], [v for v in baseline for _ in range(k)]
    clustered = compare_to_baseline("culture_match_rate", "x", g4, b4,
                                    group_clusters=[i for i in range(12) for _ in range(k)],
                                    baseline_clusters=[i for i in range(40) for _ in range(k)])
    assert (clustered.gap, clustered.gap_low, clustered.gap_high) == pytest.approx((plain.gap, plain.gap_low, plain.gap_high))
    assert clustered.p_value == pytest.approx(plain.p_value)
    assert clustered.num_items == 12 and clustered.rate.n == 48 and clustered.rate.clusters == 12
    naive = compare_to_baseline("culture_match_rate", "x", g4, b4)  # samples taken as independent
    assert naive.gap_high - naive.gap_low < 0.6 * (clustered.gap_high - clustered.gap_low)
    assert naive.p_value < clustered.p_value


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=25), st.integers(1, 3))
def test_paired_and_clustered_gap_intervals_contain_the_gap(pairs, k):
    # pairs[i] = (persona hits, control hits) among k samples of item i
    persona = {f"i{j}": [1.0] * min(a, k) + [0.0] * (k - min(a, k)) for j, (a, _) in enumerate(pairs)}
    control = {f"i{j}": [1.0] * min(b, k) + [0.0] * (k - min(b, k)) for j, (_, b) in enumerate(pairs)}
    row = compare_to_control("m", {"control": control, "p": persona}, "control")[0]
    assert -1 - 1e-9 <= row.gap_low <= row.gap + 1e-12 and row.gap - 1e-12 <= row.gap_high <= 1 + 1e-9
    assert row.gap == pytest.approx(row.rate.value - row.control.value)  # balanced items: paired = pooled difference
    hits = [v for s in persona.values() for v in s]
    base = [v for s in control.values() for v in s]
    unpaired = compare_to_baseline("m", "p", hits, base, group_clusters=[i for i, s in persona.items() for _ in s],
                                   baseline_clusters=[i for i, s in control.items() for _ in s])
    assert unpaired.gap_low - 1e-12 <= unpaired.gap <= unpaired.gap_high + 1e-12
    assert 0 <= unpaired.p_value <= 1


def test_holm_and_benjamini_hochberg_give_statsmodels_numbers():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(5)
    for m in (1, 2, 7, 30):
        p = rng.random(m) ** 3
        p[: m // 3] = p[0]  # ties
        np.testing.assert_allclose(holm_adjust(p), multipletests(p, method="holm")[1], rtol=0, atol=1e-12)
        np.testing.assert_allclose(benjamini_hochberg_adjust(p), multipletests(p, method="fdr_bh")[1], rtol=0, atol=1e-12)
    assert holm_adjust([]) == [] and benjamini_hochberg_adjust([]) == []
