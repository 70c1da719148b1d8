"""`hf:ORG/NAME`: Hugging Face model ids resolved from the local hub cache, with no network call.

Why: users name models by their hub id (`hf:meta-llama/Llama-3.1-8B-Instruct`), and the weights
are usually already in the cache that `hf download` or an earlier transformers run filled
(`models--ORG--NAME/snapshots/REV/`, with `refs/main` naming the snapshot). privaudit never
downloads, so an id that is not cached is a one-line input error that names the folder looked in.
A path that exists locally always wins over an id of the same spelling.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from privaudit.errors import InputError

# A hub repo id: NAME or ORG/NAME of letters, digits, '-', '_', '.'; never a path ('/x', './x', '~/x').
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?")


def hub_cache_dir() -> Path:
    """The hub cache folder, from the environment as huggingface_hub reads it.

    `HF_HUB_CACHE`, else the legacy `HUGGINGFACE_HUB_CACHE`, else `HF_HOME/hub`, else
    `XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`. Read on every call, not
    taken from `huggingface_hub.constants`, which freezes the environment when it is first imported.
    """
    env = os.environ
    explicit = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def is_model_id(location: str) -> bool:
    """Whether `location` is spelled like a hub repo id (NAME or ORG/NAME) rather than a path."""
    return _REPO_ID.fullmatch(location) is not None and ".." not in location


def resolve_model_location(location: str | Path, what: str = "model") -> tuple[Path, str | None]:
    """The folder an `hf:` location names, and the hub id it came from (None for a local path).

    An existing path is used as is; a missing one spelled like a hub id is looked up in the cache;
    anything else is returned unchanged so the folder checks report it as missing.
    """
    path = Path(location).expanduser()
    text = str(location)
    if path.exists() or isinstance(location, Path) or not is_model_id(text):
        return path, None
    return cached_snapshot(text, what), text


def cached_snapshot(repo_id: str, what: str = "model") -> Path:
    """The cached snapshot folder of `repo_id` at `refs/main`, found offline.

    `snapshot_download(local_files_only=True)` only reads the cache (refs, snapshots and, when the
    download recorded one, the file listing that tells a complete snapshot from an interrupted one).
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    cache = hub_cache_dir()
    try:
        folder = snapshot_download(repo_id, cache_dir=cache, local_files_only=True)
    except LocalEntryNotFoundError as exc:
        partial = "incomplete" in str(exc)
        state = "is only partly in" if partial else "is not a folder and not in"
        raise InputError(
            f"{what} '{repo_id}' {state} the local Hugging Face cache ({cache}); privaudit never downloads: "
            f"fetch it once with `hf download {repo_id}` (or set HF_HUB_CACHE / HF_HOME), or pass a folder"
        ) from None
    except HFValidationError:
        raise InputError(f"{what} '{repo_id}' is neither a folder nor a valid Hugging Face model id") from None
    return Path(folder)
