"""The CI privacy gate: thresholds on a run's metrics -> checks -> an exit code.

Thresholds come from the `[thresholds]` table of the audit TOML and name metrics by path
`ATTACK.METRIC[@TARGET]` (e.g. `pii.exact_match_rate`). A condition is a string (`"<= 0.01"`,
`">= 0.8"`) or a table (`{max = 0.01, bound = "upper"}`, `{min = 0.8}`). By default the gate is
conservative: a `<=`/`<` check compares the interval's UPPER bound and a `>=`/`>` check its LOWER
bound, so "0 hits in 20 probes" (upper bound ~0.16) does not pass `<= 0.01`; `bound = "value"`
compares the point estimate instead. Without `@TARGET` every target the attack ran on is checked.

The gate reads each metric's declared direction (privaudit.metrics.MetricSpec). A `two_sided`
metric (a gap between personas, a difference between models) is judged on its size: `<= t`
compares the largest absolute bound max(|low|, |high|), so a gap of -0.40 [-0.55, -0.25] fails
`<= 0.10` exactly as +0.40 would; `>= t` compares the smallest absolute value in the interval
(0 when it spans 0); `bound = "value"` compares |value|. `== X` / `!= X` (X a number, `true` = 1 or `false` = 0) compare the value
exactly: for flags such as `dp_audit.claim_violated = "== false"`. `count` and `point` metrics (significant
tests, epsilon spent, perplexity) are judged on their value and are measured even with n = 0.
Each check records the direction it read and what it compared (`compared_as`: upper, lower,
value, max |bound|, min |bound|, |value|), which the JUnit, Markdown and HTML reports show.

Thresholds are checked twice: against the attacks' declared metric names when the audit spec
loads (`check_thresholds`, before a run folder exists or a model loads), and against what the run
reported when it is gated (`evaluate`).

Renamed metrics (reports/SCHEMA.md, "Metric names"): an old name an attack still declares as a
deprecated alias (`MetricSpec.deprecated_alias_of`, e.g. `attributes.top1_age` for
`attributes.top1.age`) is accepted at both checks for one release, with one line on stderr naming
old -> new; the check then reads, and reports, the metric under its current name.

Exit codes (the project's CI contract): 0 every check passed, 1 a check failed, 2 usage error
(a threshold names an attack, metric or target that is not in the run; a malformed condition),
3 a metric exists but could not be measured (no samples, NaN) and nothing failed outright.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

from privaudit.errors import EXIT_CANNOT_MEASURE, EXIT_GATE_FAILED, EXIT_OK, IncompleteRunError, InputError
from privaudit.metrics import VALUE_KINDS, MetricSpecs

Bound = Literal["upper", "lower", "value"]
Status = Literal["pass", "fail", "unmeasured"]
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
_OP_ALIASES = {"≤": "<=", "≥": ">=", "=<": "<=", "=>": ">="}
_CONDITION_RE = re.compile(r"^\s*(<=|>=|=<|=>|≤|≥|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
# Equality on a flag (`dp_audit.claim_violated`, reported as 1.0 / 0.0): "== false", "!= true", "== 0".
_EQUALITY_RE = re.compile(r"^\s*(==|!=)\s*(true|false|[-+]?\d+(?:\.\d*)?)\s*$", re.IGNORECASE)
_LITERALS = {"true": 1.0, "false": 0.0}
_CONDITION_KEYS = frozenset({"max", "min", "bound"})
_BOUNDS = ("auto", "upper", "lower", "value")


@dataclass(frozen=True)
class Condition:
    """One comparison: `op threshold`, applied to the chosen bound of a metric's interval."""

    op: str
    threshold: float
    bound: Bound

    def describe(self) -> str:
        return f"{self.op} {self.threshold:g}"


