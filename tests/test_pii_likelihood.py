"""Likelihood probe: candidate pools, rank/exposure arithmetic, and the memorization signal it measures."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privaudit.attacks.base import RunContext
from privaudit.attacks.pii_likelihood import (
    candidate_pool,
    draw_candidates,
    likelihood_outcome,
    rank_histogram,
)
from privaudit.attacks.pii_probes import build_probes, load_templates
from privaudit.data.subjects import generate_subjects
from privaudit.engine.store import RunStore

scores = st.lists(st.floats(min_value=-200, max_value=0, allow_nan=False), min_size=0, max_size=30)


@given(truth=st.floats(min_value=-200, max_value=0, allow_nan=False), others=scores)
def test_rank_and_exposure_are_consistent(truth, others):
    out = likelihood_outcome(truth, others)
    assert 1 <= out.rank <= out.num_candidates == len(others) + 1
    assert out.rank == 1 + sum(o >= truth for o in others)  # ties count against the truth
    assert 0.0 <= out.exposure <= math.log2(out.num_candidates) + 1e-12
    assert out.top1 == (out.rank == 1) and (out.top5 or out.rank > 5)


def test_top_ranked_truth_has_maximal_exposure():
    out = likelihood_outcome(-1.0, [-5.0, -7.0, -3.0])
    assert out.rank == 1 and out.exposure == pytest.approx(2.0) and out.best_other_logprob == -3.0
    worst = likelihood_outcome(-9.0, [-5.0, -7.0, -3.0])
    assert worst.rank == 4 and worst.exposure == 0.0


def test_candidates_are_same_type_distinct_from_truth_and_seeded():
    subjects = generate_subjects(6, seed=3)
    pool = candidate_pool(subjects, num_candidates=9, seed=0)
    truth = subjects[0].email
    a = draw_candidates(truth, "email", pool, 9, seed=0, subject_id=subjects[0].id)
    b = draw_candidates(truth, "email", pool, 9, seed=0, subject_id=subjects[0].id)
    assert a == b and len(a) == 9 and len(set(a)) == 9
    assert truth not in a and all("@" in c for c in a)
    # Other subjects' values are in the pool, and generated ones too (the pool is larger than the file).
    assert {s.email for s in subjects[1:]} <= set(pool["email"]) and len(pool["email"]) > len(subjects)
    assert draw_candidates(truth, "email", pool, 9, seed=1, subject_id=subjects[0].id) != a


def test_rank_histogram_counts_each_rank():
    chart = rank_histogram([1, 1, 3], num_candidates=4)
    assert chart["bins"] == [1, 2, 3, 4] and chart["counts"] == [2, 0, 1, 0]


def _mean_rank(spec, setup, tmp_path, name):
    from privaudit.attacks.pii_extraction import run_likelihood
    from privaudit.targets.base import load_target

    train = setup.train_subjects()
    probes = build_probes(train, load_templates(), pii_types=["email"], template_ids=["email-twin-3", "email-twin-4"])
    pool = candidate_pool(list(setup.subjects), 9, seed=0)
    target = load_target(spec)
    try:
        with RunStore(tmp_path / name) as store:
            ctx = RunContext(store=store, seed=0, batch_size=16)
            assert run_likelihood(target, probes, pool, 9, ctx, "pii", "t", "likelihood") == len(probes)
            assert run_likelihood(target, probes, pool, 9, ctx, "pii", "t", "likelihood") == 0  # resumed
            records = ctx.records("pii", "t")
    finally:
        target.close()
    assert len(records) == len(probes) and (records["num_candidates"] == 10).all()
    assert "candidates" not in records.columns  # other people's values are never stored
    return records["rank"].mean(), records["top1"].mean()


@pytest.mark.slow
def test_truth_ranks_higher_on_the_finetuned_model_than_on_its_base(memorized_setup, tmp_path):
    ft_rank, ft_top1 = _mean_rank(memorized_setup.finetuned_spec, memorized_setup, tmp_path, "ft")
    base_rank, base_top1 = _mean_rank(memorized_setup.base_spec, memorized_setup, tmp_path, "base")
    assert ft_rank < base_rank - 2.0, (ft_rank, base_rank)
    assert ft_top1 > base_top1
