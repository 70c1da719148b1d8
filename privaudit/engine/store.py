"""The resumable run store: one output folder per audit run.

`results.jsonl` is append-only, one record per probe, flushed and fsync'd in batches, so a killed
run loses at most the unflushed batch and never corrupts what was written. On reopen, a torn last
line (the process died mid-write) is detected and cut off; the keys of the records already present
tell attacks which probes are done, so a rerun computes only the rest.

A lock file refuses a second concurrent run on the same folder instead of interleaving writes.

The index of finished keys is what a resumed run consults before every probe; at a real user base
(100k data subjects x 27 probes) a set of key strings alone is hundreds of MB, so `KeyIndex` keeps
16-byte digests in a sorted array (about 16 bytes a probe) and only the newest keys in a set.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from privaudit.errors import InputError, RunLockedError

RESULTS_FILE = "results.jsonl"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".lock"
CACHE_FILES = ("cache.sqlite", "cache.sqlite-wal", "cache.sqlite-shm")
WORK_DIR = "work"  # artifacts attacks keep between runs (learned soft prompts)


class KeyIndex:
    """A set of probe keys held as 16-byte blake2b digests: a sorted array plus a small set of new ones.

    Why digests: the keys of a 2.7M-probe run are ~100 bytes each as Python strings; 16-byte digests in
    one numpy array are ~16 bytes each, so a resumed run's memory stays flat in the number of probes.
    A false "done" would need a 128-bit collision (about 1e-26 at 1e6 keys).
    """

    MERGE_EVERY = 65536

    def __init__(self) -> None:
        import numpy as np

        self._np = np
        self._sorted = np.empty(0, dtype="S16")
        self._recent: set[bytes] = set()

    @staticmethod
    def digest(key: str) -> bytes:
        return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def __contains__(self, key: str) -> bool:
        return self._has(self.digest(key))

    def _has(self, d: bytes) -> bool:
        if d in self._recent:
            return True
        i = int(self._np.searchsorted(self._sorted, d))
        # numpy's S16 drops trailing NUL bytes on read; a fixed-length digest is recovered by stripping
        return i < len(self._sorted) and self._sorted[i] == d.rstrip(b"\0")

    def add(self, key: str) -> None:
        d = self.digest(key)
        if self._has(d):
            return
        self._recent.add(d)
        if len(self._recent) >= self.MERGE_EVERY:
            self._merge()

    def _merge(self) -> None:
        np = self._np
        fresh = np.array(sorted(self._recent), dtype="S16")
        self._sorted = np.sort(np.concatenate([self._sorted, fresh]), kind="stable")
        self._recent.clear()

    def clear(self) -> None:
        self._sorted = self._np.empty(0, dtype="S16")
        self._recent.clear()


def record_key(attack: str, target: str, item: str) -> str:
    """The identity of one probe within a run: attack name, target name and the attack's item key."""
    return f"{attack}\x1f{target}\x1f{item}"