@dataclass(frozen=True)
class GateCheck:
    """The result of one threshold on one target's metric."""

    key: str  # the threshold key as written in the config
    attack: str
    metric: str
    target: str
    op: str
    threshold: float
    bound: Bound
    status: Status
    compared: float | None  # the number that was compared (the chosen bound), None if unmeasured
    direction: str  # the metric's declared direction; "two_sided" compares absolute sizes
    compared_as: str  # which number was compared: upper, lower, value, max |bound|, min |bound|, |value|
    value: float | None
    low: float | None
    high: float | None
    n: int | None
    message: str

    @property
    def name(self) -> str:
        return f"{self.attack}.{self.metric}@{self.target}"

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "name": self.name}



# The CI contract's statuses by exit code: shared by the gate and `privaudit diff`.
STATUS_OF_EXIT = {EXIT_OK: "pass", EXIT_GATE_FAILED: "fail", EXIT_CANNOT_MEASURE: "unmeasured"}


def exit_code_of(statuses: Iterable[str | None]) -> int:
    """1 if any check failed, else 3 if any could not be measured, else 0 (unchecked = None)."""
    seen = set(statuses)
    if "fail" in seen:
        return EXIT_GATE_FAILED
    if "unmeasured" in seen:
        return EXIT_CANNOT_MEASURE
    return EXIT_OK


@dataclass(frozen=True)
class GateOutcome:
    """Every check of a run; `passed` only when all passed; `exit_code` per the CI contract."""

    checks: list[GateCheck] = field(default_factory=list)
    passed: bool = True

    @property
    def exit_code(self) -> int:
        return exit_code_of(c.status for c in self.checks)

    @property
    def status(self) -> str:
        return STATUS_OF_EXIT[self.exit_code]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "status": self.status, "exit_code": self.exit_code,
                "checks": [c.to_dict() for c in self.checks]}


# -- parsing --------------------------------------------------------------------------------
def flatten_thresholds(thresholds: Mapping[str, Any], where: str = "thresholds") -> dict[str, Any]:
    """`{"pii": {"exact_match_rate": "<= 0.01"}}` (unquoted dotted TOML keys) -> `{"pii.exact_match_rate": ...}`."""
    if not isinstance(thresholds, Mapping):
        raise InputError(f"{where}: expected a table of METRIC = CONDITION, got {type(thresholds).__name__}")
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value and not set(value) & _CONDITION_KEYS:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = value

    for key, value in thresholds.items():
        walk(str(key), value)
    return flat


def parse_condition(value: Any, where: str) -> list[Condition]:
    """A threshold's value -> its conditions (a table with both `max` and `min` gives two)."""
    if isinstance(value, str) and (eq := _EQUALITY_RE.match(value)):
        literal = eq.group(2).lower()
        return [Condition(eq.group(1), _LITERALS[literal] if literal in _LITERALS else float(literal), "value")]
    if isinstance(value, str):
        m = _CONDITION_RE.match(value)
        if not m:
            raise InputError(f"{where}: condition {value!r} is not like '<= 0.01', '>= 0.8' or '== false'")
        op = _OP_ALIASES.get(m.group(1), m.group(1))
        return [Condition(op, float(m.group(2)), _auto_bound(op))]
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - _CONDITION_KEYS)
        if unknown:
            raise InputError(f"{where}.{unknown[0]}: unknown key (known: bound, max, min)")
        bound = value.get("bound", "auto")
        if bound not in _BOUNDS:
            raise InputError(f"{where}.bound: must be one of {', '.join(_BOUNDS)}, got {bound!r}")
        conditions = []
        for key, op in (("max", "<="), ("min", ">=")):
            if key in value:
                number = value[key]
                if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
                    raise InputError(f"{where}.{key}: expected a number, got {number!r}")
                conditions.append(Condition(op, float(number), _auto_bound(op) if bound == "auto" else bound))
        if not conditions:
            raise InputError(f"{where}: a threshold table needs 'max' or 'min'")
        return conditions
    raise InputError(f"{where}: expected a condition like '<= 0.01' or a table {{max = 0.01}}, got {value!r}")


