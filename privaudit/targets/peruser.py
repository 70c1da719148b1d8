"""`peruser:`: one model per user (PEFT-U style adapters, or `privaudit defend federated`'s clients) as one target.

The cross-user leakage matrix asks every user's model about every user's subjects; this target is
that cohort: `for_user(U)` is U's own model. Two sources:

- a JSON manifest `{"users": [{"id": "alice", "target": "hf:BASE:adapter=DIR", "subjects": ["s0001"]}, ...]}`
  (a list of adapter specs and whose data each was trained on);
- the output folder of `privaudit defend federated` (`federated.json` + `partitions/client_K.json`):
  user `client_K` is client K's personalized model (global body + its personal part), its
  subjects the ones in K's partition.

Models load one at a time when a user's view is first asked for, and the previous one is closed,
so N users never hold N models in memory. The cohort itself does not generate (which user's model
would answer?): attacks ask through `for_user`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from privaudit.errors import InputError, TargetError
from privaudit.targets.base import (
    CHAT, GENERATE, SCORE, USER_CONTEXT, GenerationConfig, Message, Target, load_target, register_target,
    spec_fingerprint, TargetSpec,
)
from privaudit.targets.wrappers import check_options

FEDERATED_SUMMARY = "federated.json"


@dataclass(frozen=True)
class UserModel:
    """One user of the cohort: their id, their model's spec, the subjects whose data trained it."""

    user: str
    spec: str
    subjects: tuple[str, ...]


def read_manifest(path: Path) -> list[UserModel]:
    """A JSON cohort manifest; every defect names the file and the field."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    rows = data.get("users") if isinstance(data, dict) else None
    if not isinstance(rows, list) or len(rows) < 2:
        raise InputError(f"{path}: users: a list of at least 2 {{id, target, subjects}} entries is required")
    out: list[UserModel] = []
    for i, row in enumerate(rows):
        where = f"{path}: users[{i}]"
        if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not row["id"]:
            raise InputError(f"{where}.id: a non-empty string is required")
        if not isinstance(row.get("target"), str) or ":" not in row["target"]:
            raise InputError(f"{where}.target: a target spec (e.g. hf:BASE:adapter=DIR) is required")
        subjects = row.get("subjects")
        if not isinstance(subjects, list) or not subjects or not all(isinstance(s, str) for s in subjects):
            raise InputError(f"{where}.subjects: a non-empty list of subject ids is required")
        out.append(UserModel(row["id"], row["target"], tuple(subjects)))
    ids = [u.user for u in out]
    if len(set(ids)) != len(ids):
        raise InputError(f"{path}: users: duplicate id '{next(u for u in ids if ids.count(u) > 1)}'")
    return out


def read_federated(folder: Path) -> list[UserModel]:
    """The clients of a `privaudit defend federated` output folder as users `client_K`."""
    from privaudit.defenses.federated.partition import read_partition
    from privaudit.defenses.federated.settings import PARTITIONS_DIR

    summary = json.loads((folder / FEDERATED_SUMMARY).read_text(encoding="utf-8"))
    clients = summary.get("clients") or []
    if len(clients) < 2:
        raise InputError(f"{folder / FEDERATED_SUMMARY}: clients: a cross-user matrix needs at least 2 clients")
    users = []
    for c in clients:
        part = read_partition(folder / PARTITIONS_DIR, int(c["client_id"]))
        users.append(UserModel(f"client_{c['client_id']}", str(c["target_spec"]), tuple(part.subject_ids)))
    return users


def read_cohort(location: str) -> list[UserModel]:
    path = Path(location)
    if path.is_dir():
        if not (path / FEDERATED_SUMMARY).is_file():
            raise InputError(f"peruser: '{location}' is a folder without {FEDERATED_SUMMARY} "
                             "(not a finished `privaudit defend federated` output)")
        return read_federated(path)
    if not path.is_file():
        raise InputError(f"peruser: cohort manifest '{location}' does not exist")
    return read_manifest(path)


class PerUserTarget:
    """N users' own models behind one target; `for_user(U)` is U's model (loaded on first use)."""

    def __init__(self, cohort: Sequence[UserModel], name: str = "peruser") -> None:
        self.cohort = {u.user: u for u in cohort}
        self.name = name
        self._loaded: tuple[str, Target] | None = None
        first = load_target(cohort[0].spec)  # capabilities are the first model's (a cohort shares a base)
        self._loaded = (cohort[0].user, first)
        self.capabilities = frozenset(first.capabilities & {GENERATE, CHAT, SCORE}) | {USER_CONTEXT}

    def users(self) -> dict[str, tuple[str, ...]]:
        return {u.user: u.subjects for u in self.cohort.values()}

    def model_of(self, user: str) -> Target:
        """User's model, loading it (and closing the previously loaded one) when needed."""
        if user not in self.cohort:
            raise InputError(f"target '{self.name}': no user '{user}' (users: {', '.join(self.cohort)})")
        if self._loaded is not None and self._loaded[0] == user:
            return self._loaded[1]
        if self._loaded is not None:
            self._loaded[1].close()
            self._loaded = None
        target = load_target(self.cohort[user].spec)
        self._loaded = (user, target)
        return target

    def for_user(self, user: str) -> "UserView":
        if user not in self.cohort:
            raise InputError(f"target '{self.name}': no user '{user}' (users: {', '.join(self.cohort)})")
        return UserView(self, user)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for u in self.cohort.values():
            fp = spec_fingerprint(u.spec) or u.spec
            h.update(f"{u.user}\x1f{fp}\x1f{','.join(u.subjects)}\x1e".encode())
        return f"peruser:{h.hexdigest()[:16]}"

    def _no_user(self, *_: Any) -> Any:
        raise TargetError(f"target '{self.name}' holds one model per user: ask through an attack that "
                          "queries each user's model (cross_user), or audit one user's spec directly")

    generate = chat = score = _no_user

    def close(self) -> None:
        if self._loaded is not None:
            self._loaded[1].close()
            self._loaded = None


class UserView:
    """One user's model of a cohort, answering as a Target under a name and fingerprint of its own."""

    def __init__(self, cohort: PerUserTarget, user: str) -> None:
        self.cohort = cohort
        self.user = user
        self.name = f"{cohort.name}[user={user}]"
        self.capabilities = cohort.capabilities

    def fingerprint(self) -> str:
        spec = self.cohort.cohort[self.user].spec
        return spec_fingerprint(spec) or self.cohort.model_of(self.user).fingerprint()

    def generate(self, prompts: Sequence[str], cfg: GenerationConfig) -> list[list[str]]:
        return self.cohort.model_of(self.user).generate(prompts, cfg)

    def chat(self, conversations: Sequence[Sequence[Message]], cfg: GenerationConfig) -> list[list[str]]:
        return self.cohort.model_of(self.user).chat(conversations, cfg)

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        return self.cohort.model_of(self.user).score(prompts, continuations)

    def close(self) -> None:
        """The cohort owns the models (it closes them); a view has nothing of its own to release."""


@register_target("peruser")
def peruser_factory(location: str, options: Mapping[str, str]) -> PerUserTarget:
    """Build `peruser:MANIFEST.json` or `peruser:FEDERATED_OUT_DIR` (each user's spec checked before loading)."""
    check_options("peruser", location, options, ())
    cohort = read_cohort(location)
    for u in cohort:
        TargetSpec.parse(u.spec)
    return PerUserTarget(cohort, name=f"peruser:{Path(location).name}")
