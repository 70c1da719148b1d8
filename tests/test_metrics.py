"""Metric functions against hand-computed values and scipy's reference implementation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binomtest

from privaudit.metrics import exposure_bits, proportion, rank_of_truth, wilson_interval


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
