"""The rag defense: a compare variant whose store is the training corpus (Presidio-scrubbed on request)."""

from __future__ import annotations

from pathlib import Path

import pytest

from privaudit.data.corpus import generate_corpus, load_corpus
from privaudit.data.subjects import generate_subjects
from privaudit.defenses.rag_store import RagDefense
from privaudit.defenses.registry import DefenseContext
from privaudit.defenses.variants import configure_variant
from privaudit.errors import InputError
from privaudit.targets.base import load_target


@pytest.mark.parametrize("scrub", [False, True])
def test_rag_variant_builds_a_store_and_measures_heldout_perplexity(tiny_model_dir, tmp_path: Path, scrub: bool) -> None:
    subjects = generate_subjects(4, seed=0)
    corpus = generate_corpus(subjects, repeats=2, seed=0, heldout_subject_fraction=0.25, docs_per_subject=2,
                             filler_docs=2)
    variant = configure_variant("rag_scrubbed" if scrub else "rag_shared",
                                {"defense": "rag", "partition": "shared", "scrub": scrub}, seed=0, where="t")
    assert isinstance(variant.defense, RagDefense)
    record = variant.defense.apply(DefenseContext(base=f"hf:{tiny_model_dir}", corpus=corpus, subjects=tuple(subjects),
                                                  out_dir=tmp_path))
    store = load_corpus(tmp_path / "store.jsonl")
    assert {d.split for d in store.documents} == {"train"}
    emails = [s.email for s in subjects if s.id in corpus.train_subject_ids()]
    text = " ".join(d.text for d in store.documents)
    assert all((e in text) != scrub for e in emails)  # scrubbed: no email survives; else all are there
    assert record.training is not None and record.training.heldout_perplexity > 1
    # utility on a split within each training subject's documents: its last one is out of the utility store
    held = {docs[-1].id for sid in corpus.train_subject_ids()
            if len(docs := [d for d in corpus.split_documents("train") if d.subject_id == sid]) >= 2}
    utility_ids = {d.id for d in load_corpus(tmp_path / "utility_store.jsonl").documents}
    assert held and not held & utility_ids and utility_ids | held == {d.id for d in store.documents}
    assert record.training.base_heldout_perplexity is not None and record.training.base_heldout_perplexity > 1
    assert "own last document" in " ".join(record.notes)
    assert (record.scrub is not None) == scrub
    target = load_target(record.target_spec)
    assert target.store.partition == "shared"
    target.close()


def test_rag_variant_rejects_an_unknown_partition() -> None:
    with pytest.raises(InputError, match="unknown partition 'team'"):
        configure_variant("rag", {"partition": "team"}, seed=0, where="compare.toml: defenses.rag")
