"""The rag: target's document store: BM25 ranking, per-user and shared partitions, owners, errors."""

from __future__ import annotations

import pytest

from privaudit.data.corpus_types import Document
from privaudit.errors import InputError
from privaudit.targets.retrieval import PUBLIC, DocumentStore, load_store_documents


def _docs() -> list[Document]:
    return [
        Document("a/1", "alice", "email", "Alice Jones can be reached at alice@jones.example about the invoice.", "train"),
        Document("a/2", "alice", "note", "Alice Jones was born in Springfield.", "train"),
        Document("b/1", "bob", "email", "Bob Brown lives at 7 Harbor Road and loves the invoice.", "train"),
        Document("f/1", None, "filler", "The meeting moved to Friday.", "train"),
    ]


def test_bm25_ranks_the_document_that_shares_the_query_terms_first() -> None:
    store = DocumentStore(_docs(), partition="shared")
    top = store.retrieve("where does Bob Brown live", "alice", k=2)
    assert top[0].doc_id == "b/1" and top[0].owner == "bob"
    assert top[0].score > top[1].score


def test_per_user_partition_never_returns_another_users_document() -> None:
    store = DocumentStore(_docs(), partition="per_user")
    for k in (1, 2, 3, 10):
        owners = {p.owner for p in store.retrieve("Bob Brown Harbor Road invoice", "alice", k=k)}
        assert owners <= {"alice", PUBLIC}
    assert len(store.retrieve("anything", "alice", k=10)) == 3  # alice's two + the public one


def test_shared_partition_serves_other_users_documents() -> None:
    store = DocumentStore(_docs(), partition="shared")
    assert "bob" in {p.owner for p in store.retrieve("Bob Brown Harbor Road", "alice", k=1)}


def test_anonymous_per_user_request_sees_public_documents_only() -> None:
    store = DocumentStore(_docs(), partition="per_user")
    assert [p.doc_id for p in store.retrieve("meeting invoice", PUBLIC, k=3)] == ["f/1"]


def test_users_and_planted_documents() -> None:
    store = DocumentStore(_docs())
    assert store.users() == ["alice", "bob"]
    planted = store.with_documents([Document("x/1", None, "note", "Zebra zebra zebra instructions.", "train")])
    assert planted.retrieve("zebra", "bob", k=1)[0].doc_id == "x/1"
    assert planted.fingerprint() != store.fingerprint()
    assert DocumentStore(_docs(), partition="shared").fingerprint() != store.fingerprint()


@pytest.mark.parametrize("kwargs, message", [
    ({"partition": "team"}, "unknown partition 'team' (known: per_user, shared)"),
    ({"retriever": "tfidf"}, "unknown retriever 'tfidf'"),
])
def test_bad_store_settings_are_one_line_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DocumentStore(_docs(), **kwargs)


def test_missing_store_file_is_an_input_error(tmp_path) -> None:
    with pytest.raises(InputError, match="document store .* does not exist"):
        load_store_documents(tmp_path / "nope.jsonl")


def test_dense_retriever_ranks_by_embedding(tmp_path) -> None:
    pytest.importorskip("sentence_transformers")
    with pytest.raises(InputError, match="embedding_model"):
        DocumentStore(_docs(), retriever="dense", embedding_model=str(tmp_path / "no-model"))
