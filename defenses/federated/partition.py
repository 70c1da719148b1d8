"""Split a personal corpus into federated clients: each client holds whole subjects' documents.

Pure functions over a `Corpus`. A subject's documents never straddle two clients (a client is one
user, or one group of users), and each client keeps some of its own subjects' documents back as a
*local* held-out set: the corpus' global held-out split is about other people, so only local
held-out documents show whether a personal part learned its own users.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privaudit.errors import InputError


@dataclass(frozen=True)
class ClientPartition:
    """One client's data: its subjects, training texts (with repeats) and local held-out texts."""

    client_id: int
    subject_ids: tuple[str, ...]
    train_texts: tuple[str, ...]
    heldout_texts: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "subject_ids": list(self.subject_ids),
                "train_texts": list(self.train_texts), "heldout_texts": list(self.heldout_texts)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ClientPartition":
        return cls(int(d["client_id"]), tuple(d["subject_ids"]), tuple(d["train_texts"]), tuple(d["heldout_texts"]))


def partition_corpus(corpus: Any, num_clients: int, heldout_docs_per_subject: int = 1) -> list[ClientPartition]:
    """Group the corpus' training subjects round-robin into `num_clients` clients.

    Per subject, the last `heldout_docs_per_subject` distinct documents become the client's local
    held-out set (when the subject has more documents than that); the rest are trained on with their
    repeat counts. Documents without a subject (canaries, filler) are dealt round-robin as training data.
    """
    subjects = sorted(corpus.train_subject_ids())
    if len(subjects) < num_clients:
        raise InputError(f"federated: num_clients={num_clients} but the corpus has only {len(subjects)} "
                         "training subjects (each client needs at least one)")
    groups: list[list[str]] = [subjects[i::num_clients] for i in range(num_clients)]
    train_docs: list[list[Any]] = [[] for _ in range(num_clients)]
    heldout: list[list[str]] = [[] for _ in range(num_clients)]
    owner = {sid: i for i, group in enumerate(groups) for sid in group}
    by_subject: dict[str, list[Any]] = {}
    orphans: list[Any] = []
    for doc in corpus.split_documents("train"):
        if doc.subject_id in owner:
            by_subject.setdefault(doc.subject_id, []).append(doc)
        else:
            orphans.append(doc)
    for sid in subjects:
        docs = by_subject.get(sid, [])
        k = heldout_docs_per_subject if len(docs) > heldout_docs_per_subject else 0
        cut = len(docs) - k
        train_docs[owner[sid]].extend(docs[:cut])
        heldout[owner[sid]].extend(d.text for d in docs[cut:])
    for i, doc in enumerate(orphans):
        train_docs[i % num_clients].append(doc)
    out = []
    for i in range(num_clients):
        docs = train_docs[i]
        rounds = max((d.repeats for d in docs), default=0)
        texts = [d.text for r in range(rounds) for d in docs if d.repeats > r]  # copies spread out, as Corpus does
        out.append(ClientPartition(i, tuple(groups[i]), tuple(texts), tuple(heldout[i])))
    return out


def write_partitions(partitions: list[ClientPartition], folder: Path) -> None:
    """One JSON file per client (user-only: it holds personal documents)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for p in partitions:
        path = partition_path(folder, p.client_id)
        path.write_text(json.dumps(p.to_json()), encoding="utf-8")
        path.chmod(0o600)


def partition_path(folder: Path, client_id: int) -> Path:
    return Path(folder) / f"client_{client_id}.json"


def read_partition(folder: Path, client_id: int) -> ClientPartition:
    path = partition_path(folder, client_id)
    if not path.is_file():
        raise InputError(f"{path}: no data for federated client {client_id}")
    return ClientPartition.from_json(json.loads(path.read_text(encoding="utf-8")))