def _auto_bound(op: str) -> Bound:
    return "upper" if op.startswith("<") else "lower"


def parse_metric_path(key: str, where: str) -> tuple[str, str, str | None]:
    """`ATTACK.METRIC[@TARGET]` -> (attack, metric, target or None)."""
    head, at, target = key.partition("@")
    attack, dot, metric = head.partition(".")
    if not dot or not attack.strip() or not metric.strip() or (at and not target.strip()):
        raise InputError(f"{where}: metric path {key!r} is not ATTACK.METRIC[@TARGET] (e.g. pii.exact_match_rate)")
    return attack.strip(), metric.strip(), (target.strip() if at else None)


# -- checking a spec before it runs ------------------------------------------------------------
def check_thresholds(thresholds: Mapping[str, Any], declared: Mapping[str, tuple[MetricSpecs, Sequence[str]]],
                     where: str = "thresholds") -> None:
    """Every threshold names an attack of the audit, a metric that attack declares and one of its targets.

    `declared` maps each attack of the spec to (its metric declarations, the target specs it runs
    on). Called when the spec loads, so `bias.max_gap` fails in a second, not after every model ran.
    An `@TARGET` suffix names a target as the run reports it (a loaded target's name, which may
    differ from its spec string), so it is checked when the run is gated. A deprecated old metric
    name passes with a warning on stderr (`warn_renamed`).
    """
    for key, raw in flatten_thresholds(thresholds, where).items():
        loc = f"{where}.{json.dumps(key) if '.' in key else key}"
        attack, metric, target = parse_metric_path(key, loc)
        parse_condition(raw, loc)
        if attack not in declared:
            raise InputError(f"{loc}: attack '{attack}' is not in this audit (attacks: {', '.join(sorted(declared))})")
        specs, targets = declared[attack]
        if specs.find(metric) is None:
            raise InputError(f"{loc}: attack '{attack}' has no metric '{metric}' "
                             f"(its metrics: {', '.join(specs.patterns())})")
        current = specs.current_name(metric)
        if current != metric:
            warn_renamed(f"{attack}.{metric}", f"{attack}.{current}", loc)


# (old, new) names already warned about: once per process, so a run that warns when its spec loads
# does not warn again when it is gated (the `warnings` module's once-per-message registry, in one line).
RENAMES_WARNED: set[tuple[str, str]] = set()


def warn_renamed(old: str, new: str, where: str) -> None:
    """One line on stderr: a threshold uses a metric's old name (accepted for one release)."""
    if (old, new) in RENAMES_WARNED:
        return
    RENAMES_WARNED.add((old, new))
    sys.stderr.write(f"privaudit: warning: {where}: metric {old} is deprecated, renamed {new} "
                     f"(the old name is accepted until the next release)\n")


def declared_specs(attack: str) -> MetricSpecs | None:
    """What the attack declares as installed today (None: not installed, e.g. a plugin's stored result)."""
    from privaudit.errors import PrivauditError

    try:
        from privaudit.attacks.base import get_attack
        from privaudit.compare import COMPARE_ATTACK, compare_metric_specs

        return compare_metric_specs() if attack == COMPARE_ATTACK else get_attack(attack).metrics
    except (PrivauditError, ImportError):
        return None


def _reported_name(metrics: Mapping[str, Any], current: str, specs: MetricSpecs | None) -> str | None:
    """The name under which a result reports the metric now called `current`: that name, or an
    old name of it (a summary written before the rename); None when the result lacks it."""
    if current in metrics:
        return current
    if specs is not None:
        return next((m for m in metrics if specs.current_name(m) == current), None)
    return None


