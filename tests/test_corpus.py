"""Personal corpus generation: splits, exact repeat counts, canaries and their candidates, JSONL I/O."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from privaudit.data.corpus import (
    Canary, CandidateSpace, Corpus, Document, assign_repeats, generate_corpus, load_corpus,
    sample_canary_candidates,
)
from privaudit.data.subjects import DataSubject, generate_subjects
from privaudit.errors import InputError


@pytest.fixture(scope="module")
def subjects() -> list[DataSubject]:
    return generate_subjects(40, seed=5)


@pytest.fixture(scope="module")
def corpus(subjects: list[DataSubject]) -> Corpus:
    return generate_corpus(subjects, repeats=3, seed=1, canaries=[0, 1, 4, 16], filler_docs=10)


def test_same_seed_same_corpus_and_other_seed_differs(subjects: list[DataSubject]) -> None:
    a = generate_corpus(subjects, repeats=2, seed=9, canaries=[1, 2])
    assert a == generate_corpus(subjects, repeats=2, seed=9, canaries=[1, 2])
    assert a != generate_corpus(subjects, repeats=2, seed=10, canaries=[1, 2])


def test_heldout_subjects_never_appear_in_training_texts(corpus: Corpus, subjects: list[DataSubject]) -> None:
    heldout = set(corpus.heldout_subject_ids())
    assert len(heldout) == 8 and not heldout & set(corpus.train_subject_ids())
    train_blob = "\n".join(corpus.train_texts())
    for s in subjects:
        if s.id in heldout:
            assert s.name not in train_blob and s.email not in train_blob and s.phone not in train_blob
            assert corpus.repeats_of(s.id) == 0
            assert all(d.split == "heldout" for d in corpus.documents_for(s.id))


def test_each_training_document_is_repeated_exactly(corpus: Corpus) -> None:
    counts = Counter(corpus.train_texts())
    for d in corpus.split_documents("train"):
        assert counts[d.text] == d.repeats
    personal = [d for d in corpus.split_documents("train") if d.subject_id]
    assert personal and all(d.repeats == 3 for d in personal)
    assert len(corpus.train_texts()) == sum(d.repeats for d in corpus.split_documents("train"))


def test_copies_are_spread_in_rounds_not_adjacent(corpus: Corpus) -> None:
    texts = corpus.train_texts()
    adjacent = {a for a, b in zip(texts, texts[1:]) if a == b}
    # Only the 16-repeat canary, alone in rounds 5..16, can follow itself.
    assert adjacent == {corpus.canaries[-1].text}
    assert texts[: len(corpus.split_documents("train"))] == [d.text for d in corpus.split_documents("train")]


def test_per_subject_repeats_mapping_is_honoured(subjects: list[DataSubject]) -> None:
    levels = assign_repeats(subjects, [1, 4, 16], seed=0)
    assert Counter(levels.values()) == {1: 14, 4: 13, 16: 13}
    corpus = generate_corpus(subjects, repeats=levels, seed=0)
    counts = Counter(corpus.train_texts())
    for sid in corpus.train_subject_ids():
        assert corpus.repeats_of(sid) == levels[sid]
        assert all(counts[d.text] == levels[sid] for d in corpus.documents_for(sid))


def test_canaries_are_inserted_with_exact_repeat_counts(corpus: Corpus) -> None:
    counts = Counter(corpus.train_texts())
    assert [c.repeats for c in corpus.canaries] == [0, 1, 4, 16]
    for c in corpus.canaries:
        assert counts[c.text] == c.repeats
        assert c.secret not in "\n".join(corpus.heldout_texts())
        assert c.candidate_space().matches(c.secret)
        assert c.text == c.prompt + c.continuation()
    assert len({c.prefix for c in corpus.canaries}) == len({c.secret for c in corpus.canaries}) == 4


def test_int_canaries_means_that_many_inserted_once(subjects: list[DataSubject]) -> None:
    corpus = generate_corpus(subjects[:5], canaries=3, seed=0)
    assert [c.repeats for c in corpus.canaries] == [1, 1, 1]


def test_candidates_are_distinct_well_formed_deterministic_and_never_the_secret() -> None:
    canary = Canary(id="c", prefix="my bank PIN is", secret="4829 1736", repeats=4)
    space = canary.candidate_space()
    assert space.size == 10**8 and "100,000,000" in space.describe()
    cands = sample_canary_candidates(canary, 2000, seed=3)
    assert len(set(cands)) == 2000 and canary.secret not in cands
    assert all(space.matches(c) for c in cands)
    assert cands == sample_canary_candidates(canary, 2000, seed=3)
    assert cands != sample_canary_candidates(canary, 2000, seed=4)


def test_small_candidate_space_is_enumerated_exactly() -> None:
    canary = Canary(id="c", prefix="code", secret="07", repeats=1, fmt="##")
    cands = sample_canary_candidates(canary, 99, seed=0)
    assert sorted(cands) == sorted(f"{i:02d}" for i in range(100) if i != 7)
    with pytest.raises(InputError, match="cannot sample 100"):
        sample_canary_candidates(canary, 100, seed=0)
    assert CandidateSpace("##-#").from_index(123) == "12-3"


def test_documents_mention_name_and_the_pii_they_claim(corpus: Corpus, subjects: list[DataSubject]) -> None:
    by_id = {s.id: s for s in subjects}
    for d in corpus.documents:
        if d.subject_id is None:
            continue
        s = by_id[d.subject_id]
        assert s.name in d.text
        assert d.mentions and all(s.pii_fields()[f] in d.text for f in d.mentions)
        assert d.kind in ("email", "chat", "note")


def test_every_subject_exposes_email_phone_and_address(corpus: Corpus, subjects: list[DataSubject]) -> None:
    for s in subjects:
        mentioned = {f for d in corpus.documents_for(s.id) for f in d.mentions}
        assert {"email", "phone", "address"} <= mentioned
        assert len({d.text for d in corpus.documents_for(s.id)}) == 3


def test_extra_fields_of_hand_written_subjects_are_used() -> None:
    s = DataSubject(id="p", name="Ann Lee", extra={"ssn": "123-45-6789"})
    corpus = generate_corpus([s], docs_per_subject=2, heldout_subject_fraction=0.0, filler_docs=0)
    assert any("123-45-6789" in d.text and d.mentions == ("ssn",) for d in corpus.documents)


def test_filler_is_pii_free_and_in_both_splits(corpus: Corpus, subjects: list[DataSubject]) -> None:
    filler = [d for d in corpus.documents if d.kind == "filler"]
    assert len(filler) == 10 and len({d.text for d in filler}) == 10
    assert {d.split for d in filler} == {"train", "heldout"}
    values = [v for s in subjects for v in (s.name, *s.pii_fields().values())]
    assert not any(v in d.text for d in filler for v in values)


def test_write_then_load_round_trips(tmp_path: Path, corpus: Corpus) -> None:
    corpus.write(tmp_path / "c.jsonl")
    loaded = load_corpus(tmp_path / "c.jsonl")
    assert loaded == corpus and loaded.meta["seed"] == 1
    assert loaded.train_texts() == corpus.train_texts()


def _corpus_file(tmp_path: Path, *rows: dict) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


DOC = {"record": "document", "id": "d1", "subject_id": "s1", "kind": "note", "split": "train", "repeats": 2,
       "text": "Jane's phone is (555) 201-3344", "mentions": ["phone"]}


@pytest.mark.parametrize("row, message", [
    ({**DOC, "id": "d2", "kind": "tweet"}, ":2: field 'kind': expected one of"),
    ({**DOC, "id": "d2", "split": "test"}, ":2: field 'split': expected 'train' or 'heldout'"),
    ({**DOC, "id": "d2", "repeats": 0}, ":2: field 'repeats': must be >= 1"),
    ({**DOC, "id": "d2", "repeats": "2"}, ":2: field 'repeats': expected an integer, got string"),
    ({**DOC, "id": "d2", "text": ""}, ":2: field 'text': empty value"),
    ({**DOC, "id": "d2", "mentions": "phone"}, ":2: field 'mentions': expected an array"),
    ({**DOC}, ":2: field 'id': duplicate document id 'd1' (first on line 1)"),
    ({**DOC, "id": "d2", "split": "heldout"}, ":2: field 'split': subject 's1' is in 'train' on line 1"),
    ({"record": "thing", "id": "x"}, ":2: field 'record': expected 'meta', 'document' or 'canary'"),
    ({"record": "canary", "id": "c", "prefix": "pin is", "secret": "12345", "repeats": 0},
     ":2: field 'secret': does not match format '#### ####'"),
    ({"record": "canary", "id": "c", "prefix": "pin is", "secret": "1234 5678", "repeats": 2},
     ":2: field 'repeats': canary 'c' needs a training document"),
])
def test_bad_corpus_records_name_line_and_field(tmp_path: Path, row: dict, message: str) -> None:
    with pytest.raises(InputError) as err:
        load_corpus(_corpus_file(tmp_path, DOC, row))
    assert f"corpus.jsonl{message}" in str(err.value)


def test_generation_parameters_are_validated(subjects: list[DataSubject]) -> None:
    with pytest.raises(InputError, match="no count for subject"):
        generate_corpus(subjects, repeats={"s0000": 2})
    with pytest.raises(InputError, match="heldout_subject_fraction"):
        generate_corpus(subjects, heldout_subject_fraction=1.0)
    with pytest.raises(InputError, match="canary repeat counts"):
        generate_corpus(subjects, canaries=[-1])
    with pytest.raises(InputError, match="repeats for subject"):
        generate_corpus(subjects, repeats=0)
    with pytest.raises(InputError, match="at most"):
        generate_corpus(subjects[:2], canaries=1000)


def test_corpus_accepts_plain_documents() -> None:
    doc = Document(id="a", subject_id=None, kind="filler", text="hello", split="train", repeats=2)
    assert Corpus([doc]).train_texts() == ["hello", "hello"]
