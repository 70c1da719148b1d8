"""One audit run: many attacks x many targets into one resumable output folder.

The spec comes from a TOML file (CLI flags override it). The run folder holds results.jsonl
(append-only records), manifest.json (provenance), cache.sqlite (generation/score cache) and the
reports. Re-running the same spec on the same folder resumes: finished probes are not recomputed,
provided the models and data files are the ones the stored results came from (fingerprints and
hashes in the manifest, see privaudit.engine.identity); `fresh=True` (`--fresh`) starts over.
"""

from __future__ import annotations

import sys
import time
import types
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from privaudit.attacks.base import Attack, AttackResult, RunContext, get_attack
from privaudit.config import config_hash, dataclass_from_mapping, load_toml
from privaudit.engine.batching import run_batch_size
from privaudit.engine.cache import CachedTarget, SqliteCache
from privaudit.engine.identity import FRESH_HINT, RunIdentityError, TargetLedger, check_resume
from privaudit.engine.store import RunStore
from privaudit.errors import InputError, error_line
from privaudit.progress import ProgressReporter
from privaudit.targets.base import Target, TargetSpec, load_target, registered_schemes

SUMMARY_FILE = "summary.json"
# The files write_reports writes (privaudit.reports' formats): --fresh removes them with the results.
REPORT_FILES = (SUMMARY_FILE, "report.html", "junit.xml", "summary.md")


@dataclass(frozen=True)
class AuditSpec:
    """What to run: targets, attacks with their parameters, where to write, and the gate thresholds.

    `thresholds` maps a metric path to a condition, e.g. {"pii.exact_match_rate" = "<= 0.01"};
    privaudit.gate interprets them.
    """

    targets: list[str]
    attacks: dict[str, dict[str, Any]]
    out: Path = Path("privaudit-runs/audit")
    seed: int = 0
    batch_size: int = 16
    cache: bool = True
    show_pii: bool = False
    thresholds: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.targets:
            raise InputError("targets: at least one target is required")
        if not self.attacks:
            raise InputError("attacks: at least one attack is required")
        if self.batch_size < 1:
            raise InputError(f"batch_size: must be >= 1, got {self.batch_size}")

    def identity(self) -> dict[str, Any]:
        """The parts that decide the results; a resumed run must match them (out/show_pii do not)."""
        return {"targets": self.targets, "attacks": self.attacks, "seed": self.seed}


def load_audit_spec(path: Path, **overrides: Any) -> AuditSpec:
    """Read and validate an audit TOML; keyword overrides (from CLI flags) win when not None."""
    return audit_spec_from_mapping(load_toml(path), str(path), **overrides)


def audit_spec_from_mapping(raw: Mapping[str, Any], source: str = "audit spec", **overrides: Any) -> AuditSpec:
    """Validate an audit spec given as data (a parsed TOML, or a dict in a notebook); overrides win
    when not None. `source` names it in messages (a file path, or "audit spec")."""
    spec = dataclass_from_mapping(AuditSpec, raw, source)
    clean = {k: v for k, v in overrides.items() if v is not None}
    spec = replace(spec, **clean) if clean else spec
    validate_audit_spec(spec, source)
    return spec


def validate_audit_spec(spec: AuditSpec, source: str) -> None:
    """Every attack's parameters and every threshold, checked before any model is loaded (typos fail fast)."""
    attacks = build_attacks(spec, source)
    if spec.thresholds:
        from privaudit.gate import check_thresholds

        check_thresholds(spec.thresholds, {a.name: (type(a).metrics, only) for a, only in attacks},
                         where=f"{source}: thresholds")


