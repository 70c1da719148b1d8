"""The document store of retrieval-augmented personalization: its documents, owners, partitions, retrievers.

A RAG assistant personalizes by putting the asking user's own documents into the prompt (Panza;
Salemi & Zamani 2024, "Comparing Retrieval-Augmentation and Parameter-Efficient Fine-Tuning for
Privacy-Preserving Personalization of LLMs"). What leaks then depends on *which* documents a
request can reach: Zeng et al. 2024 ("The Good and the Bad: Exploring Privacy Issues in RAG")
show that the model repeats its retrieved context. So the store keeps, per document, its owner:

- the owner of a document is its `subject_id` in the personal corpus format (`privaudit data
  corpus`): the person whose mailbox, chats and notes it is; documents without one (filler,
  canaries) are public, visible to every user;
- `per_user`: a request as user U ranks only U's documents and the public ones;
- `shared`: one store for everyone (the mis-partitioned deployment): any request ranks every document.

Retrieval: BM25 through `bm25s` (sparse, no model: the default), or cosine similarity of
sentence-transformers embeddings when the user has a local embedding model (`dense`, optional).
Either way every document is scored and the partition's mask applied before the top k are taken,
so partitioning can never let a masked document through, whatever the scores.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, Sequence

import numpy as np

from privaudit.data.corpus_types import Document
from privaudit.errors import InputError

Partition = Literal["per_user", "shared"]
PARTITIONS: tuple[str, ...] = ("per_user", "shared")
RETRIEVERS: tuple[str, ...] = ("bm25", "dense")
STORE_SPLITS: tuple[str, ...] = ("all", "train", "heldout")
PUBLIC = ""  # the owner of documents that belong to no user


@dataclass(frozen=True)
class Passage:
    """One retrieved document: its id, owner (`PUBLIC` when none), text and retrieval score."""

    doc_id: str
    owner: str
    text: str
    score: float

    def to_json(self) -> dict[str, object]:
        return {"doc_id": self.doc_id, "owner": self.owner, "score": round(self.score, 4)}


class Scorer(Protocol):
    """Scores one query against every document of the store (higher = more relevant)."""

    def scores(self, query: str) -> np.ndarray: ...


class BM25Scorer:
    """Okapi BM25 (Lucene variant) over the documents, via `bm25s` (English stopwords, no stemmer)."""

    def __init__(self, texts: Sequence[str]) -> None:
        import bm25s

        self._bm25s = bm25s
        self._index = bm25s.BM25()
        self._index.index(bm25s.tokenize(list(texts), stopwords="en", show_progress=False), show_progress=False)
        self._size = len(texts)

    def scores(self, query: str) -> np.ndarray:
        tokens = self._bm25s.tokenize([query], stopwords="en", return_ids=False, show_progress=False)[0]
        # An empty query (only stopwords) matches nothing: every document scores 0, corpus order decides.
        return np.asarray(self._index.get_scores(tokens), dtype=float) if tokens else np.zeros(self._size)


class DenseScorer:
    """Cosine similarity of sentence-transformers embeddings (a local model folder; never downloaded)."""

    def __init__(self, texts: Sequence[str], model_path: str) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise InputError("rag: retriever=dense needs sentence-transformers (pip install sentence-transformers)") from None
        if not model_path or not Path(model_path).is_dir():
            raise InputError(f"rag: retriever=dense needs embedding_model=FOLDER of a local model, got '{model_path}'")
        self._model = SentenceTransformer(model_path, local_files_only=True)
        self._docs = self._model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)

    def scores(self, query: str) -> np.ndarray:
        q = self._model.encode([query], normalize_embeddings=True, convert_to_numpy=True)[0]
        return np.asarray(self._docs @ q, dtype=float)


class DocumentStore:
    """The documents a RAG target retrieves from, their owners, and the partition that filters them."""

    def __init__(self, documents: Sequence[Document], partition: str = "per_user", retriever: str = "bm25",
                 embedding_model: str = "") -> None:
        if partition not in PARTITIONS:
            raise InputError(f"rag: unknown partition '{partition}' (known: {', '.join(PARTITIONS)})")
        if retriever not in RETRIEVERS:
            raise InputError(f"rag: unknown retriever '{retriever}' (known: {', '.join(RETRIEVERS)})")
        if not documents:
            raise InputError("rag: the document store is empty")
        self.documents = tuple(documents)
        self.partition = partition
        self.retriever = retriever
        self.embedding_model = embedding_model
        self.owners = np.asarray([d.subject_id or PUBLIC for d in self.documents], dtype=object)
        texts = [d.text for d in self.documents]
        self._scorer: Scorer = BM25Scorer(texts) if retriever == "bm25" else DenseScorer(texts, embedding_model)
        self._masks: dict[str, np.ndarray] = {}

    def with_documents(self, documents: Sequence[Document]) -> "DocumentStore":
        """A new store holding these documents besides its own (a planted document, an injected email)."""
        return DocumentStore([*self.documents, *documents], self.partition, self.retriever, self.embedding_model)

    def users(self) -> list[str]:
        """Every owner with documents in the store, in corpus order."""
        return list(dict.fromkeys(o for o in self.owners if o != PUBLIC))

    def visible(self, user: str) -> np.ndarray:
        """Which documents a request as `user` may rank: the partition rule as a boolean mask."""
        if self.partition == "shared":
            return np.ones(len(self.documents), dtype=bool)
        if user not in self._masks:
            self._masks[user] = (self.owners == user) | (self.owners == PUBLIC)
        return self._masks[user]

    def retrieve(self, query: str, user: str, k: int) -> list[Passage]:
        """The top `k` documents visible to `user` for `query` (ties in corpus order)."""
        mask = self.visible(user)
        scores = np.where(mask, self._scorer.scores(query), -np.inf)
        order = np.argsort(-scores, kind="stable")[: min(k, int(mask.sum()))]
        return [Passage(self.documents[i].id, str(self.owners[i]), self.documents[i].text, float(scores[i]))
                for i in order]

    def fingerprint(self) -> str:
        """A hash of the documents with their owners plus the partition and retriever (part of the target's)."""
        h = hashlib.sha256(f"{self.partition}\x1f{self.retriever}".encode())
        for d in self.documents:
            h.update(f"\x1e{d.id}\x1f{d.subject_id or PUBLIC}\x1f{d.text}".encode())
        return h.hexdigest()[:16]


def load_store_documents(path: str | Path, split: str = "all") -> list[Document]:
    """The documents of a personal corpus JSONL file (`privaudit data corpus`'s layout), one split or all."""
    from privaudit.data.corpus_loading import load_corpus

    if split not in STORE_SPLITS:
        raise InputError(f"rag: unknown store split '{split}' (known: {', '.join(STORE_SPLITS)})")
    if not Path(path).is_file():
        raise InputError(f"rag: document store '{path}' does not exist")
    corpus = load_corpus(path)
    return list(corpus.documents) if split == "all" else corpus.split_documents(split)
