"""`predictions:FILE:model=NAME`: a target that answers nothing, standing for guesses already stored.

Scoring a SynthPAI predictions file (`privaudit attack attributes --predictions FILE`) needs no
model, but a run folder is organised by target: this placeholder gives the stored model's name to
the records and the file's sha256 to the manifest, so a resumed run notices an edited file. It has
no capability; every query raises CapabilityError (an attack that would query it fails cleanly).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from privaudit.engine.hashing import file_sha256
from privaudit.errors import CapabilityError, InputError
from privaudit.targets.base import GenerationConfig, Message, register_fingerprint, register_target


class StoredPredictions:
    """The model whose guesses a predictions file holds; never queried."""

    capabilities: frozenset[str] = frozenset()

    def __init__(self, path: Path, model: str) -> None:
        self.path, self.model = path, model
        self.name = model or f"predictions:{path.name}"

    def fingerprint(self) -> str:
        return _fingerprint(str(self.path), {"model": self.model})

    def _refuse(self, *_: object) -> list:
        raise CapabilityError(f"target '{self.name}' is a file of stored predictions and answers no queries")

    def generate(self, prompts: Sequence[str], cfg: GenerationConfig) -> list[list[str]]:
        return self._refuse()

    def chat(self, conversations: Sequence[Sequence[Message]], cfg: GenerationConfig) -> list[list[str]]:
        return self._refuse()

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        return self._refuse()

    def close(self) -> None:
        pass


@register_fingerprint("predictions")
def _fingerprint(location: str, options: Mapping[str, str]) -> str:
    path = Path(location)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return f"predictions:{file_sha256(path)[:16]}:{options.get('model', '')}"


@register_target("predictions")
def _factory(location: str, options: Mapping[str, str]) -> StoredPredictions:
    path = Path(location)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return StoredPredictions(path, options.get("model", ""))
