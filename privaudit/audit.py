"""One audit run: many attacks x many targets into one resumable output folder.

The spec comes from a TOML file (CLI flags override it). The run folder holds results.jsonl
(append-only records), manifest.json (provenance), cache.sqlite (generation/score cache) and the
reports. Re-running the same spec on the same folder resumes: finished probes are not recomputed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from privaudit.attacks.base import Attack, AttackResult, RunContext, get_attack
from privaudit.config import config_hash, dataclass_from_mapping, load_toml
from privaudit.engine.cache import CachedTarget, SqliteCache
from privaudit.engine.store import RunStore
from privaudit.errors import InputError
from privaudit.progress import ProgressReporter
from privaudit.targets.base import TargetSpec, load_target, registered_schemes

SUMMARY_FILE = "summary.json"


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
    raw = load_toml(path)
    spec = dataclass_from_mapping(AuditSpec, raw, str(path))
    clean = {k: v for k, v in overrides.items() if v is not None}
    spec = replace(spec, **clean) if clean else spec
    # Validate every attack's parameters and every threshold before any model is loaded, so typos fail fast.
    attacks = build_attacks(spec, str(path))
    if spec.thresholds:
        from privaudit.gate import check_thresholds

        check_thresholds(spec.thresholds, {a.name: (type(a).metrics, only) for a, only in attacks},
                         where=f"{path}: thresholds")
    return spec


def build_attacks(spec: AuditSpec, source: str) -> list[tuple[Attack, list[str]]]:
    """Each attack with the targets it runs on.

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
        out.append((get_attack(name).from_config(params, where), only))
    return out


def check_target_specs(specs: list[str]) -> None:
    """Parse every target spec and check its scheme before a run folder is created or a model loaded,
    so a typo in the last target does not surface after hours spent on the first."""
    known = registered_schemes()
    for text in specs:
        parsed = TargetSpec.parse(text)
        if parsed.scheme not in known:
            raise InputError(f"unknown target scheme '{parsed.scheme}' in '{text}' (known: {', '.join(known)})")


def run_audit(spec: AuditSpec, progress: ProgressReporter | None = None, source: str = "audit") -> list[AttackResult]:
    """Run every attack on every target, resumably; write summary and reports; return the results."""
    progress = progress or ProgressReporter(quiet=True)
    attacks = build_attacks(spec, source)
    check_target_specs(spec.targets)
    results: list[AttackResult] = []
    with RunStore(spec.out) as store:
        manifest = store.read_manifest()
        identity_hash = config_hash(spec.identity())
        if manifest.get("config_hash") not in (None, identity_hash):
            raise InputError(
                f"{spec.out}: folder holds results of a different audit (config hash "
                f"{manifest['config_hash']} != {identity_hash}); use another output folder"
            )
        store.update_manifest(
            config=spec.identity(), config_hash=identity_hash, seed=spec.seed, status="running",
            started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        ctx = RunContext(store=store, seed=spec.seed, batch_size=spec.batch_size, progress=progress,
                         work_dir=spec.out / "work")
        cache = SqliteCache(spec.out / "cache.sqlite") if spec.cache else None
        fingerprints: dict[str, str] = {}
        try:
            for target_spec in spec.targets:
                planned = [attack for attack, only in attacks if target_spec in only]
                if not planned:
                    continue
                progress.log(f"loading target {target_spec}")
                target = load_target(target_spec)
                fingerprints[target.name] = target.fingerprint()
                store.update_manifest(targets=fingerprints)
                wrapped = CachedTarget(target, cache) if cache is not None else target
                try:
                    for attack in planned:
                        attack.check_target(wrapped)
                        progress.log(f"attack {attack.name} on {target.name}")
                        result = attack.run(wrapped, ctx)
                        # which spec produced it (a target's name may differ): compare keys variants by it
                        result.provenance.setdefault("target_spec", target_spec)
                        store.flush()
                        results.append(result)
                finally:
                    target.close()
        finally:
            if cache is not None:
                cache.close()
            store.flush()
        finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        manifest = store.update_manifest(status="complete", finished=finished)
    write_outputs(spec.out, results, manifest, spec)
    return results


def write_outputs(out: Path, results: list[AttackResult], manifest: Mapping[str, Any], spec: AuditSpec) -> dict[str, Path]:
    """Write summary.json and every report format the reports package provides."""
    from privaudit.reports import write_reports

    return write_reports(out, results, manifest, show_pii=spec.show_pii, thresholds=spec.thresholds)


def spec_to_dict(spec: AuditSpec) -> dict[str, Any]:
    d = asdict(spec)
    d["out"] = str(spec.out)
    return d
