"""The terminal summary after `run`, `demo` and `attack`: one compact table per attack, then the report.

A run reports about 130 metrics; a person reading a terminal needs the few that tell each attack's
story, the ones its declaration marks `headline` (privaudit.metrics.MetricSpec): value, 95%
interval, n and the gate's verdict on it, then where the report is. `--verbose` prints every
metric. The demo's output fits on one screen (tests/test_terminal_summary.py counts its lines).

The defense comparison (`compare`, target `defenses`) is one row per variant, its headline
families as columns (leakage with its interval, held-out perplexity), rather than one row per
`METRIC.VARIANT`. Every name and value shown passes through `display_text` (model and target
names may hold terminal escapes), and cells are rich `Text`, never markup: `[0.0, 0.16]` stays text.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from privaudit.attacks.base import AttackResult
from privaudit.reports.text import display_text

COMPARE_ATTACK = "compare"  # privaudit.compare.COMPARE_ATTACK (not imported: compare pulls in pandas/defenses)
# (attack, metric, target) -> the worst gate status of its checks
GateStatuses = Mapping[tuple[str, str, str], str]
_STATUS_ORDER = ("pass", "unmeasured", "fail")


def gate_statuses(gate: Mapping[str, Any] | None) -> dict[tuple[str, str, str], str]:
    """The gate section of summary.json (or `GateOutcome.to_dict()`) as (attack, metric, target) -> status."""
    out: dict[tuple[str, str, str], str] = {}
    for check in (gate or {}).get("checks") or []:
        key = (str(check.get("attack")), str(check.get("metric")), str(check.get("target")))
        status = str(check.get("status"))
        if status in _STATUS_ORDER and (key not in out or _STATUS_ORDER.index(status) > _STATUS_ORDER.index(out[key])):
            out[key] = status
    return out


def short_target(name: str) -> str:
    """`hf:/runs/demo/setup/finetuned` -> `finetuned`: the last path part names a local model well enough."""
    text = name.rstrip("/")
    if ":adapter=" in text:
        text = text.split(":adapter=", 1)[1].rstrip("/")
    return text.rsplit("/", 1)[-1] or name


def _fmt(x: Any, digits: int = 3) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return "-"
    return f"{x:.{digits}f}" if abs(x) < 1000 else f"{x:.4g}"


def _interval(est: Mapping[str, Any]) -> str:
    if est.get("kind") in ("point", "count"):  # no sampling interval (low = high = value)
        return ""
    return f"[{_fmt(est.get('low'))}, {_fmt(est.get('high'))}]"


def _status_text(status: str | None) -> Text:
    if status is None:
        return Text("-")
    return Text(status.upper(), style={"pass": "green", "fail": "bold red"}.get(status, "yellow"))


def _chosen(metrics: Mapping[str, Mapping[str, Any]], verbose: bool) -> list[str]:
    """Every metric with `verbose`, else the headline ones (the first three when none is marked)."""
    if verbose:
        return list(metrics)
    marked = [m for m, est in metrics.items() if est.get("headline")]
    return marked or list(metrics)[:3]


def _attack_table(attack: str, results: Sequence[AttackResult], statuses: GateStatuses, verbose: bool) -> Table:
    rows: list[tuple[str, str, dict[str, Any]]] = []
    hidden = 0
    for res in results:
        metrics = res.contracted_metrics()
        chosen = _chosen(metrics, verbose)
        hidden += len(metrics) - len(chosen)
        rows += [(m, res.target, metrics[m]) for m in chosen]
    targets = sorted({r.target for r in results}, key=[r.target for r in results].index)
    title = f"{attack} on {', '.join(short_target(t) for t in targets)}"
    if hidden:
        title += f" (+{hidden} more metrics: --verbose)"
    table = _table(title, ["metric", "target", "value", "95% CI", "n", "gate"], right=(2, 4))
    for metric, target, est in rows:
        table.add_row(Text(display_text(metric, 80)), Text(display_text(short_target(target), 40)),
                      Text(_fmt(est.get("value"))), Text(_interval(est)), Text(str(est.get("n", ""))),
                      _status_text(statuses.get((attack, metric, target))))
    return table


def _compare_table(result: AttackResult, statuses: GateStatuses, verbose: bool) -> Table:
    """One row per variant; columns are the headline families (`pii.exact_match_rate`, ...)."""
    metrics = result.contracted_metrics()
    variants = [str(v) for v in result.provenance.get("variants") or []]
    chosen = _chosen(metrics, verbose)
    families: list[str] = []
    for name in chosen:
        family = next((name[: -len(v) - 1] for v in variants if name.endswith(f".{v}")), name)
        if family not in families:
            families.append(family)
    title = f"{result.attack}: {len(variants)} defense variants on the same attacks"
    if len(chosen) < len(metrics):
        title += f" (+{len(metrics) - len(chosen)} more metrics: --verbose)"
    table = _table(title, ["variant", *families, "gate"], right=tuple(range(1, len(families) + 1)))
    for v in variants:
        cells = []
        for family in families:
            est = metrics.get(f"{family}.{v}")
            cells.append(Text("-" if est is None else f"{_fmt(est.get('value'))} {_interval(est)}".strip()))
        status = [statuses[k] for k in statuses if k[0] == result.attack and k[1].endswith(f".{v}")]
        worst = max(status, key=_STATUS_ORDER.index) if status else None
        table.add_row(Text(display_text(v, 40)), *cells, _status_text(worst))
    return table


def _table(title: str, columns: Sequence[str], right: Iterable[int] = ()) -> Table:
    # the title is a caption line of its own (printed above the table), so it never wraps the table
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1))
    table.caption_text = display_text(title, 200)
    right = set(right)
    for i, col in enumerate(columns):
        table.add_column(col, justify="right" if i in right else "left", no_wrap=True)
    return table


def summary_tables(results: Sequence[AttackResult], gate: Mapping[str, Any] | None = None,
                   verbose: bool = False) -> list[Table]:
    """One table per attack (in run order), the comparison's pivoted by variant; each table's
    `caption_text` is its title line ("pii on base, finetuned (+60 more metrics: --verbose)")."""
    statuses = gate_statuses(gate)
    by_attack: dict[str, list[AttackResult]] = {}
    for res in results:
        by_attack.setdefault(res.attack, []).append(res)
    tables = []
    for attack, group in by_attack.items():
        if attack == COMPARE_ATTACK and len(group) == 1 and group[0].provenance.get("variants"):
            tables.append(_compare_table(group[0], statuses, verbose))
        else:
            tables.append(_attack_table(attack, group, statuses, verbose))
    return tables


def print_summary(results: Sequence[AttackResult], out: Path, *, gate: Mapping[str, Any] | None = None,
                  verbose: bool = False, console: Console | None = None) -> None:
    """The tables, then where the report is (the run folder when no report was written)."""
    if gate is None:
        gate = stored_gate(out)
    if console is None:
        console = Console(highlight=False, soft_wrap=False)
        if not console.is_terminal:  # a log or a pipe: wide enough that no row wraps
            console = Console(highlight=False, soft_wrap=False, width=120)
    for table in summary_tables(results, gate, verbose):
        console.print(Text(table.caption_text, style="bold"))
        console.print(table)
    report = Path(out) / "report.html"
    console.print(Text(display_text(f"report: {report}" if report.exists() else f"run folder: {out}")))


def stored_gate(out: Path) -> Mapping[str, Any] | None:
    """The gate section write_reports put in summary.json (None without thresholds or summary)."""
    import json

    path = Path(out) / "summary.json"
    try:
        gate = json.loads(path.read_text(encoding="utf-8")).get("gate")
    except (OSError, ValueError, AttributeError):
        return None
    return gate if isinstance(gate, Mapping) else None


def print_changes(outcome: Any, *, verbose: bool = False, console: Console | None = None) -> None:
    """`privaudit diff`'s table (a `privaudit.diff.DiffOutcome`): per paired result the headline and
    checked metrics (every shared one with `verbose`): A, B, the change with its interval, how it
    was estimated, n and the threshold's verdict."""
    if console is None:
        console = Console(highlight=False, soft_wrap=False)
        if not console.is_terminal:
            console = Console(highlight=False, soft_wrap=False, width=140)
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for c in outcome.changes:
        groups.setdefault((c.attack, c.target_a, c.target_b), []).append(c)
    for (attack, ta, tb), changes in groups.items():
        shown = [c for c in changes if verbose or c.headline or c.status is not None] or changes[:3]
        title = f"{attack}: {short_target(ta)} -> {short_target(tb)}"
        if len(shown) < len(changes):
            title += f" (+{len(changes) - len(shown)} more metrics: --verbose, --json)"
        table = _table(title, ["metric", "A", "B", "change", "95% CI", "method", "n", "gate"], right=(1, 2, 3, 6))
        for c in shown:
            est = c.change
            ci = "" if est.method == "point" else f"[{_fmt(est.low)}, {_fmt(est.high)}]"
            change = "-" if not math.isfinite(est.value) else f"{est.value:+.3f}"
            method = f"paired ({est.method})" if c.paired else est.method
            table.add_row(Text(display_text(c.metric, 80)), Text(_fmt(c.a)), Text(_fmt(c.b)), Text(change), Text(ci),
                          Text(method), Text(str(est.n)), _status_text(c.status))
        console.print(Text(table.caption_text, style="bold"))
        console.print(table)
    if not groups:
        console.print(Text("no shared results between the two runs"))
