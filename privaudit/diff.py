"""`privaudit diff RUN_A RUN_B`: did the new model version leak more? Paired changes between two runs.

Two run folders of the same audit (same attacks, parameters, seed and data files) on two model
versions ran the same probes. For every metric both runs report, the change B - A is estimated
*paired*: records are matched by their probe key (the store's `item`, or the unit a metric counts,
e.g. a (subject, PII field) pair), and `privaudit.metrics.paired_difference` gives a cluster-robust
t interval of the per-unit differences clustered at the metric's unit (the data subject), so the
shared variation of the same prompts cancels (Cameron & Miller 2015; no discordant unit: +- the
Wilson bound of 0 in G). A metric with no per-record decomposition (an AUC, a maximum over
personas) gets the conservative interval [low_B - high_A, high_B - low_A] (method
`interval_difference`); a `point`/`count` value its plain difference.

Thresholds on changes make it a gate (a `[thresholds]` table in diff.toml, validated when it loads,
before any run is read): `"pii.exact_match_rate" = {max_increase = 0.0}` fails when the increase
is significant, i.e. the change's lower 95% bound exceeds 0 (`bound = "value"` or `"upper"` to be
stricter); `max_decrease` mirrors it. Exit codes as the gate: 0 pass, 1 a check failed, 2 bad
input (malformed thresholds, runs of different audits), 3 a run folder did not finish or a checked
change could not be measured.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from privaudit.errors import IncompleteRunError, InputError
from privaudit.gate import STATUS_OF_EXIT, exit_code_of
from privaudit.metrics import VALUE_KINDS, Estimate, paired_difference

CHANGE_KEYS = frozenset({"max_increase", "max_decrease", "bound"})
CHANGE_BOUNDS = ("auto", "lower", "value", "upper")


@dataclass(frozen=True)
class PairedSource:
    """Where one metric family's per-unit values are in an attack's records.

    Records of `kind` (None: any) carry the outcome in column `value`; one unit is a distinct
    `unit` tuple (several records of one unit, e.g. the templates of one (subject, field) pair,
    count as a hit when any hits: the unit's maximum); `cluster` is the column of the independent
    unit; a `FAMILY.MEMBER` name keeps the records whose `member` column equals MEMBER.
    """

    kind: str | None
    value: str
    unit: tuple[str, ...]
    cluster: str
    member: str | None = None
    bounds: tuple[float, float] = (-1.0, 1.0)


_SUBJECT_FIELD = ("subject_id", "pii_type")
# The builtin attacks' metrics that are means of per-record outcomes (attacks/pii_summary.py).
PAIRED_SOURCES: dict[str, dict[str, PairedSource]] = {
    "pii": {
        "exact_match_rate": PairedSource("extract", "exact", _SUBJECT_FIELD, "subject_id", "pii_type"),
        "partial_match_rate": PairedSource("extract", "partial", _SUBJECT_FIELD, "subject_id", "pii_type"),
        "probe_exact_match_rate": PairedSource("extract", "exact", ("item",), "subject_id", "pii_type"),
        "probe_partial_match_rate": PairedSource("extract", "partial", ("item",), "subject_id", "pii_type"),
        "likelihood_top1_rate": PairedSource("likelihood", "top1", ("item",), "subject_id", "pii_type"),
        "likelihood_top5_rate": PairedSource("likelihood", "top5", ("item",), "subject_id", "pii_type"),
        "mean_exposure_bits": PairedSource("likelihood", "exposure_bits", ("item",), "subject_id",
                                           bounds=(-math.inf, math.inf)),
    },
}


@dataclass(frozen=True)
class ChangeCondition:
    key: str  # as written in diff.toml
    attack: str
    metric: str
    op: str  # max_increase | max_decrease
    threshold: float
    bound: str  # lower | value | upper: which number of the change's interval is compared
    where: str = "thresholds"  # its key path for messages (`diff.toml: thresholds."pii.exact_match_rate"`)


@dataclass(frozen=True)
class MetricChange:
    """One shared metric of one paired (attack, target) result: A, B and the change B - A."""

    attack: str
    metric: str
    target_a: str
    target_b: str
    a: float | None
    b: float | None
    change: Estimate
    paired: bool
    headline: bool
    kind: str
    direction: str
    status: str | None = None  # pass | fail | unmeasured when a threshold checks it
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["change"] = {k: _json_number(v) for k, v in self.change.to_dict().items()}
        d["a"], d["b"] = _json_number(self.a), _json_number(self.b)
        return d


def _json_number(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


# -- thresholds --------------------------------------------------------------------------------
def load_change_thresholds(path: Path) -> list[ChangeCondition]:
    """The `[thresholds]` table of diff.toml, every key and condition validated (one-line errors)."""
    from privaudit.config import load_toml

    raw = load_toml(Path(path))
    table = raw.get("thresholds")
    if not isinstance(table, Mapping):
        raise InputError(f"{path}: expected a [thresholds] table of METRIC = {{max_increase = N}}")
    unknown = sorted(set(raw) - {"thresholds"})
    if unknown:
        raise InputError(f"{path}: {unknown[0]}: unknown key (known: thresholds)")
    return parse_change_thresholds(table, where=f"{path}: thresholds")


def parse_change_thresholds(table: Mapping[str, Any], where: str = "thresholds") -> list[ChangeCondition]:
    """`{"pii.exact_match_rate": {"max_increase": 0.0}}` -> conditions; the metric must be declared."""
    from privaudit.gate import declared_specs, parse_metric_path

    out: list[ChangeCondition] = []
    for key, value in _flatten(table, where).items():
        loc = f"{where}.{json.dumps(key) if '.' in key else key}"
        attack, metric, target = parse_metric_path(key, loc)
        if target is not None:
            raise InputError(f"{loc}: a change threshold applies to every paired target (drop '@{target}')")
        if not isinstance(value, Mapping):
            raise InputError(f"{loc}: expected a table like {{max_increase = 0.0}}, got {value!r}")
        bad = sorted(set(value) - CHANGE_KEYS)
        if bad:
            raise InputError(f"{loc}.{bad[0]}: unknown key (known: bound, max_decrease, max_increase)")
        bound = value.get("bound", "auto")
        if bound not in CHANGE_BOUNDS:
            raise InputError(f"{loc}.bound: must be one of {', '.join(CHANGE_BOUNDS)}, got {bound!r}")
        specs = declared_specs(attack)
        if specs is None:
            raise InputError(f"{loc}: attack '{attack}' is not installed")
        if specs.find(metric) is None:
            raise InputError(f"{loc}: attack '{attack}' has no metric '{metric}' (its metrics: {', '.join(specs.patterns())})")
        ops = [op for op in ("max_increase", "max_decrease") if op in value]
        if not ops:
            raise InputError(f"{loc}: a change threshold needs max_increase or max_decrease")
        for op in ops:
            number = value[op]
            if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number) or number < 0:
                raise InputError(f"{loc}.{op}: expected a number >= 0, got {number!r}")
            out.append(ChangeCondition(key, attack, metric, op, float(number), "lower" if bound == "auto" else bound,
                                       where=loc))
    return out


def _flatten(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Dotted TOML keys (`pii.exact_match_rate = {...}` unquoted) flattened like the gate's thresholds
    (whose flattener stops at tables holding max/min/bound; a change table holds max_increase)."""
    if not isinstance(table, Mapping):
        raise InputError(f"{where}: expected a table of METRIC = {{max_increase = N}}, got {type(table).__name__}")
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        # a table of tables is a dotted key (`pii = {exact_match_rate = {...}}`); a table of numbers a condition
        if isinstance(value, Mapping) and value and any(isinstance(v, Mapping) for v in value.values()):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = value

    for k, v in table.items():
        walk(str(k), v)
    return flat


# -- the runs ----------------------------------------------------------------------------------
def _complete_summary(run_dir: Path) -> dict[str, Any]:
    from privaudit.reports.rundir import load_summary, read_manifest

    status = read_manifest(Path(run_dir)).get("status")
    if status != "complete":
        raise IncompleteRunError(f"{run_dir}: the run is '{status or 'unknown'}'; its results are incomplete: "
                                 "rerun it (it resumes) before diffing")
    return load_summary(Path(run_dir))


def check_same_audit(manifest_a: Mapping[str, Any], manifest_b: Mapping[str, Any], a: Path, b: Path) -> None:
    """Same attacks with the same parameters (their `targets` aside), seed and data files: the same probes."""
    def strip(attacks: Any) -> dict[str, Any]:
        return {k: {p: v for p, v in dict(t).items() if p != "targets"} for k, t in dict(attacks or {}).items()}

    ca, cb = manifest_a.get("config") or {}, manifest_b.get("config") or {}
    checks = [("seed", ca.get("seed"), cb.get("seed")), ("data files", manifest_a.get("data_files"),
              manifest_b.get("data_files"))]
    pa, pb = strip(ca.get("attacks")), strip(cb.get("attacks"))
    for attack in sorted(set(pa) | set(pb)):
        checks.append((f"attacks.{attack}", pa.get(attack), pb.get(attack)))
    for what, x, y in checks:
        if x != y:
            raise InputError(f"{a} and {b} are not runs of the same audit: {what} differ(s), so the probes are not "
                             "paired (diff compares two model versions on the same probes and seed)")


def pair_results(results_a: Sequence[Mapping[str, Any]], results_b: Sequence[Mapping[str, Any]]
                 ) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """(A, B) result pairs: the same attack on the same target name, else the attack's one target on
    each side (the model version that changed is named differently in the two runs)."""
    pairs = []
    for attack in dict.fromkeys(str(r.get("attack")) for r in results_a):
        of_a = [r for r in results_a if r.get("attack") == attack]
        of_b = [r for r in results_b if r.get("attack") == attack]
        names_b = {r.get("target"): r for r in of_b}
        same = [(r, names_b[r.get("target")]) for r in of_a if r.get("target") in names_b]
        rest_a = [r for r in of_a if r.get("target") not in names_b]
        rest_b = [r for r in of_b if r.get("target") not in {x.get("target") for x in of_a}]
        if len(rest_a) == 1 and len(rest_b) == 1:
            same.append((rest_a[0], rest_b[0]))
        pairs += same
    return pairs


def _records(run_dir: Path, attack: str, target: str) -> Any:
    import pandas as pd

    from privaudit.engine.store import read_records

    return pd.DataFrame(list(read_records(Path(run_dir), attack=attack, target=target)))


def _unit_values(records: Any, source: PairedSource, member: str | None) -> dict[tuple, tuple[float, Any]]:
    """Unit key -> (its value, its cluster): the unit's maximum (any hit) over its records."""
    needed = {source.value, source.cluster, *source.unit} | ({source.member} if member and source.member else set())
    if records is None or records.empty or not needed <= set(records.columns):
        return {}
    df = records
    if source.kind is not None and "kind" in df.columns:
        df = df[df["kind"] == source.kind]
    if member is not None:
        if source.member is None:
            return {}
        df = df[df[source.member].astype(str) == member]
    out: dict[tuple, tuple[float, Any]] = {}
    for key, group in df.groupby(list(source.unit), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        values = [float(x) for x in group[source.value] if x is not None and not (isinstance(x, float) and math.isnan(x))]
        if values:
            out[key] = (max(values), group[source.cluster].iloc[0])
    return out


def metric_change(attack: str, metric: str, est_a: Mapping[str, Any], est_b: Mapping[str, Any],
                  records_a: Any = None, records_b: Any = None) -> tuple[Estimate, bool]:
    """The change B - A of one metric and whether it was paired (see the module docstring)."""
    family, _, member = metric.partition(".")
    source = PAIRED_SOURCES.get(attack, {}).get(family)
    if source is not None and records_a is not None and records_b is not None:
        ua, ub = _unit_values(records_a, source, member or None), _unit_values(records_b, source, member or None)
        shared = sorted(set(ua) & set(ub), key=str)
        if shared:
            est = paired_difference([ub[k][0] for k in shared], [ua[k][0] for k in shared],
                                    [ua[k][1] for k in shared], bounds=source.bounds)
            return est, True
    va, vb = _num(est_a.get("value")), _num(est_b.get("value"))
    if va is None or vb is None:
        return Estimate(float("nan"), float("nan"), float("nan"), 0, "unmeasured"), False
    n = min(int(est_a.get("n") or 0), int(est_b.get("n") or 0))
    if str(est_b.get("kind")) in VALUE_KINDS:
        return Estimate(vb - va, vb - va, vb - va, n, "point"), False
    la, ha, lb, hb = (_num(est_a.get("low")), _num(est_a.get("high")), _num(est_b.get("low")), _num(est_b.get("high")))
    if None in (la, ha, lb, hb):
        return Estimate(vb - va, float("nan"), float("nan"), n, "interval_difference"), False
    return Estimate(vb - va, lb - ha, hb - la, n, "interval_difference"), False  # type: ignore[operator]


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def judge(change: Estimate, kind: str, cond: ChangeCondition) -> tuple[str, str]:
    """(status, one-line message) of one condition on one change."""
    sampled = kind not in VALUE_KINDS
    numbers = {"lower": change.low, "value": change.value, "upper": change.high}
    if cond.op == "max_decrease":  # a decrease is -change; its lower bound is -upper
        numbers = {"lower": -change.high, "value": -change.value, "upper": -change.low}
    compared = _num(numbers[cond.bound])
    what = "increase" if cond.op == "max_increase" else "decrease"
    if compared is None or (sampled and change.n == 0):
        return "unmeasured", f"the change could not be measured (n={change.n})"
    ok = compared <= cond.threshold
    text = (f"{what} ({cond.bound} bound) {compared:+.4g} {'<=' if ok else 'exceeds'} {cond.threshold:g} "
            f"(change {change.value:+.4g} [{change.low:+.4g}, {change.high:+.4g}] n={change.n}, {change.method})")
    return ("pass" if ok else "fail"), text


@dataclass(frozen=True)
class DiffOutcome:
    run_a: Path
    run_b: Path
    changes: list[MetricChange]

    @property
    def checked(self) -> list[MetricChange]:
        return [c for c in self.changes if c.status is not None]

    @property
    def exit_code(self) -> int:
        return exit_code_of(c.status for c in self.changes)

    @property
    def status(self) -> str:
        return STATUS_OF_EXIT[self.exit_code]

    def to_dict(self) -> dict[str, Any]:
        return {"run_a": str(self.run_a), "run_b": str(self.run_b), "status": self.status, "exit_code": self.exit_code,
                "changes": [c.to_dict() for c in self.changes]}


def diff_runs(run_a: Path, run_b: Path, conditions: Sequence[ChangeCondition] = ()) -> DiffOutcome:
    """Every shared metric's paired change, each condition judged; raises for incomplete or unrelated runs."""
    from privaudit.reports.rundir import read_manifest

    summary_a, summary_b = _complete_summary(run_a), _complete_summary(run_b)
    check_same_audit(read_manifest(Path(run_a)), read_manifest(Path(run_b)), run_a, run_b)
    changes: list[MetricChange] = []
    for res_a, res_b in pair_results(summary_a.get("results") or [], summary_b.get("results") or []):
        attack, ta, tb = str(res_a["attack"]), str(res_a["target"]), str(res_b["target"])
        ma, mb = res_a.get("metrics") or {}, res_b.get("metrics") or {}
        recs = (_records(run_a, attack, ta), _records(run_b, attack, tb)) if attack in PAIRED_SOURCES else (None, None)
        for metric in [m for m in ma if m in mb]:
            est_a, est_b = ma[metric], mb[metric]
            change, paired = metric_change(attack, metric, est_a, est_b, *recs)
            changes.append(MetricChange(attack, metric, ta, tb, _num(est_a.get("value")), _num(est_b.get("value")),
                                        change, paired, bool(est_b.get("headline")), str(est_b.get("kind")),
                                        str(est_b.get("direction"))))
    return DiffOutcome(Path(run_a), Path(run_b), apply_conditions(changes, conditions))


def apply_conditions(changes: list[MetricChange], conditions: Sequence[ChangeCondition]) -> list[MetricChange]:
    """Judge each condition on every paired target's change; a threshold on a metric no pair shares is exit 2."""
    import dataclasses

    out = list(changes)
    for cond in conditions:
        hits = [i for i, c in enumerate(out) if c.attack == cond.attack and c.metric == cond.metric]
        if not hits:
            shared = sorted({f"{c.attack}.{c.metric}" for c in out if c.attack == cond.attack})
            raise InputError(f"{cond.where}: both runs do not report {cond.attack}.{cond.metric} "
                             f"(shared: {', '.join(shared[:12]) or 'none'})")
        for i in hits:
            status, message = judge(out[i].change, out[i].kind, cond)
            worse = _worse(out[i].status, status)
            out[i] = dataclasses.replace(out[i], status=worse, message=message if worse == status else out[i].message)
    return out


def _worse(old: str | None, new: str) -> str:
    order = [None, "pass", "unmeasured", "fail"]
    return new if order.index(new) >= order.index(old) else str(old)


def junit_summary(outcome: DiffOutcome, conditions: Sequence[ChangeCondition]) -> dict[str, Any]:
    """The outcome in the shape reports/junit.py renders: one test case per (condition, target pair)."""
    checks = []
    for cond in conditions:
        for c in outcome.changes:
            if c.attack != cond.attack or c.metric != cond.metric:
                continue
            status, message = judge(c.change, c.kind, cond)
            checks.append({"attack": c.attack, "metric": c.metric, "target": f"{c.target_a} -> {c.target_b}",
                           "op": cond.op, "threshold": cond.threshold, "status": status, "message": message,
                           "value": _json_number(c.change.value), "low": _json_number(c.change.low),
                           "high": _json_number(c.change.high), "n": c.change.n, "direction": c.direction,
                           "compared_as": f"{cond.bound} bound of the change", "compared": None})
    return {"schema_version": "diff", "pii_shown": False, "manifest": {},
            "gate": {"status": outcome.status, "checks": checks}}
