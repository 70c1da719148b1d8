"""Pure statistics of the personalization-bias probe: tests, corrections, intervals, PB score."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.stats import binomtest

from privaudit.attacks.bias_stats import (
    benjamini_hochberg_adjust,
    compare_to_baseline,
    compare_to_control,
    correct_family,
    holm_adjust,
    max_gap,
    newcombe_difference_interval,
    paired_permutation_pvalue,
    pb_permutation_test,
    pb_score,
    pb_score_estimate,
    spread,
)
from privaudit.metrics import proportion


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
    assert shifted.rate == proportion(20, 20)
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
