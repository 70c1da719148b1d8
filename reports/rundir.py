"""Reports from a run folder alone: `privaudit report RUN_DIR` and `privaudit gate RUN_DIR`.

The folder holds results.jsonl (every probe record, raw, user-only), manifest.json (provenance
and the attacks' parameters) and summary.json (masked by default). No unmasked summary is ever
stored by default, so a re-render does not read one: it re-derives each result the way the run
did, by calling the attack's `summarize()` on its records from results.jsonl with the
parameters recorded in the manifest, and then masks again (or not, with --show-pii). Only when
an attack cannot be re-summarized (its plugin is not installed, e.g. a defenses comparison that
is not a registered attack) does the re-render fall back to that result's entry in summary.json,
which is shown as stored (masked if it was written masked) with a note saying so. Such an entry
keeps the metric contract it was stored with (kind, direction, unit, cluster, pattern per metric),
so a re-rendered summary gates exactly like the original.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from privaudit.metrics import MetricSpec, MetricSpecs

import pandas as pd

from privaudit.errors import InputError, PrivauditError

from privaudit.reports.json import SUMMARY_FILE, build_summary, estimate_or_nan, read_summary


@dataclass
class RunData:
    """What a run folder yields for reporting: rebuilt results, manifest, notes, stored summary."""

    results: list[Any]
    manifest: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    stored_summary: dict[str, Any] | None = None


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "manifest.json"
    if not Path(run_dir).is_dir():
        raise InputError(f"{run_dir}: no such run folder")
    if not path.is_file():
        raise InputError(f"{path}: no such file (is {run_dir} a privaudit run folder?)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise InputError(f"{path}{':' + str(line) if line else ''}: invalid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def load_summary(run_dir: Path) -> dict[str, Any]:
    """summary.json of a run; rebuilt (masked) from results.jsonl + manifest.json when missing."""
    path = Path(run_dir) / SUMMARY_FILE
    if path.is_file():
        return read_summary(path)
    data = load_run(run_dir)
    return build_summary(data.results, data.manifest, notes=data.notes, root=Path(run_dir))


def _record_pairs(run_dir: Path) -> list[tuple[str, str]]:
    """The (attack, target) pairs of results.jsonl in first-seen order (one streaming pass, no record kept)."""
    from privaudit.engine.store import read_records

    pairs: dict[tuple[str, str], None] = {}
    if not (Path(run_dir) / "results.jsonl").is_file():
        return []
    for rec in read_records(Path(run_dir)):
        pairs.setdefault((str(rec.get("attack")), str(rec.get("target"))), None)
    return list(pairs)


def _pair_records(run_dir: Path, attack: str, target: str) -> Callable[[], Iterator[dict[str, Any]]]:
    """A function streaming one pair's records afresh (an attack may read them more than once)."""
    from privaudit.engine.store import read_records

    return lambda: read_records(Path(run_dir), attack=attack, target=target)


@dataclass(frozen=True)
class StoredSpecs(MetricSpecs):
    """The contract a summary.json entry was written with, looked up by exact metric name."""

    by_name: Mapping[str, MetricSpec] = field(default_factory=dict)

    def find(self, name: str) -> MetricSpec | None:
        return self.by_name.get(name)


def _declared_specs(attack: str) -> MetricSpecs | None:
    """What the attack declares today (for an entry stored without a contract, schema 1.x)."""
    from privaudit.gate import declared_specs

    return declared_specs(attack)


def stored_specs(attack: str, metrics: Mapping[str, Any]) -> StoredSpecs:
    """Each stored metric's contract; a metric stored without one (1.x) takes its attack's declaration."""
    by_name: dict[str, MetricSpec] = {}
    declared: MetricSpecs | None = None
    for name, est in metrics.items():
        est = est if isinstance(est, Mapping) else {}
        try:
            by_name[name] = MetricSpec(pattern=str(est.get("pattern") or name), kind=est["kind"],
                                       direction=est["direction"], unit=str(est.get("unit") or ""),
                                       cluster=est.get("cluster") if isinstance(est.get("cluster"), str) else None,
                                       headline=est.get("headline") is True)
        except (KeyError, ValueError):
            declared = declared if declared is not None else (_declared_specs(attack) or MetricSpecs())
            spec = declared.find(name)
            if spec is None:
                raise InputError(f"metric '{name}' of attack '{attack}' was stored without its kind and direction, "
                                 f"and the attack does not declare it") from None
            by_name[name] = spec
    return StoredSpecs(specs=tuple(dict.fromkeys(by_name.values())), by_name=by_name)