def build_attacks(spec: AuditSpec, source: str) -> list[tuple[Attack, list[str]]]:
    """Each attack with the targets it runs on; every nested target spec's scheme is checked too.

    An attack table may carry the reserved key `targets` (a list of spec strings, each one of the
    audit's targets) to run on those only, e.g. extraction on the fine-tuned checkpoints and bias
    probes on the chat model; without it the attack runs on every target.
    """
    out: list[tuple[Attack, list[str]]] = []
    for name, params in spec.attacks.items():
        where = f"{source}: attacks.{name}"
        params = dict(params)
        only = params.pop("targets", None)
        if only is None:
            only = list(spec.targets)
        elif not isinstance(only, list) or not all(isinstance(t, str) for t in only):
            raise InputError(f"{where}.targets: expected a list of target spec strings")
        unknown = [t for t in only if t not in spec.targets]
        if unknown:
            raise InputError(f"{where}.targets: '{unknown[0]}' is not one of the audit's targets")
        attack = get_attack(name).from_config(params, where)
        for param, nested in attack.nested_targets().items():
            check_target_specs([nested], where=f"{where}.{param}")
        out.append((attack, only))
    return out


def check_target_specs(specs: list[str], where: str | None = None) -> None:
    """Parse every target spec and check its scheme before a run folder is created or a model loaded,
    so a typo in the last target (or in a nested `baseline_target`) does not surface after hours
    spent on the first. `where` prefixes the message (the config key of a nested spec)."""
    known = registered_schemes()
    prefix = f"{where}: " if where else ""
    for text in specs:
        try:
            parsed = TargetSpec.parse(text)
        except InputError as exc:
            if not where:
                raise
            raise InputError(f"{prefix}{exc}") from None
        if parsed.scheme not in known:
            raise InputError(f"{prefix}unknown target scheme '{parsed.scheme}' in '{text}' (known: {', '.join(known)})")


Outputs = Callable[[list[AttackResult], Mapping[str, Any]], Any]


def run_audit(spec: AuditSpec, progress: ProgressReporter | None = None, source: str = "audit", *,
              fresh: bool = False, outputs: Outputs | None = None,
              preloaded: Mapping[str, Target] | None = None) -> list[AttackResult]:
    """Run every attack on every target, resumably; write summary and reports; return the results.

    A resumed folder must hold results of the same audit, the same models and the same data files
    (privaudit.engine.identity); otherwise it is refused in one line before any attack runs, and
    `fresh=True` discards its results first. The manifest's `status` says how the run ended:
    `running` while it runs, `failed` (with `error`, the one-line message) or `interrupted`
    (Ctrl-C), and `complete` only after `outputs(results, manifest)` (default: every report
    format) has written the reports.

    `preloaded` maps some of `spec.targets` to targets already in memory (privaudit.api's model
    objects, `live:NAME`): they are used as given, never closed, and recorded in the manifest under
    their `name` (a training step's model is another model: `live:NAME@step=N`).
    """
    progress = progress or ProgressReporter(quiet=True)
    preloaded = dict(preloaded or {})
    attacks = build_attacks(spec, source)
    check_target_specs([t for t in spec.targets if t not in preloaded])
    nested = [s for attack, _ in attacks for s in attack.nested_targets().values()]
    data_paths = [path for attack, _ in attacks for path in attack.data_files()]
    write = outputs or (lambda res, final: write_outputs(spec.out, res, final, spec))
    with RunStore(spec.out) as store:
        if fresh:
            store.discard(REPORT_FILES)
        manifest = store.read_manifest()
        identity_hash = config_hash(spec.identity())
        if manifest.get("config_hash") not in (None, identity_hash):
            raise RunIdentityError(
                f"{spec.out}: folder holds results of a different audit (config hash "
                f"{manifest['config_hash']} != {identity_hash}); {FRESH_HINT}"
            )
        try:
            identity = check_resume(spec.out, manifest, [*(t for t in spec.targets if t not in preloaded), *nested],
                                    data_paths, has_results=store.has_records())
        except RunIdentityError:
            raise  # refused: the folder still holds, unchanged, the results of the run it records
        except BaseException as exc:
            _mark_stopped(store, exc)
            raise
        try:
            store.update_manifest(
                config=spec.identity(), config_hash=identity_hash, seed=spec.seed, status="running",
                started=_now(), remove=("error", "finished", "stopped"), **identity.manifest_fields(),
            )
            with run_batch_size(spec.batch_size):  # local models' forward passes follow --batch-size too
                results = _run_attacks(spec, attacks, store, progress, TargetLedger(spec.out, store, dict(identity.targets)),
                                       preloaded)
            finished = _now()
            final = {**store.read_manifest(), "status": "complete", "finished": finished}
            try:
                write(results, final)
            except BaseException:
                _remove_reports(spec.out)  # half a set of reports must not look like a finished run
                raise
            store.update_manifest(status="complete", finished=finished)
        except BaseException as exc:
            _mark_stopped(store, exc)
            raise
    return results


