"""Session fixture: a tiny model that has memorized planted PII, and the public base it started from.

Built once per test session (about a minute on 2 CPU cores) by the same code the demo uses
(`privaudit.personalized`): synthetic subjects, a personal corpus that repeats each training
subject's documents, a "public" base pretrained on documents about *other* people, and that base
fine-tuned on the personal corpus until it memorizes. Extraction, membership and defense tests
compare the two: the base is the "before fine-tuning" baseline, the fine-tuned model the leaky target.
"""

from __future__ import annotations

import os

import pytest
from filelock import FileLock

from privaudit.personalized import PersonalizationRecipe, PersonalizedSetup, build_personalized_setup

# The demo's recipe: sizes chosen so the build stays around a minute on 2 CPU cores while the
# fine-tuned model still reproduces most training subjects' emails from their documents' contexts.
RECIPE = PersonalizationRecipe(seed=0)


@pytest.fixture(scope="session")
def memorized_setup(tmp_path_factory: pytest.TempPathFactory) -> PersonalizedSetup:
    """A public base, and that base fine-tuned until it memorizes the planted PII (built once).

    Under pytest-xdist every worker has its own session: the first builds the setup in the run's
    shared temporary folder under a file lock, the others wait and reuse it (the build reuses a
    complete folder), so a parallel run trains it once.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return build_personalized_setup(tmp_path_factory.mktemp("memorized"), RECIPE)
    shared = tmp_path_factory.getbasetemp().parent  # the same for every worker of one run
    with FileLock(str(shared / "memorized.lock")):
        return build_personalized_setup(shared / "memorized", RECIPE)
