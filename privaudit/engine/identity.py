"""A run folder's identity: what its stored results were computed from, checked on every resume.

The config hash covers the audit's text (targets, attack parameters, seed) but cannot see that the
files behind it changed: weights replaced in place under the same `hf:DIR`, an endpoint now serving
another model, an edited subjects file. Resuming then mixes, or silently reuses, another model's
results (issue 14, item 3). So manifest.json also records the fingerprint of every target the
results came from (audited and nested: baselines, references, judges) and the sha256 of every data
file the attacks read. A resume whose fingerprint or hash differs stops with one line naming what
changed, before any attack runs and without touching the folder; `--fresh` discards the results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from privaudit.engine.hashing import file_sha256
from privaudit.engine.store import RunStore
from privaudit.errors import InputError
from privaudit.targets.base import Target, load_target, spec_fingerprint

MANIFEST_TARGETS = "target_fingerprints"  # target spec -> fingerprint
MANIFEST_DATA = "data_files"  # data file path (as the attack parameters name it) -> sha256
FRESH_HINT = "rerun with --fresh to discard them, or use another --out"


class RunIdentityError(InputError):
    """The folder's results come from another model, other data or another audit; nothing was changed."""


def _short(digest: str) -> str:
    text = digest.split(":")[-1]
    return f"{text[:12]}.." if len(text) > 12 else text


def changed_message(root: Path, changes: Sequence[tuple[str, str]]) -> str:
    """`ROOT: WHAT changed since this folder's results (DETAIL); rerun with --fresh ...` (one line)."""
    if len(changes) == 1:
        what, detail = changes[0]
        body = f"{what} changed since this folder's results ({detail})"
    else:
        body = "; ".join(f"{what} changed ({detail})" for what, detail in changes) + " since this folder's results"
    return f"{root}: {body}; {FRESH_HINT}"


def target_change(spec: str, old: str, new: str) -> tuple[str, str]:
    return f"target {spec}", f"fingerprint {_short(old)} -> {_short(new)}"


def data_file_hashes(paths: Iterable[str | Path]) -> dict[str, str]:
    """sha256 of each existing data file, keyed by the path as given.

    A missing or unreadable file is left out: the attack's own loader reports it in its own words.
    """
    out: dict[str, str] = {}
    for p in paths:
        path = Path(p).expanduser()
        try:
            if path.is_file():
                out[str(p)] = file_sha256(path)
        except OSError:
            continue
    return out


def current_fingerprint(spec: str) -> str:
    """The fingerprint of the model behind `spec` now: from its files where the backend can, else by loading it."""
    fingerprint = spec_fingerprint(spec)
    if fingerprint is not None:
        return fingerprint
    target = load_target(spec)
    try:
        return target.fingerprint()
    finally:
        target.close()


@dataclass(frozen=True)
class RunIdentity:
    """The fingerprints and data hashes a run folder's results come from (as stored in manifest.json)."""

    targets: dict[str, str] = field(default_factory=dict)
    data_files: dict[str, str] = field(default_factory=dict)

    def manifest_fields(self) -> dict[str, Any]:
        return {MANIFEST_TARGETS: dict(self.targets), MANIFEST_DATA: dict(self.data_files)}


def check_resume(root: Path, manifest: Mapping[str, Any], specs: Sequence[str], data_paths: Iterable[str | Path],
                 has_results: bool) -> RunIdentity:
    """Compare what the folder recorded with the files and models now; return the identity to record.

    Every target recorded for this folder is fingerprinted again (hf: by hashing files, no model
    load) and every data file hashed; any difference is a RunIdentityError naming each change.
    Targets not recorded yet have no results here: they are recorded when they load.
    """
    recorded_targets = manifest.get(MANIFEST_TARGETS)
    recorded_data = manifest.get(MANIFEST_DATA)
    if has_results and not (isinstance(recorded_targets, dict) and isinstance(recorded_data, dict)):
        raise RunIdentityError(
            f"{root}: this folder's results carry no target fingerprints or data hashes (written by an older "
            f"privaudit), so they cannot be checked against the current model and data; {FRESH_HINT}"
        )
    recorded_targets = dict(recorded_targets or {})
    recorded_data = dict(recorded_data or {})
    changes: list[tuple[str, str]] = []
    for spec in dict.fromkeys(specs):
        old = recorded_targets.get(spec)
        if old is None:
            continue
        new = current_fingerprint(spec)
        if new != old:
            changes.append(target_change(spec, old, new))
    data = data_file_hashes(data_paths)
    for path, digest in data.items():
        old = recorded_data.get(path)
        if old is not None and old != digest:
            changes.append((f"data file {path}", f"sha256 {_short(old)} -> {_short(digest)}"))
    if changes:
        raise RunIdentityError(changed_message(root, changes))
    return RunIdentity(targets=recorded_targets, data_files={**recorded_data, **data})


@dataclass
class TargetLedger:
    """The one place a loaded target's fingerprint meets the folder's record.

    `admit` runs right after a target (audited or nested) loads and before its first probe: a
    fingerprint that differs from the record stops the run; a new one is recorded in the manifest
    at once, so every stored record has the fingerprint of the model that produced it on file.
    """

    root: Path
    store: RunStore
    fingerprints: dict[str, str] = field(default_factory=dict)

    def admit(self, spec: str, target: Target) -> None:
        fingerprint = target.fingerprint()
        known = self.fingerprints.get(spec)
        if known == fingerprint:
            return
        if known is not None:
            raise RunIdentityError(changed_message(self.root, [target_change(spec, known, fingerprint)]))
        self.fingerprints[spec] = fingerprint
        self.store.update_manifest(**{MANIFEST_TARGETS: dict(self.fingerprints)})
