"""Session fixture: SmolLM2-135M personalized with a LoRA adapter on the personal corpus (issue 23).

`SMALL_REAL_RECIPE` (12 subjects, half held out) trains once per machine: the adapter is cached in
the privaudit cache keyed by the recipe's fingerprint, so a second session (or the demo) reuses it.
The base SmolLM2 is the "before personalization" baseline of every comparison.
"""

from __future__ import annotations

import pytest

from privaudit.personalized import PersonalizedSetup


@pytest.fixture(scope="session")
def real_setup() -> PersonalizedSetup:
    """The LoRA-personalized SmolLM2 and its data (trained once per machine, then reused)."""
    from privaudit.personalized_real import SMALL_REAL_RECIPE, build_real_setup

    return build_real_setup(SMALL_REAL_RECIPE)
