"""Membership metrics against hand-computed cases, scikit-learn, and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from privaudit.attacks.membership_metrics import (
    auc_estimate,
    fitted_exposure,
    mean_logprob,
    min_k_prob,
    reference_ratio_score,
    roc_auc,
    roc_curve,
    sampled_exposure,
    tpr_at_fpr,
    tpr_at_fpr_estimate,
    zlib_entropy_bytes,
    zlib_ratio_score,
)

labelled = st.lists(
    st.tuples(st.integers(-5, 5).map(float), st.booleans()), min_size=2, max_size=40
).filter(lambda xs: any(y for _, y in xs) and not all(y for _, y in xs))


def test_auc_hand_computed_with_a_tie():
    # members 3, 2; non-members 2, 1: pairs (3>2, 3>1, 2=2 -> 0.5, 2>1) = 3.5 / 4
    assert roc_auc([3, 2, 2, 1], [True, True, False, False]) == pytest.approx(0.875)


def test_auc_is_one_for_perfect_separation_and_zero_when_reversed():
    assert roc_auc([5, 4, 1, 0], [True, True, False, False]) == 1.0
    assert roc_auc([5, 4, 1, 0], [False, False, True, True]) == 0.0


def test_auc_needs_both_classes():
    with pytest.raises(ValueError, match="members and non-members"):
        roc_auc([1, 2], [True, True])


@given(labelled)
@settings(max_examples=80, deadline=None)
def test_auc_matches_sklearn(pairs):
    scores, labels = [s for s, _ in pairs], [y for _, y in pairs]
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))


@given(labelled)
@settings(max_examples=80, deadline=None)
def test_roc_curve_matches_sklearn_without_dropped_points(pairs):
    scores, labels = [s for s, _ in pairs], [y for _, y in pairs]
    ours = roc_curve(scores, labels)
    fpr, tpr, thr = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(ours.fpr, fpr)
    np.testing.assert_allclose(ours.tpr, tpr)
    np.testing.assert_allclose(ours.thresholds[1:], thr[1:])
    assert math.isinf(ours.thresholds[0])


@given(labelled)
@settings(max_examples=80, deadline=None)
def test_trapezoid_area_of_the_curve_equals_auc(pairs):
    scores, labels = [s for s, _ in pairs], [y for _, y in pairs]
    c = roc_curve(scores, labels)
    area = sum((c.fpr[i + 1] - c.fpr[i]) * (c.tpr[i + 1] + c.tpr[i]) / 2 for i in range(len(c.fpr) - 1))
    assert area == pytest.approx(roc_auc(scores, labels))


def test_tpr_at_low_fpr_counts_members_above_every_non_member():
    # 4 non-members: a 1% budget allows 0 false positives; members strictly above 0.9 -> 2 of 4
    scores = [1.0, 0.95, 0.9, 0.1, 0.9, 0.5, 0.4, 0.3]
    labels = [True, True, True, True, False, False, False, False]
    assert tpr_at_fpr(scores, labels, 0.01) == pytest.approx(0.5)
    # a 25% budget allows one false positive: threshold above 0.5 -> 3 of 4 members
    assert tpr_at_fpr(scores, labels, 0.25) == pytest.approx(0.75)
    assert tpr_at_fpr(scores, labels, 1.0) == 1.0


@given(labelled, st.sampled_from([0.0, 0.001, 0.01, 0.1, 0.3, 0.5, 1.0]))
@settings(max_examples=80, deadline=None)
def test_tpr_at_fpr_is_the_best_roc_point_within_the_budget(pairs, max_fpr):
    scores, labels = [s for s, _ in pairs], [y for _, y in pairs]
    c = roc_curve(scores, labels)
    best = max(t for f, t in zip(c.fpr, c.tpr) if f <= max_fpr + 1e-12)
    assert tpr_at_fpr(scores, labels, max_fpr) == pytest.approx(best)


def test_bootstrap_interval_is_seeded_and_holds_the_point():
    rng = np.random.default_rng(3)
    scores = list(rng.normal(1, 1, 30)) + list(rng.normal(0, 1, 30))
    labels = [True] * 30 + [False] * 30
    a = auc_estimate(scores, labels, num_resamples=300, seed=7)
    b = auc_estimate(scores, labels, num_resamples=300, seed=7)
    assert a == b
    assert a.low <= a.value <= a.high and a.method == "bootstrap" and a.n == 60
    assert a.value == pytest.approx(roc_auc_score(labels, scores))
    t = tpr_at_fpr_estimate(scores, labels, 0.01, num_resamples=300, seed=7)
    assert 0.0 <= t.low <= t.value <= t.high <= 1.0


def test_bootstrap_interval_excludes_chance_only_for_a_real_signal():
    rng = np.random.default_rng(0)
    labels = [True] * 40 + [False] * 40
    strong = auc_estimate(list(rng.normal(2, 1, 40)) + list(rng.normal(0, 1, 40)), labels, num_resamples=500)
    null = auc_estimate(list(rng.normal(0, 1, 80)), labels, num_resamples=500)
    assert strong.low > 0.5
    assert null.low < 0.5 < null.high


def test_min_k_prob_averages_the_least_likely_tokens():
    lp = [-0.1, -5.0, -0.2, -3.0, -0.3, -0.1, -0.1, -0.2, -0.1, -0.4]
    assert min_k_prob(lp, 0.2) == pytest.approx(-4.0)  # two lowest of ten
    assert min_k_prob(lp, 0.01) == pytest.approx(-5.0)  # at least one token
    assert min_k_prob(lp, 1.0) == pytest.approx(mean_logprob(lp))


@given(st.lists(st.floats(-20, 0), min_size=1, max_size=50), st.floats(0.01, 1.0))
@settings(max_examples=80, deadline=None)
def test_min_k_prob_never_exceeds_the_mean(lp, k):
    assert min_k_prob(lp, k) <= mean_logprob(lp) + 1e-9


def test_zlib_and_reference_scores():
    text = "abc abc abc abc"
    assert zlib_ratio_score(-2.0, text) == pytest.approx(-2.0 / zlib_entropy_bytes(text))
    assert reference_ratio_score(-1.0, -3.0) == pytest.approx(2.0)


def test_sampled_exposure_hand_computed():
    # secret best among 7 candidates: rank 1 of 8 -> 3 bits; ties count against the secret
    assert sampled_exposure(0.0, [-1.0] * 7) == (1, pytest.approx(3.0))
    assert sampled_exposure(0.0, [0.0, -1, -1, -1, -1, -1, -1]) == (2, pytest.approx(2.0))
    assert sampled_exposure(-9.0, [-1.0] * 7) == (8, pytest.approx(0.0))


def test_fitted_exposure_grows_as_the_secret_outscores_candidates():
    cands = list(np.random.default_rng(0).normal(-20, 2, 500))
    low, mid, high = (fitted_exposure(x, cands) for x in (-20.0, -14.0, -8.0))
    assert low < 2 < mid < high
    assert high > math.log2(len(cands) + 1)  # not bounded by the sample size


# -- intervals at the data subject: a cluster bootstrap --------------------------------------------
def _clustered(seed: int = 0, docs_per_subject: int = 10):
    """10 member and 10 non-member subjects; every document of a subject scores alike (perfectly clustered)."""
    rng = np.random.default_rng(seed)
    subject_scores = np.concatenate([rng.normal(0.8, 1, 10), rng.normal(0, 1, 10)])
    subject_labels = [True] * 10 + [False] * 10
    scores = np.repeat(subject_scores, docs_per_subject)
    labels = list(np.repeat(subject_labels, docs_per_subject))
    clusters = [f"s{i}" for i in np.repeat(np.arange(20), docs_per_subject)]
    return list(subject_scores), subject_labels, list(scores), labels, clusters


def test_cluster_bootstrap_width_follows_the_number_of_subjects_not_documents():
    subj_scores, subj_labels, scores, labels, clusters = _clustered()
    clustered = auc_estimate(scores, labels, clusters=clusters, num_resamples=500, seed=1)
    per_doc = auc_estimate(scores, labels, num_resamples=500, seed=1)
    per_subject = auc_estimate(subj_scores, subj_labels, num_resamples=500, seed=1)
    assert clustered.method == "cluster_bootstrap" and clustered.clusters == 20 and clustered.n == 200
    assert clustered.value == pytest.approx(per_subject.value)
    # 200 documents of 20 people carry the information of 20 documents, not 200
    assert clustered.high - clustered.low == pytest.approx(per_subject.high - per_subject.low, rel=0.15)
    assert per_doc.high - per_doc.low < 0.5 * (clustered.high - clustered.low)
    tpr = tpr_at_fpr_estimate(scores, labels, 0.01, clusters=clusters, num_resamples=500, seed=1)
    tpr_doc = tpr_at_fpr_estimate(scores, labels, 0.01, num_resamples=500, seed=1)
    assert tpr.method == "cluster_bootstrap" and tpr.high - tpr.low > tpr_doc.high - tpr_doc.low


def test_documents_without_a_subject_are_their_own_cluster():
    _, _, scores, labels, _ = _clustered(seed=3, docs_per_subject=2)
    plain = auc_estimate(scores, labels, num_resamples=300, seed=7)
    own = auc_estimate(scores, labels, clusters=[None] * len(scores), num_resamples=300, seed=7)
    assert (own.value, own.low, own.high) == (plain.value, plain.low, plain.high)  # replicate for replicate
    assert plain.method == "bootstrap" and own.method == "cluster_bootstrap" and own.clusters == len(scores)


def test_a_subject_with_members_and_non_members_keeps_both_classes_in_every_replicate():
    scores = [0.9, 0.1, 0.8, 0.2, 0.7, 0.3]
    labels = [True, False, True, False, True, False]
    est = auc_estimate(scores, labels, clusters=["a", "a", "b", "b", "c", "c"], num_resamples=200, seed=0)
    assert est.value == 1.0 and est.clusters == 3 and est.low <= est.value <= est.high
    with pytest.raises(ValueError, match="cluster labels"):
        auc_estimate(scores, labels, clusters=["a"], num_resamples=20)


def test_a_stratum_of_one_cluster_is_held_fixed_and_the_interval_stays_seeded():
    # one subject holds both members and non-members: the mixed stratum has a single cluster
    scores = [0.9, 0.2, 0.8, 0.7, 0.6, 0.1, 0.3, 0.4]
    labels = [True, False, True, True, True, False, False, False]
    clusters = ["mixed", "mixed", "a", "b", "c", "d", "e", "f"]
    a = auc_estimate(scores, labels, clusters=clusters, num_resamples=200, seed=4)
    assert a == auc_estimate(scores, labels, clusters=clusters, num_resamples=200, seed=4)
    assert a.clusters == 7 and a.low <= a.value <= a.high and a.value == pytest.approx(roc_auc_score(labels, scores))
    t = tpr_at_fpr_estimate(scores, labels, 0.25, clusters=clusters, num_resamples=200, seed=4)
    assert 0.0 <= t.low <= t.value <= t.high <= 1.0
    # nothing to resample (one cluster per stratum): the interval is the point
    one = auc_estimate([0.9, 0.1, 0.8], [True, False, True], clusters=["x", "y", "x"], num_resamples=50)
    assert (one.low, one.high) == (one.value, one.value) == (1.0, 1.0)
