"""The one-run epsilon lower bound (Steinke, Nasr, Jagielski, NeurIPS 2023) against direct scipy sums."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom

from privaudit.dpaudit.estimator import (
    bonferroni_bound, count_guesses, epsilon_lower_bound, guess_grid, p_value,
)
from privaudit.errors import InputError


def direct_p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """The paper's p-value written out term by term with binom.pmf (no shared code with the module)."""
    q = math.exp(eps) / (1 + math.exp(eps))
    tail = sum(binom.pmf(j, r, q) for j in range(v, r + 1))
    alpha = 0.0
    for i in range(1, v + 1):
        window = sum(binom.pmf(j, r, q) for j in range(v - i, v))
        alpha = max(alpha, window / i)
    return min(tail + 2 * m * delta * alpha, 1.0)


@pytest.mark.parametrize("m,r,v,eps,delta", [
    (1000, 100, 100, 2.0, 1e-5),   # v = r: every guess right
    (1000, 100, 50, 0.5, 1e-5),    # v = r / 2: chance level
    (200, 40, 37, 1.0, 1e-3),      # a large delta term
    (500, 60, 45, 0.0, 0.0),       # eps = 0, no delta term
    (50, 1, 1, 3.0, 1e-2),
])
def test_p_value_matches_a_direct_binomial_sum(m, r, v, eps, delta):
    assert p_value(m, r, v, eps, delta) == pytest.approx(direct_p_value(m, r, v, eps, delta), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("m,r,v,delta", [(1000, 100, 100, 1e-5), (1000, 100, 90, 0.0), (200, 40, 36, 1e-5)])
def test_bound_is_where_the_direct_p_value_crosses_beta(m, r, v, delta):
    eps = epsilon_lower_bound(m, r, v, delta, beta=0.05)
    assert eps > 0
    assert direct_p_value(m, r, v, eps, delta) <= 0.05 + 1e-9  # rejected at the bound
    assert direct_p_value(m, r, v, eps + 1e-3, delta) > 0.05  # and not beyond it


def test_all_correct_without_delta_has_a_closed_form():
    # P[Bin(r, q) >= r] = q^r <= beta  <=>  eps <= logit(beta^(1/r))
    r, beta = 50, 0.05
    q = beta ** (1 / r)
    assert epsilon_lower_bound(1000, r, r, 0.0, beta) == pytest.approx(math.log(q / (1 - q)), abs=1e-5)


def test_edge_cases_give_zero():
    assert epsilon_lower_bound(100, 0, 0, 1e-5) == 0.0  # r = 0: abstained everywhere
    assert epsilon_lower_bound(100, 40, 20, 1e-5) == 0.0  # v = r / 2: chance
    assert epsilon_lower_bound(100, 40, 0, 1e-5) == 0.0
    assert p_value(100, 0, 0, 1.0, 1e-5) == 1.0


def test_delta_term_lowers_the_bound():
    assert epsilon_lower_bound(1000, 100, 95, 1e-3) < epsilon_lower_bound(1000, 100, 95, 0.0)


@pytest.mark.parametrize("args", [(10, 5, 6, 0.0), (10, 11, 3, 0.0), (10, 5, -1, 0.0)])
def test_impossible_counts_are_input_errors(args):
    with pytest.raises(InputError, match="guesses"):
        epsilon_lower_bound(*args)


@settings(max_examples=60, deadline=None)
@given(r=st.integers(1, 60), data=st.data(), delta=st.sampled_from([0.0, 1e-6, 1e-4]))
def test_bound_is_monotone_in_correct_guesses(r, data, delta):
    v = data.draw(st.integers(0, r - 1))
    m = data.draw(st.integers(r, 4 * r))
    assert epsilon_lower_bound(m, r, v, delta) <= epsilon_lower_bound(m, r, v + 1, delta) + 1e-6


@settings(max_examples=30, deadline=None)
@given(m=st.integers(0, 500), delta=st.sampled_from([0.0, 1e-5]))
def test_no_guesses_never_bound_epsilon(m, delta):
    assert epsilon_lower_bound(m, 0, 0, delta) == 0.0


def test_count_guesses_takes_top_and_bottom():
    scores = [0.1, 0.9, 0.5, 0.8, 0.2, 0.3]
    included = [False, True, False, True, True, False]
    g = count_guesses(scores, included, k_pos=2, k_neg=2)
    assert (g.guesses, g.correct) == (4, 3)  # top {0.9, 0.8} both in; bottom {0.1, 0.2}: one out


def test_bonferroni_pays_for_every_cell():
    included = [i % 2 == 0 for i in range(200)]
    perfect = [1.0 if b else 0.0 for b in included]
    grid = guess_grid(200)
    one = bonferroni_bound({"loss": perfect}, included, 1e-5, grid=grid)
    two = bonferroni_bound({"loss": perfect, "zlib": perfect}, included, 1e-5, grid=grid)
    assert one.cells == len(grid) and two.cells == 2 * len(grid)
    assert 0 < two.epsilon < one.epsilon  # a second signal is paid for in significance
    k = one.k_pos
    assert one.epsilon == pytest.approx(epsilon_lower_bound(200, 2 * k, 2 * k, 1e-5, 0.05 / len(grid)))


def test_two_hundred_canaries_cap_the_bound_near_3_4():
    """README: with m = 200 and the 24-cell grid, even a perfect attacker bounds epsilon at about 3.43."""
    included = [i % 2 == 0 for i in range(200)]
    perfect = [1.0 if b else 0.0 for b in included]
    bound = bonferroni_bound({s: perfect for s in ("loss", "zlib", "min_k", "reference")}, included, 1e-5)
    assert bound.cells == 24 and bound.guesses == 200 and bound.correct == 200
    assert bound.epsilon == pytest.approx(3.43, abs=0.01)
    assert bound.epsilon < 8  # no CI-sized audit can refute a claim of 8