def _run_attacks(spec: AuditSpec, attacks: list[tuple[Attack, list[str]]], store: RunStore,
                 progress: ProgressReporter, ledger: TargetLedger,
                 preloaded: Mapping[str, Target] | None = None) -> list[AttackResult]:
    """Target by target (each loaded once, checked against the folder's record), every planned attack."""
    cache = SqliteCache(spec.out / "cache.sqlite") if spec.cache else None
    ctx = RunContext(store=store, seed=spec.seed, batch_size=spec.batch_size, progress=progress,
                     work_dir=spec.out / "work", cache=cache, ledger=ledger)
    results: list[AttackResult] = []
    fingerprints: dict[str, str] = {}
    try:
        for target_spec in spec.targets:
            planned = [attack for attack, only in attacks if target_spec in only]
            if not planned:
                continue
            given = (preloaded or {}).get(target_spec)
            if given is None:
                progress.log(f"loading target {target_spec}")
            target = given if given is not None else load_target(target_spec)
            try:
                ledger.admit(target.name if given is not None else target_spec, target)
                fingerprints[target.name] = target.fingerprint()
                store.update_manifest(targets=fingerprints)
                wrapped = CachedTarget(target, cache) if cache is not None else target
                for attack in planned:
                    attack.check_target(wrapped)
                    progress.log(f"attack {attack.name} on {target.name}")
                    result = attack.run(wrapped, ctx)
                    # which spec produced it (a target's name may differ): compare keys variants by it
                    result.provenance.setdefault("target_spec", target_spec)
                    store.flush()
                    results.append(result)
            finally:
                _record_client_stats(store, target)
                if given is None:
                    target.close()
    finally:
        if cache is not None:
            cache.close()
        store.flush()
    return results


def _record_client_stats(store: RunStore, target: Any) -> None:
    """Manifest `clients`: how a remote target's client behaved (the concurrency an `openai:` client
    settled on, reached and backed off from), so a run records the load it put on the endpoint."""
    stats = getattr(target, "client_stats", None)
    if not callable(stats):
        return
    clients = dict(store.read_manifest().get("clients") or {})
    clients[target.name] = stats()
    store.update_manifest(clients=clients)


def _remove_reports(out: Path) -> None:
    for name in REPORT_FILES:
        path = out / name
        if path.is_file() or path.is_symlink():
            path.unlink()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _mark_stopped(store: RunStore, exc: BaseException) -> None:
    """Record how the run stopped: `interrupted` on Ctrl-C, else `failed` with the one-line error."""
    try:
        if isinstance(exc, KeyboardInterrupt):
            store.update_manifest(status="interrupted", stopped=_now())
        else:
            store.update_manifest(status="failed", error=error_line(exc), stopped=_now())
    except Exception:  # noqa: BLE001 - e.g. a full disk: the error that stopped the run is the one to show
        pass


def write_outputs(out: Path, results: list[AttackResult], manifest: Mapping[str, Any], spec: AuditSpec) -> dict[str, Path]:
    """Write summary.json and every report format the reports package provides."""
    from privaudit.reports import write_reports

    return write_reports(out, results, manifest, show_pii=spec.show_pii, thresholds=spec.thresholds)


def spec_to_dict(spec: AuditSpec) -> dict[str, Any]:
    d = asdict(spec)
    d["out"] = str(spec.out)
    return d


class _AuditModule(types.ModuleType):
    """This module, callable as `privaudit.audit(...)` (privaudit.api.audit).

    A package attribute and a submodule of one name cannot differ: importing `privaudit.audit`
    (which the runner's own callers do) sets the attribute to this module. So the public function
    and the module are one object: calling it runs the Python API, its attributes are the runner's.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from privaudit.api import audit

        return audit(*args, **kwargs)


sys.modules[__name__].__class__ = _AuditModule
