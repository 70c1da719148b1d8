"""Content hashes of files (model weights, data files), memoized so a big checkpoint hashes once.

A run's identity holds the sha256 of every model and data file it reads (see
`privaudit.engine.identity`), so every resume re-checks them. Hashing a multi-GB checkpoint takes
tens of seconds, so digests are remembered by the file's stat signature: in this process for every
file, and on disk (the user cache) for big files, so a later process skips them too.

Why the signature is more than (path, size, mtime): an in-place model swap with `cp -p`, `rsync -a`
or `tar x` keeps the source's mtime, and two checkpoints of one architecture have the same size.
The inode number and ctime change whenever a file is replaced or rewritten and cannot be set by
user tools, so a swapped file always hashes again; the price is a re-hash after chmod/chown.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

# Files at least this big are remembered across processes; small ones hash faster than the memo loads.
DISK_MEMO_MIN_BYTES = 1 << 24
DISK_MEMO_MAX_ENTRIES = 1000

_MEMO: dict[str, str] = {}  # stat signature -> sha256, for this process


def privaudit_cache_root() -> Path:
    """Root of privaudit's user cache (converted builtin models, file hashes); PRIVAUDIT_CACHE_DIR overrides."""
    env = os.environ.get("PRIVAUDIT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("privaudit"))


def _signature(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{st.st_ctime_ns}"


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, memoized by (path, size, mtime_ns, inode, ctime_ns)."""
    path = Path(path)
    key = _signature(path)
    if key in _MEMO:
        return _MEMO[key]
    big = path.stat().st_size >= DISK_MEMO_MIN_BYTES
    memo_file = privaudit_cache_root() / "file_hashes.json"
    if big:
        memo = _read_memo(memo_file)
        if key in memo:
            _MEMO[key] = memo[key]
            return memo[key]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    if _signature(path) != key:  # the file changed while it was read: remember nothing
        return digest
    _MEMO[key] = digest
    if big:
        memo = _read_memo(memo_file)
        memo[key] = digest
        _write_memo(memo_file, memo)
    return digest


def _read_memo(memo_file: Path) -> dict[str, str]:
    try:
        data = json.loads(memo_file.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_memo(memo_file: Path, memo: dict[str, str]) -> None:
    """Atomic replace, so a concurrent reader sees the old or the new memo, never half of one."""
    try:
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_file.with_name(f"{memo_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(dict(list(memo.items())[-DISK_MEMO_MAX_ENTRIES:])))
        os.replace(tmp, memo_file)
    except OSError:
        pass  # the memo is an optimization; hashing again is always correct