# -- evaluation -----------------------------------------------------------------------------
def evaluate(summary: Mapping[str, Any], thresholds: Mapping[str, Any], where: str = "thresholds",
             declared: Mapping[str, MetricSpecs] | None = None) -> GateOutcome:
    """Check every threshold against the run summary's metrics (a pure function of both).

    `declared` (attack -> its metric declarations) only maps deprecated old metric names to their
    current ones; without it the installed attacks' declarations are used, and an attack that is
    not installed has no old names.
    """
    results = summary.get("results") or []
    checks: list[GateCheck] = []
    specs_of: dict[str, MetricSpecs | None] = dict(declared or {})
    for key, raw in flatten_thresholds(thresholds, where).items():
        loc = f"{where}.{json.dumps(key) if '.' in key else key}"
        attack, metric, target = parse_metric_path(key, loc)
        conditions = parse_condition(raw, loc)
        of_attack = [r for r in results if r.get("attack") == attack]
        if not of_attack:
            ran = sorted({str(r.get("attack")) for r in results}) or ["none"]
            raise InputError(f"{loc}: attack '{attack}' did not run in this audit (attacks run: {', '.join(ran)})")
        if target is not None:
            chosen = [r for r in of_attack if r.get("target") == target]
            if not chosen:
                ran = sorted({str(r.get("target")) for r in of_attack})
                raise InputError(f"{loc}: attack '{attack}' did not run on target '{target}' (targets: {', '.join(ran)})")
        else:
            chosen = of_attack
        if attack not in specs_of:
            specs_of[attack] = declared_specs(attack)
        specs = specs_of[attack]
        current = specs.current_name(metric) if specs is not None else metric
        reported = [_reported_name(r.get("metrics") or {}, current, specs) for r in chosen]
        if not any(reported):
            known = sorted({m for r in of_attack for m in (r.get("metrics") or {})})
            raise InputError(f"{loc}: attack '{attack}' has no metric '{metric}' (metrics: {', '.join(known) or 'none'})")
        if current != metric:
            warn_renamed(f"{attack}.{metric}", f"{attack}.{current}", loc)
        for result, name in zip(chosen, reported):
            estimate = (result.get("metrics") or {}).get(name) if name else None
            for cond in conditions:
                checks.append(_check(key, attack, current, str(result.get("target")), cond, estimate))
    return GateOutcome(checks=checks, passed=all(c.passed for c in checks))


def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def _compared_number(cond: Condition, direction: str, value: float | None, low: float | None,
                     high: float | None) -> tuple[float | None, str]:
    """The number a condition compares, and how it was chosen (said in the check's message)."""
    if low is None or high is None:  # a metric reported without an interval: its value is all there is
        low = high = value
    if direction == "two_sided":
        if value is None or low is None or high is None:
            return None, "|value|"
        if cond.bound == "value":
            return abs(value), "|value|"
        if cond.op.startswith("<"):
            return max(abs(low), abs(high)), "max |bound|"
        return (0.0 if low <= 0.0 <= high else min(abs(low), abs(high))), "min |bound|"
    return {"upper": high, "lower": low, "value": value}[cond.bound], cond.bound


