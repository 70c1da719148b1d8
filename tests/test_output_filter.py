"""The Presidio output filter redacts PII a real (memorizing) tiny model generates; scores pass through."""

from __future__ import annotations

from pathlib import Path

import pytest

from privaudit.defenses.finetune import FinetuneConfig, finetune
from privaudit.defenses.output_filter import OutputFilterConfig, OutputFilterTarget, write_filter_spec
from privaudit.targets.base import GRADIENTS, GenerationConfig, load_target

SECRET = "Contact: write to jane.roe@example.com or call (415) 555-0134 today."


@pytest.fixture(scope="module")
def leaky_spec(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny model trained on one sentence until it reproduces the planted email and phone."""
    cfg = FinetuneConfig(epochs=40, batch_size=4, max_length=48, learning_rate=5e-3, seed=0)
    return finetune(tiny_model_dir, [SECRET] * 4, [], cfg, tmp_path_factory.mktemp("leaky")).target_spec


def test_filter_redacts_planted_email_and_phone_in_generations(leaky_spec: str) -> None:
    inner = load_target(leaky_spec)
    gen = GenerationConfig(max_new_tokens=24)
    raw = inner.generate(["Contact: write to"], gen)[0][0]
    assert "jane.roe@example.com" in raw  # precondition: the model leaks
    filtered = OutputFilterTarget(inner).generate(["Contact: write to"], gen)[0][0]
    assert "jane.roe@example.com" not in filtered and "555-0134" not in filtered
    assert "<EMAIL_ADDRESS>" in filtered


def test_filter_passes_scores_through_and_drops_gradients(leaky_spec: str) -> None:
    inner = load_target(leaky_spec)
    wrapped = OutputFilterTarget(inner)
    assert wrapped.score(["Contact: write to"], [" jane.roe@example.com"]) == inner.score(
        ["Contact: write to"], [" jane.roe@example.com"])
    assert GRADIENTS not in wrapped.capabilities


def test_filter_spec_file_loads_as_a_target(leaky_spec: str, tmp_path: Path) -> None:
    spec = write_filter_spec(tmp_path, leaky_spec, OutputFilterConfig(entities=("EMAIL_ADDRESS",)), None)
    target = load_target(spec)
    out = target.generate(["Contact: write to"], GenerationConfig(max_new_tokens=24))[0][0]
    assert "jane.roe@example.com" not in out and target.redactions.get("EMAIL_ADDRESS") == 1