@dataclass
class RunStore:
    """Append-only JSONL results plus a manifest, in a user-only folder, under an exclusive lock."""

    root: Path
    flush_every: int = 64
    flush_interval_s: float = 2.0  # also flush when the oldest buffered record is this old

    # Why both: a big batch of fast probes flushes by count; slow probes (long generations on CPU)
    # flush by time, so a killed run never loses more than a couple of seconds of work.

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self._buffer: list[str] = []
        self._buffer_since = 0.0
        self._done = KeyIndex()
        self._lock_fd: int | None = None
        self._fh = None

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self) -> "RunStore":
        if self.root.exists() and not self.root.is_dir():
            raise InputError(f"{self.root}: output path exists and is not a folder")
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)  # audit results hold PII: user-only, whatever the umask
        self._acquire_lock()
        self._repair_and_index()
        self._fh = open(self.results_path, "a", encoding="utf-8")
        os.chmod(self.results_path, 0o600)
        return self

    def close(self) -> None:
        if self._fh is not None:
            self.flush()
            self._fh.close()
            self._fh = None
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "RunStore":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def results_path(self) -> Path:
        return self.root / RESULTS_FILE

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_FILE

    def _acquire_lock(self) -> None:
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLockedError(
                f"{self.root}: another privaudit run is writing into this folder (lock held); "
                "wait for it or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _repair_and_index(self) -> None:
        """Cut a torn final line left by a killed writer, then index the finished probe keys."""
        path = self.results_path
        if not path.exists():
            path.touch(mode=0o600)
            return
        good_end = 0
        with open(path, "rb") as fh:  # streamed: a 100k-subject run's file is GBs
            for line in fh:
                if not line.endswith(b"\n"):
                    break
                good_end += len(line)
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line damaged by something else: ignore it rather than lose the run
                key = rec.get("key")
                if isinstance(key, str):
                    self._done.add(key)
        if good_end < path.stat().st_size:
            with open(path, "r+b") as fh:
                fh.truncate(good_end)

    # -- writing -----------------------------------------------------------------------------
    def is_done(self, key: str) -> bool:
        return key in self._done

    def done_keys(self) -> frozenset[str]:
        """Every stored key (read back from results.jsonl: the in-memory index holds digests only)."""
        self.flush()
        return frozenset(k for rec in read_records(self.root) if isinstance(k := rec.get("key"), str))

    def has_records(self) -> bool:
        return len(self._done) > 0

    def append(self, record: Mapping[str, Any]) -> None:
        """Buffer one probe record (it must carry 'key'); flushes every `flush_every` records."""
        if self._fh is None:
            raise RuntimeError("RunStore.append before open()")
        key = record.get("key")
        if not isinstance(key, str):
            raise ValueError("every result record needs a string 'key' (see record_key)")
        if key in self._done:
            return  # never store a probe twice, even if an attack recomputes it
        if not self._buffer:
            self._buffer_since = time.monotonic()
        self._buffer.append(dumps_json(record) + "\n")
        self._done.add(key)
        if len(self._buffer) >= self.flush_every or time.monotonic() - self._buffer_since >= self.flush_interval_s:
            self.flush()

    def extend(self, records: Iterable[Mapping[str, Any]]) -> None:
        for rec in records:
            self.append(rec)

    def flush(self) -> None:
        if self._fh is None or not self._buffer:
            return
        self._fh.write("".join(self._buffer))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._buffer.clear()

    # -- reading -----------------------------------------------------------------------------
    def iter_records(self, attack: str | None = None, target: str | None = None) -> Iterator[dict]:
        self.flush()
        yield from read_records(self.root, attack=attack, target=target)

    # -- manifest ----------------------------------------------------------------------------
    def read_manifest(self) -> dict:
        if not self.manifest_path.exists():
            return {}
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"{self.manifest_path}:{exc.lineno}: invalid JSON ({exc.msg})") from None

    def update_manifest(self, *, remove: Iterable[str] = (), **fields: Any) -> dict:
        """Merge `fields` into manifest.json (dropping the keys in `remove`), written atomically."""
        manifest = self.read_manifest()
        manifest.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        manifest.setdefault("environment", environment_info())
        for key in remove:
            manifest.pop(key, None)
        manifest.update(fields)
        write_json_atomic(self.manifest_path, manifest)
        return manifest

    # -- starting over -----------------------------------------------------------------------
    def discard(self, outputs: Iterable[str] = ()) -> None:
        """Forget every result of this folder (`--fresh`): empty results.jsonl, delete the manifest,
        the cache, the work folder and the named report files. Only files privaudit writes are
        touched; anything else the user keeps in the folder stays. Runs under the folder's lock."""
        if self._fh is None:
            raise RuntimeError("RunStore.discard before open()")
        self._buffer.clear()
        self._done.clear()
        self._fh.truncate(0)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        for name in (MANIFEST_FILE, *CACHE_FILES, *outputs):
            path = self.root / name
            if path.is_file() or path.is_symlink():
                path.unlink()
        work = self.root / WORK_DIR
        if work.is_dir() and not work.is_symlink():
            shutil.rmtree(work)


def read_records(root: Path, attack: str | None = None, target: str | None = None) -> Iterator[dict]:
    """Stream the records of a run folder, skipping a torn last line; optionally filter."""
    path = Path(root) / RESULTS_FILE
    if not path.exists():
        raise InputError(f"{path}: no results file (is this a privaudit run folder?)")
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break  # torn write of a killed run
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if attack is not None and rec.get("attack") != attack:
                continue
            if target is not None and rec.get("target") != target:
                continue
            yield rec


_LONE_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def dumps_json(payload: Any) -> str:
    """Compact JSON (sorted keys, non-ASCII kept) that always encodes as UTF-8.

    Model outputs may hold lone surrogates (invalid Unicode); written raw they make the UTF-8 file
    write fail. Inside a JSON string a character and its `\\uXXXX` escape are the same value, so
    escaping only those keeps the record byte-for-byte faithful after `json.loads`.
    """
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str)
    return _LONE_SURROGATE_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` so readers never see a half-written file, with user-only permissions.

    Every run output (manifest, summary, reports) goes through here: they may hold findings.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON atomically and user-only (see `write_text_atomic`)."""
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n")


def environment_info() -> dict[str, Any]:
    """Package versions and platform, recorded in every manifest for provenance."""
    from importlib import metadata

    versions: dict[str, str] = {}
    for dist in ("privaudit", "torch", "transformers", "peft", "opacus", "flwr", "presidio-analyzer",
                 "presidio-anonymizer", "pandas", "numpy", "scikit-learn"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return {"python": sys.version.split()[0], "platform": platform.platform(), "packages": versions}