def result_from_summary(entry: Mapping[str, Any], records: pd.DataFrame | None = None) -> Any:
    """An AttackResult rebuilt from a summary.json entry (metrics, their contract, tables, charts as stored)."""
    from privaudit.attacks.base import AttackResult
    from privaudit.metrics import Estimate

    metrics = {}
    stored = entry.get("metrics") or {}
    for name, est in stored.items():
        est = est if isinstance(est, Mapping) else {"value": est, "low": est, "high": est, "n": 0}
        metrics[name] = Estimate.from_dict(estimate_or_nan(est))
    return AttackResult(
        attack=str(entry.get("attack")), target=str(entry.get("target")),
        records=records if records is not None else pd.DataFrame(),
        metrics=metrics, tables=dict(entry.get("tables") or {}), charts=dict(entry.get("charts") or {}),
        assumptions=list(entry.get("assumptions") or []), provenance=dict(entry.get("provenance") or {}),
        specs=stored_specs(str(entry.get("attack")), stored),
    )


def _resummarize(attack: str, target: str, records: Callable[[], Iterable[Mapping[str, Any]]],
                 params: Mapping[str, Any]) -> Any:
    from privaudit.attacks.base import get_attack

    cls = get_attack(attack)
    # `targets` is the audit's reserved key (which targets the attack ran on), not a parameter
    params = {k: v for k, v in params.items() if k != "targets"}
    instance = cls.from_config(params, f"manifest.json: config.attacks.{attack}")
    return instance.summarize_stored(target, records)


def load_run(run_dir: Path, *, show_pii: bool = False) -> RunData:
    """Rebuild every (attack, target) result of a run folder for reporting (see module docstring)."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    # a 1.x summary is read too: its records are re-summarized under today's contract
    stored = read_summary(run_dir / SUMMARY_FILE, accept_older=True) if (run_dir / SUMMARY_FILE).is_file() else None
    # Pairs only: each pair's records are streamed by its attack's `summarize_stored` (the PII attack
    # aggregates them out of core), never all held at once here (issue 18).
    with_records = set(pairs := _record_pairs(run_dir))
    stored_entries = {(str(e.get("attack")), str(e.get("target"))): e for e in (stored or {}).get("results", [])}
    order = list(stored_entries) + [p for p in pairs if p not in stored_entries]
    attack_params = ((manifest.get("config") or {}).get("attacks") or {})
    notes: list[str] = []
    results = []
    for attack, target in order:
        records = _pair_records(run_dir, attack, target)
        entry = stored_entries.get((attack, target))
        try:
            if (attack, target) not in with_records:
                raise InputError("no records in results.jsonl")
            result = _resummarize(attack, target, records, attack_params.get(attack) or {})
            if entry is not None:  # what only `run` knew (e.g. timings) survives the re-render
                for key, value in (entry.get("provenance") or {}).items():
                    result.provenance.setdefault(key, value)
                if not result.assumptions:
                    result.assumptions = list(entry.get("assumptions") or [])
        except (PrivauditError, ImportError) as exc:
            if entry is None:
                notes.append(f"{attack} on {target}: left out: cannot re-summarize its records ({exc}) "
                             f"and summary.json has no entry for it")
                continue
            result = result_from_summary(entry, pd.DataFrame(list(records())))
            how = "masked as stored" if show_pii and (stored or {}).get("pii_shown") is False else "as stored"
            notes.append(f"{attack} on {target}: shown from summary.json ({how}) because its records could not "
                         f"be re-summarized: {exc}")
        results.append(result)
    if not results:
        raise InputError(f"{run_dir}: no results to report (empty results.jsonl and no summary.json)")
    return RunData(results=results, manifest=manifest, notes=notes, stored_summary=stored)


def render_run(
    run_dir: Path,
    *,
    show_pii: bool = False,
    formats: Iterable[str] | None = None,
    thresholds: Mapping[str, Any] | None = None,
    out: Path | None = None,
) -> dict[str, Path]:
    """Re-render the reports of a run folder (into it, or `out`); thresholds default to the stored ones."""
    from privaudit.reports import write_reports

    data = load_run(run_dir, show_pii=show_pii)
    if thresholds is None:
        thresholds = ((data.stored_summary or {}).get("gate") or {}).get("thresholds") or None
    return write_reports(Path(out or run_dir), data.results, data.manifest, show_pii=show_pii,
                         thresholds=thresholds, formats=formats, notes=data.notes, root=Path(run_dir))
