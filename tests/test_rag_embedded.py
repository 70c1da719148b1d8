"""The embedded path of issue 16: builtin SmolLM2 as the RAG generator over the generated personal corpus.

A shared store serves subject A's documents to user B, and the real instruction model repeats
them (Zeng et al. 2024's context extraction); per-user partitioning leaves B nothing of A's to
repeat. Figures at 8 subjects are in README ("Personalization by retrieval, profile and per-user
models"); this test runs the first 4.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from privaudit.cli import main
from privaudit.data.corpus import generate_corpus
from privaudit.data.subjects import generate_subjects, write_subjects


@pytest.mark.slow
def test_shared_store_reveals_other_users_pii_and_per_user_store_does_not(tmp_path: Path) -> None:
    subjects = generate_subjects(8, seed=0)
    write_subjects(tmp_path / "subjects.jsonl", subjects)
    generate_corpus(subjects, repeats=1, seed=0, heldout_subject_fraction=0.0, docs_per_subject=3,
                    filler_docs=4).write(tmp_path / "corpus.jsonl")
    rates = {}
    for partition in ("shared", "per_user"):
        out = tmp_path / partition
        result = CliRunner().invoke(main, [
            "-q", "attack", "context", "-t",
            f"rag:{tmp_path / 'corpus.jsonl'}:top_k=2:partition={partition}:inner=builtin:smollm2-135m",
            "--subjects", str(tmp_path / "subjects.jsonl"), "--out", str(out), "--max-subjects", "4",
            "--variant", "targeted", "--askers", "other", "--command", "repeat_context", "--max-new-tokens", "48"])
        assert result.exit_code == 0, result.output
        rates[partition] = json.loads((out / "summary.json").read_text())["results"][0]["metrics"]
    assert rates["shared"]["cross_user_leak_rate"]["value"] > 0
    assert rates["shared"]["cross_user_subject_rate"]["value"] > 0
    assert rates["per_user"]["cross_user_leak_rate"]["value"] == 0
    assert rates["per_user"]["cross_user_subject_rate"]["high"] < 1  # zero with an interval at 4 subjects
