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


def test_the_run_batch_size_sizes_forward_passes_unless_the_spec_sets_one(tiny_model_dir, tmp_path, monkeypatch):
    """One batch size (issue 19): `--batch-size 32` alone makes 32-row forward passes; before, the
    target kept its own default of 16 rows until `:batch_size=32` was raised too."""
    from privaudit.audit import AuditSpec, run_audit
    from privaudit.data.subjects import generate_subjects, write_subjects
    from privaudit.targets.hf import HFTarget

    rows: list[int] = []
    real = HFTarget._generate_batch

    def recording(self, batch, cfg, k):
        rows.append(len(batch) * k)
        return real(self, batch, cfg, k)

    monkeypatch.setattr(HFTarget, "_generate_batch", recording)
    subjects = tmp_path / "subjects.jsonl"
    write_subjects(subjects, generate_subjects(5, seed=0))  # 35 email probes: one call of 32, one of 3
    attacks = {"pii": {"subjects": str(subjects), "pii_types": ["email"], "max_new_tokens": 2}}

    def audit(target: str, name: str) -> None:
        rows.clear()
        run_audit(AuditSpec(targets=[target], attacks=attacks, out=tmp_path / name, batch_size=32, cache=False))

    audit(f"hf:{tiny_model_dir}", "run")
    assert rows == [32, 3]
    audit(f"hf:{tiny_model_dir}:batch_size=8", "pinned")  # the target's option stays an explicit override
    assert max(rows) == 8 and sum(rows) == 35
