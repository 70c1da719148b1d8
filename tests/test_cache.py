"""The SQLite cache: only missing inputs reach the model, keyed by fingerprint and settings."""

from __future__ import annotations

from typing import Sequence

from privaudit.engine.cache import CachedTarget, SqliteCache
from privaudit.targets.base import GenerationConfig


class CountingTarget:
    """A deterministic pure-Python target that counts what it is asked to compute."""

    name = "counting"
    capabilities = frozenset({"generate", "score", "chat"})

    def __init__(self, tag: str = "a") -> None:
        self.tag = tag
        self.generated: list[str] = []
        self.scored: list[tuple[str, str]] = []

    def fingerprint(self) -> str:
        return f"counting-{self.tag}"

    def generate(self, prompts: Sequence[str], cfg: GenerationConfig) -> list[list[str]]:
        self.generated.extend(prompts)
        return [[f"{self.tag}:{p}:{cfg.max_new_tokens}"] * cfg.num_samples for p in prompts]

    def score(self, prompts, continuations):
        self.scored.extend(zip(prompts, continuations))
        return [-float(len(p) + len(c)) for p, c in zip(prompts, continuations)]

    def chat(self, conversations, cfg):
        return [[c[-1]["content"].upper()] for c in conversations]

    def close(self) -> None:
        pass


def test_repeated_and_duplicate_inputs_are_computed_once(tmp_path):
    inner = CountingTarget()
    cached = CachedTarget(inner, SqliteCache(tmp_path / "c.sqlite"))
    cfg = GenerationConfig(max_new_tokens=4, num_samples=2)
    first = cached.generate(["x", "y", "x"], cfg)
    assert first == [["a:x:4"] * 2, ["a:y:4"] * 2, ["a:x:4"] * 2]
    assert inner.generated == ["x", "y"]
    assert cached.generate(["y", "z"], cfg) == [["a:y:4"] * 2, ["a:z:4"] * 2]
    assert inner.generated == ["x", "y", "z"]


def test_settings_and_fingerprint_are_part_of_the_key(tmp_path):
    cache = SqliteCache(tmp_path / "c.sqlite")
    a, b = CountingTarget("a"), CountingTarget("b")
    CachedTarget(a, cache).generate(["x"], GenerationConfig(max_new_tokens=4))
    CachedTarget(a, cache).generate(["x"], GenerationConfig(max_new_tokens=5))
    assert CachedTarget(b, cache).generate(["x"], GenerationConfig(max_new_tokens=4)) == [["b:x:4"]]
    assert a.generated == ["x", "x"] and b.generated == ["x"]


def test_scores_survive_a_new_process_worth_of_cache(tmp_path):
    inner = CountingTarget()
    CachedTarget(inner, SqliteCache(tmp_path / "c.sqlite")).score(["p", "q"], ["c", "dd"])
    again = CountingTarget()
    scores = CachedTarget(again, SqliteCache(tmp_path / "c.sqlite")).score(["q", "p"], ["dd", "c"])
    assert scores == [-3.0, -2.0] and again.scored == []