def _check(key: str, attack: str, metric: str, target: str, cond: Condition, estimate: Any) -> GateCheck:
    direction = "higher_is_worse"
    kind = "proportion"
    if isinstance(estimate, Mapping):
        value, low, high = _number(estimate.get("value")), _number(estimate.get("low")), _number(estimate.get("high"))
        n = estimate.get("n") if isinstance(estimate.get("n"), int) else None
        direction = str(estimate.get("direction") or direction)
        kind = str(estimate.get("kind") or kind)
    else:  # a bare number: no interval, every bound is the value
        value = low = high = _number(estimate)
        n = None
    compared, how = _compared_number(cond, direction, value, low, high)
    base = dict(key=key, attack=attack, metric=metric, target=target, op=cond.op, threshold=cond.threshold,
                bound=cond.bound, direction=direction, compared_as=how, value=value, low=low, high=high, n=n)
    if estimate is None:
        return GateCheck(**base, status="unmeasured", compared=None,
                         message=f"{metric} was not reported for target {target}")
    sampled = kind not in VALUE_KINDS
    if value is None or compared is None or (sampled and n == 0):
        return GateCheck(**base, status="unmeasured", compared=None,
                         message=f"{metric} could not be measured (n={n}, value={value})")
    ok = _OPS[cond.op](compared, cond.threshold)
    verdict = "within" if ok else "exceeds"
    message = (f"{how} {compared:.4g} {cond.op} {cond.threshold:g}" if ok else
               f"{how} {compared:.4g} not {cond.op} {cond.threshold:g}")
    interval = f"value {value:+.4g}" if direction == "two_sided" else f"value {value:.4g}"
    interval += f" [{_fmt(low)}, {_fmt(high)}] n={n}" if sampled else f" ({kind})"
    return GateCheck(**base, status="pass" if ok else "fail", compared=compared,
                     message=f"{message} ({interval}; {verdict} the threshold)")


def _fmt(x: float | None) -> str:
    return "?" if x is None else f"{x:.4g}"


# -- I/O ------------------------------------------------------------------------------------
def load_thresholds(config_path: Path) -> dict[str, Any]:
    """The `[thresholds]` table of an audit TOML (the rest of the spec is not needed to gate)."""
    from privaudit.config import load_toml

    raw = load_toml(Path(config_path))
    thresholds = raw.get("thresholds")
    if thresholds is None:
        raise InputError(f"{config_path}: no [thresholds] table to gate on")
    if not isinstance(thresholds, Mapping):
        raise InputError(f"{config_path}: thresholds: expected a table, got {type(thresholds).__name__}")
    return dict(thresholds)


def run_gate(run_dir: Path, thresholds: Mapping[str, Any], junit_path: Path | None = None,
             where: str = "thresholds") -> GateOutcome:
    """Gate a finished run folder (its summary.json); optionally write JUnit XML of the checks.

    A folder whose run failed, was interrupted or is still running holds part of the results, and a
    part can pass where the whole would fail: it is refused (exit 3) rather than gated.
    """
    from privaudit.reports.rundir import load_summary, read_manifest

    status = read_manifest(Path(run_dir)).get("status")
    if status is not None and status != "complete":
        error = read_manifest(Path(run_dir)).get("error")
        raise IncompleteRunError(f"{run_dir}: the run is '{status}'" + (f" ({error})" if error else "")
                                 + "; its results are incomplete: rerun it (it resumes) before gating")
    summary = load_summary(Path(run_dir))
    outcome = evaluate(summary, thresholds, where=where)
    if junit_path is not None:
        from privaudit.reports.junit import write_junit

        write_junit(Path(junit_path), {**summary, "gate": {"thresholds": dict(thresholds), **outcome.to_dict()}})
    return outcome


def echo_outcome(outcome: GateOutcome, echo: Callable[[str], Any] | None = None, checks: bool = True) -> None:
    """One line per check (unless `checks` is false: the terminal summary showed each status), then one verdict line."""
    if echo is None:
        import click

        echo = click.echo
    from privaudit.reports.text import display_text

    for c in outcome.checks if checks else ():
        echo(display_text(f"{c.status.upper():<10} {c.name}: {c.message}", limit=400))
    failed = sum(c.status == "fail" for c in outcome.checks)
    unmeasured = sum(c.status == "unmeasured" for c in outcome.checks)
    total = len(outcome.checks)
    if outcome.exit_code == EXIT_OK:
        echo(f"gate: passed ({total} check{'s' if total != 1 else ''})")
    elif outcome.exit_code == EXIT_GATE_FAILED:
        echo(f"gate: FAILED ({failed} of {total} checks failed, {unmeasured} could not be measured)")
    else:
        echo(f"gate: could not measure {unmeasured} of {total} checks (exit 3)")
