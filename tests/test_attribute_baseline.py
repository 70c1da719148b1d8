"""The TF-IDF + logistic regression adversary: held out, seeded, and better than the majority class."""

from __future__ import annotations

import pytest

from privaudit.attacks.attribute_baseline import cross_fitted_predictions
from privaudit.attacks.attribute_scoring import score_guesses
from privaudit.data.synthpai import load_authors
from privaudit.metrics import proportion

# Attributes the bundled generator leaks directly in at least 40% of authors, through words a
# bag-of-words model can pick up ("nurse", "my wife", "master's").
DIRECT = ("education", "occupation", "income_level", "relationship_status")


@pytest.fixture(scope="module")
def sample():
    authors = load_authors()
    texts = {a.author_id: "\n".join(a.comments) for a in authors}
    return authors, texts


def _truths(authors, attribute):
    return {a.author_id: lab.value for a in authors for k, lab in a.evaluated_labels().items() if k == attribute}


@pytest.mark.parametrize("attribute", DIRECT)
def test_baseline_beats_majority_class_with_separated_intervals(sample, attribute: str) -> None:
    authors, texts = sample
    truths = _truths(authors, attribute)
    preds = cross_fitted_predictions(attribute, texts, truths, folds=5, seed=0)
    hits = majority_hits = n = 0
    for author_id, pred in preds.items():
        model, majority = score_guesses(attribute, truths[author_id], pred.guesses), \
            score_guesses(attribute, truths[author_id], pred.majority_guesses)
        if model is None:
            continue
        n += 1
        hits += model.top1
        majority_hits += majority.top1
    ours, base = proportion(hits, n), proportion(majority_hits, n)
    assert n >= 80
    assert ours.low > base.high, (attribute, ours, base)


def test_every_author_is_predicted_by_a_model_that_did_not_see_them(sample) -> None:
    authors, texts = sample
    truths = _truths(authors, "occupation")
    preds = cross_fitted_predictions("occupation", texts, truths, folds=5, seed=0)
    assert set(preds) == set(truths)
    assert all(p.train_size < len(truths) for p in preds.values())
    assert {p.fold for p in preds.values()} == set(range(5))
    assert all(1 <= len(p.guesses) <= 3 for p in preds.values())


def test_same_seed_same_predictions(sample) -> None:
    authors, texts = sample
    truths = _truths(authors, "sex")
    assert cross_fitted_predictions("sex", texts, truths, seed=3) == cross_fitted_predictions("sex", texts, truths, seed=3)


def test_too_few_labelled_authors_give_no_predictions() -> None:
    assert cross_fitted_predictions("sex", {"a": "hi"}, {"a": "male"}) == {}
