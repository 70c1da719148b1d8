"""Min-K%++, offline LiRA and the split diagnostics: against hand computations, then on real tiny models."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privaudit.attacks.membership_metrics import SIGMA_FLOOR, lira_offline, min_k_plus_plus
from privaudit.attacks.membership_split import blind_features, ngram_overlaps, ngrams


def _reference_min_k_pp(logits: np.ndarray, tokens: list[int], k: float) -> float:
    """Zhang et al. 2024, Eq. 2-3 by hand in float64: log-softmax, mu/sigma under p, z, lowest k%."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    p = np.exp(logp)
    mu = (p * logp).sum(axis=1)
    sigma = np.sqrt((p * (logp - mu[:, None]) ** 2).sum(axis=1))
    z = np.array([(logp[t, x] - mu[t]) / max(sigma[t], SIGMA_FLOOR) for t, x in enumerate(tokens)])
    return float(np.sort(z)[: max(1, int(len(z) * k))].mean())


def _stats(logits: np.ndarray, tokens: list[int]) -> tuple[list[float], list[float], list[float]]:
    """The target layer's kernel (`distribution_stats`, torch float32) on the same logits."""
    import torch

    from privaudit.targets.hf_scoring import distribution_stats

    logp = torch.tensor(logits, dtype=torch.float32).log_softmax(-1)
    mu, sd = distribution_stats(logp)
    return [float(logp[t, x]) for t, x in enumerate(tokens)], mu.tolist(), sd.tolist()


def test_min_k_pp_on_a_hand_made_distribution():
    # p = (1/2, 1/4, 1/4): mu = -(3/2) ln 2, sigma = (1/2) ln 2, so the likely token is z = +1, the others -1
    logits = np.log(np.array([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]]))
    lp, mu, sd = _stats(logits, [0, 1])
    assert mu == pytest.approx([-1.5 * math.log(2)] * 2, abs=1e-6)
    assert sd == pytest.approx([0.5 * math.log(2)] * 2, abs=1e-6)
    assert min_k_plus_plus(lp, mu, sd, k=1.0) == pytest.approx(0.0, abs=1e-5)  # mean of +1 and -1
    assert min_k_plus_plus(lp, mu, sd, k=0.5) == pytest.approx(-1.0, abs=1e-5)  # the lowest token only


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 12), st.integers(1, 9), st.floats(0.05, 1.0), st.floats(0.1, 8.0), st.integers(0, 2**31 - 1))
def test_min_k_pp_matches_the_reference_computation(vocab, positions, k, scale, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, scale, size=(positions, vocab))
    tokens = [int(t) for t in rng.integers(0, vocab, size=positions)]
    lp, mu, sd = _stats(logits, tokens)
    assert min_k_plus_plus(lp, mu, sd, k) == pytest.approx(_reference_min_k_pp(logits, tokens, k), rel=1e-3, abs=1e-3)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(-20, 0), st.floats(-20, 0), st.floats(0.01, 5)), min_size=1, max_size=30),
       st.floats(0.05, 1.0), st.floats(0.1, 10), st.floats(-10, 10))
def test_min_k_pp_is_invariant_to_affine_rescaling_and_monotone(rows, k, a, b):
    lp, mu, sd = (list(c) for c in zip(*rows))
    base = min_k_plus_plus(lp, mu, sd, k)
    scaled = min_k_plus_plus([a * x + b for x in lp], [a * m + b for m in mu], [a * s for s in sd], k)
    assert scaled == pytest.approx(base, rel=1e-6, abs=1e-6)
    raised = min_k_plus_plus([x + 1.0 for x in lp], mu, sd, k)  # every token likelier: never a lower score
    assert raised >= base - 1e-9


def test_min_k_pp_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="differ in length"):
        min_k_plus_plus([-1.0, -2.0], [-1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="no tokens"):
        min_k_plus_plus([], [], [])


def test_lira_offline_against_a_hand_fit():
    refs = [[0.0, 1.0, -4.0], [2.0, 3.0, -2.0]]  # means (1, 2, -3); every per-document variance is 2
    fit = lira_offline([1.0, 5.0, -3.0 - math.sqrt(2.0)], refs)
    assert fit.variance == "global" and fit.references == 2
    assert fit.scores == pytest.approx((0.0, 3.0 / math.sqrt(2.0), -1.0))
    # per-example variance differs from the pooled one once documents' variances differ
    uneven = [[0.0, 0.0], [2.0, 4.0]]  # variances 2 and 8, pooled 5
    assert lira_offline([2.0, 2.0], uneven, variance="per_example").scores == pytest.approx((1 / math.sqrt(2), 0.0))
    assert lira_offline([2.0, 2.0], uneven, variance="global").scores == pytest.approx((1 / math.sqrt(5), 0.0))
    with pytest.raises(ValueError, match="at least 2"):
        lira_offline([1.0], [[0.5]])


def test_ngram_overlap_and_blind_features_by_hand():
    member = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    copy = "one two three four five six seven eight nine ten eleven twelve thirteen other"
    fresh = "alpha beta gamma"
    assert len(ngrams(member)) == 2 and ngrams(fresh) == {("alpha", "beta", "gamma")}
    assert ngram_overlaps([member, copy, fresh], [True, False, False]) == [0.5, 0.5, 0.0]
    f = blind_features("aaaa")
    assert f["length"] == 4.0 and f["compressibility"] > 1.0  # zlib's header outweighs 4 bytes


def test_token_distributions_match_the_full_logits_of_a_real_model(tiny_model_dir):
    import torch

    from privaudit.targets.base import TOKEN_DISTRIBUTION, load_target

    target = load_target(f"hf:{tiny_model_dir}")
    try:
        assert TOKEN_DISTRIBUTION in target.capabilities
        texts = ["Alice Johnson's email is alice.johnson@example.com", "Hello! How are you today?"]
        dists = target.token_distributions(["", ""], texts)
        for dist, plain in zip(dists, target.token_logprobs(["", ""], texts)):
            assert dist.logprobs == pytest.approx(plain, abs=1e-5)
        for text, dist in zip(texts, dists):
            ids = target._score_item("", text).ids  # the scored token ids, exactly `score`'s tokenization
            with torch.inference_mode():
                logits = target.model(input_ids=torch.tensor([ids])).logits[0].double().numpy()
            lp, mu, sd = [], [], []
            for t in range(1, len(ids)):
                row = logits[t - 1] - logits[t - 1].max()
                logp = row - np.log(np.exp(row).sum())
                p = np.exp(logp)
                lp.append(logp[ids[t]])
                mu.append((p * logp).sum())
                sd.append(math.sqrt((p * (logp - mu[-1]) ** 2).sum()))
            assert dist.logprobs == pytest.approx(lp, abs=1e-4)
            assert dist.means == pytest.approx(mu, abs=1e-4) and dist.stds == pytest.approx(sd, abs=1e-4)
            assert min_k_plus_plus(dist.logprobs, dist.means, dist.stds, 0.2) == pytest.approx(
                min_k_plus_plus(lp, mu, sd, 0.2), abs=1e-3)
    finally:
        target.close()
