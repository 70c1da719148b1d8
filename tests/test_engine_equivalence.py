"""The HF target's automatic batch-size back-off: an OOM above a batch size halves the size and
the results equal the unbatched ones (greedy generation exactly, scores within float tolerance)."""

from __future__ import annotations

import pytest
import torch

from privaudit.targets.base import GenerationConfig, load_target

PROMPTS = ["Alice Johnson's email is", "Bob lives at", "Hello! How are", "The quick brown fox", "Dear Carol,", "Frank's address"]
CONTS = [" alice@example.com", " 42 Elm Street", " you today?", " jumps", " the meeting", " 7 Harbor Road"]


def _oom_above(target, name: str, limit: int, sizes: list[int]) -> None:
    """Make the target's batch function raise torch.OutOfMemoryError for batches above `limit`."""
    real = getattr(target, name)

    def limited(batch, *args, **kwargs):
        sizes.append(len(batch))
        if len(batch) > limit:
            raise torch.OutOfMemoryError("simulated: CUDA out of memory")
        return real(batch, *args, **kwargs)

    setattr(target, name, limited)


@pytest.fixture
def targets(tiny_model_dir):
    one = load_target(f"hf:{tiny_model_dir}:batch_size=1")
    big = load_target(f"hf:{tiny_model_dir}:batch_size=8")
    yield one, big
    for t in (one, big):
        getattr(t, "close", lambda: None)()


def test_generation_backs_off_on_oom_and_equals_unbatched_greedy(targets):
    one, big = targets
    cfg = GenerationConfig(max_new_tokens=8)
    expected = one.generate(PROMPTS, cfg)
    sizes: list[int] = []
    _oom_above(big, "_generate_batch", 2, sizes)
    assert big.generate(PROMPTS, cfg) == expected
    assert big._batcher.batch_size == 2 and big._batcher.backoffs == 2
    assert sizes[:3] == [6, 4, 2]


def test_scoring_backs_off_on_oom_and_equals_unbatched_scores(targets):
    one, big = targets
    expected = one.score(PROMPTS, CONTS)
    sizes: list[int] = []
    _oom_above(big, "_score_batch", 3, sizes)
    got = big.score(PROMPTS, CONTS)
    assert got == pytest.approx(expected, abs=1e-4)
    assert big._batcher.batch_size == 2
    assert max(s for s in sizes[2:]) <= 2
