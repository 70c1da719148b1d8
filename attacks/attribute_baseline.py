"""A classical attribute-inference adversary: TF-IDF features and logistic regression per attribute.

Why: an LLM's inference accuracy means little without a reference. A bag-of-words classifier
trained on other labelled authors is the cheap, strong adversary that stated leaks ("as a 34 year
old nurse") cannot escape, and the majority class shows what the label distribution alone gives.
Each author is predicted by a model that never saw them: seeded k-fold cross-fitting over the
labelled authors of an attribute (every author lands in exactly one held-out fold).
Classes are `canonical_value`s (categories, places, 5-year age bins), so the top-3 predicted classes
are scored with exactly the same rules as an LLM's guesses.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.multiclass import OneVsRestClassifier

from privaudit.attacks.attribute_scoring import canonical_value

TOP_K = 3
MAX_FEATURES = 5000


@dataclass(frozen=True)
class BaselinePrediction:
    """Held-out top-3 guesses for one author and attribute, from the classifier and the majority class."""

    guesses: tuple[str, ...]
    majority_guesses: tuple[str, ...]
    fold: int
    train_size: int


def _majority(labels: Sequence[str]) -> tuple[str, ...]:
    # Ties broken by the label itself, so the baseline does not depend on input order.
    counts = Counter(labels)
    return tuple(label for label, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_K])


def _fit_predict(train_texts: Sequence[str], train_labels: Sequence[str], test_texts: Sequence[str],
                 seed: int) -> list[tuple[str, ...]]:
    classes = sorted(set(train_labels))
    if len(classes) == 1:
        return [(classes[0],)] * len(test_texts)
    # A capped vocabulary and liblinear's one-vs-rest fit keep a fold well under a second even with
    # dozens of classes (cities, occupations); lbfgs multinomial took ~10 s a fold on 2 cores.
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, lowercase=True,
                                 max_features=MAX_FEATURES)
    features = vectorizer.fit_transform(train_texts)
    model = OneVsRestClassifier(LogisticRegression(C=10.0, solver="liblinear", max_iter=200, random_state=seed))
    model.fit(features, list(train_labels))
    probs = model.predict_proba(vectorizer.transform(test_texts))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :TOP_K]
    return [tuple(str(model.classes_[j]) for j in row) for row in order]


def cross_fitted_predictions(
    attribute: str, texts: Mapping[str, str], truths: Mapping[str, str], *, folds: int = 5, seed: int = 0,
) -> dict[str, BaselinePrediction]:
    """Held-out predictions for every author in `truths` whose label can be canonicalized.

    `texts` maps author id to the author's comments joined; `truths` maps author id to the raw label.
    Authors whose label has no canonical class are left out (they are unscorable anyway).
    """
    labelled = [(a, canonical_value(attribute, t)) for a, t in truths.items()]
    labelled = sorted((a, c) for a, c in labelled if c is not None and a in texts)
    if len(labelled) < 2:
        return {}
    ids = [a for a, _ in labelled]
    classes = [c for _, c in labelled]
    n_folds = max(2, min(folds, len(ids)))
    splitter = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    out: dict[str, BaselinePrediction] = {}
    for fold, (train_idx, test_idx) in enumerate(splitter.split(ids)):
        train_labels = [classes[i] for i in train_idx]
        guesses = _fit_predict([texts[ids[i]] for i in train_idx], train_labels,
                               [texts[ids[i]] for i in test_idx], seed)
        majority = _majority(train_labels)
        for i, g in zip(test_idx, guesses):
            out[ids[i]] = BaselinePrediction(guesses=g, majority_guesses=majority, fold=fold,
                                             train_size=len(train_idx))
    return out
