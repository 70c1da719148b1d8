"""A SQLite cache of generations and scores, and a Target wrapper that consults it.

Keys are the target fingerprint plus the exact inputs and generation settings, so a cached value is
only ever reused for the same model, prompt and sampling parameters. Repeated work (a resumed run, a
report re-render, two attacks sharing probes) then costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Sequence

from privaudit.engine.store import dumps_json
from privaudit.targets.base import GenerationConfig, Message, Target


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False, sort_keys=True).encode("utf-8", "surrogatepass")).hexdigest()


class SqliteCache:
    """A key-value store in one SQLite file (WAL mode, safe across processes)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Cached outputs can hold PII: user-only, whatever the umask (SQLite gives its -wal/-shm
        # files the database file's mode).
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(self.path, 0o600)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._conn.commit()

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                for key, value in self._conn.execute(f"SELECT key, value FROM cache WHERE key IN ({marks})", chunk):
                    out[key] = json.loads(value)
        return out

    def put_many(self, items: dict[str, Any]) -> None:
        with self._lock:
            self._conn.executemany(
                "INSERT OR REPLACE INTO cache (key, value) VALUES (?, ?)",
                [(k, dumps_json(v)) for k, v in items.items()],  # lone surrogates escaped: valid UTF-8
            )
            self._conn.commit()

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class CachedTarget:
    """Wraps a Target; only inputs missing from the cache reach the model, in one batch call."""

    def __init__(self, inner: Target, cache: SqliteCache) -> None:
        self.inner = inner
        self.cache = cache
        self.name = inner.name
        self.capabilities = inner.capabilities

    def fingerprint(self) -> str:
        return self.inner.fingerprint()

    def __getattr__(self, item: str) -> Any:  # expose backend extras (model, tokenizer) unchanged
        return getattr(self.inner, item)

    def _cached(self, kind: str, inputs: Sequence[Any], params: Any, compute) -> list[Any]:
        fp = self.inner.fingerprint()
        keys = [_digest(kind, fp, params, x) for x in inputs]
        found = self.cache.get_many(list(dict.fromkeys(keys)))
        missing_idx = [i for i, k in enumerate(keys) if k not in found]
        if missing_idx:
            # Deduplicate identical inputs so the model computes each only once.
            unique: dict[str, int] = {}
            for i in missing_idx:
                unique.setdefault(keys[i], i)
            computed = compute([inputs[i] for i in unique.values()])
            new = dict(zip(unique.keys(), computed))
            self.cache.put_many(new)
            found.update(new)
        return [found[k] for k in keys]

    def generate(self, prompts: Sequence[str], cfg: GenerationConfig) -> list[list[str]]:
        return self._cached("generate", list(prompts), cfg.to_dict(), lambda xs: self.inner.generate(xs, cfg))

    def chat(self, conversations: Sequence[Sequence[Message]], cfg: GenerationConfig) -> list[list[str]]:
        convs = [[dict(m) for m in c] for c in conversations]
        return self._cached("chat", convs, cfg.to_dict(), lambda xs: self.inner.chat(xs, cfg))

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        pairs = [[p, c] for p, c in zip(prompts, continuations)]
        return self._cached(
            "score", pairs, None, lambda xs: self.inner.score([p for p, _ in xs], [c for _, c in xs])
        )

    def close(self) -> None:
        self.inner.close()
