"""Inline SVG charts drawn by the project: no charting library, no script, no external URL.

Data-shape contract (full table in reports/SCHEMA.md). An attack puts chart entries in
`AttackResult.charts` (name -> entry, or name -> list of entries); an entry is
`{"kind": KIND, "title": str, ...data}` with plain JSON data (numbers, strings, lists):

- `bars` (alias `bar`): rates per label with 95% error bars.
  `{"labels": [str], "values": [float|None], "low": [..]?, "high": [..]?, "value_label": str?}`
- `gap` (alias `interval_bar`): per-persona (or per-group) gap around `reference` (default 0);
  the column form above or `{"rows": [{"label", "value", "low"?, "high"?, "highlight"?}]}`.
- `rank_histogram`: likelihood rank of the true value (ProPILE).
  `{"ranks": [int >= 1], "num_candidates": int?}` or pre-binned `{"bins": [str], "counts": [num]}`.
- `scatter` (alias `tradeoff`): defense privacy-vs-utility trade-off, one point per variant:
  `{"x_label": "held-out perplexity", "y_label": "pii exact-match rate",
    "points": [{"label": "dp eps=8", "x": 31.2, "y": 0.02, "x_low"?, "x_high"?, "y_low"?, "y_high"?}]}`.
- `roc`: membership-inference ROC, one curve per method:
  `{"curves": [{"label": "loss", "points": [[fpr, tpr], ...], "auc"?: float}]}` (or per curve
  `"fpr": [..], "tpr": [..]`; or a single curve at top level). AUC is computed when not given.
- `heatmap`: a matrix of rates (the cross-user leakage matrix):
  `{"rows": [str], "columns": [str], "values": [[float|None]], "x_label"?: str, "y_label"?: str}`.

Each kind has a renderer registered by decorator; an unknown kind, or data a renderer cannot
draw, is shown as a table instead, so a new attack never breaks the report. Every piece of text
is escaped here, because SVG is built as a string (Jinja's autoescape does not see inside it).
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Mapping, Sequence

from markupsafe import Markup, escape

from privaudit.errors import InputError
from privaudit.registry import Registry
from privaudit.reports.text import display_text

ChartRenderer = Callable[[Mapping[str, Any]], str]
# Chart kind -> renderer; the built-ins below register by decorator, outside packages through the
# `privaudit.charts` entry-point group (so `privaudit report` draws a plugin attack's own kinds).
CHARTS: Registry[ChartRenderer] = Registry("chart kind", "privaudit.charts")

WIDTH = 680
LABEL_W = 200
VALUE_W = 160
ROW_H = 22


class ChartDataError(ValueError):
    """Chart data a renderer cannot draw (wrong lengths, non-numbers); the chart becomes a table."""


def chart_kind(name: str) -> Callable[[ChartRenderer], ChartRenderer]:
    """Register a renderer for chart entries of `kind == name`."""
    return CHARTS.register(name)


def known_kinds() -> list[str]:
    return CHARTS.names()


def render_chart(chart: Mapping[str, Any]) -> Markup:
    """SVG for a chart entry, or an HTML table of its data when it cannot be drawn."""
    kind = chart.get("kind") if isinstance(chart, Mapping) else None
    try:
        renderer = CHARTS.find(kind) if isinstance(kind, str) else None
    except InputError as exc:  # a broken chart plugin: the report still shows the data
        return data_table(chart, note=str(exc))
    if renderer is not None:
        try:
            return Markup(renderer(chart))
        except (ChartDataError, TypeError, ValueError, KeyError, IndexError) as exc:
            return data_table(chart, note=f"chart data could not be drawn: {exc}")
    return data_table(chart, note=f"no renderer for chart kind {kind!r}; data shown as a table")


def data_table(chart: Any, note: str = "") -> Markup:
    """The chart's data as a two-column table (the fallback for unknown or malformed charts)."""
    items = chart.items() if isinstance(chart, Mapping) else [("data", chart)]
    rows = "".join(
        f"<tr><th>{escape(display_text(k, 80))}</th><td><code>{escape(display_text(_json(v), 2000))}</code></td></tr>"
        for k, v in items if k not in ("title",)
    )
    caption = f'<p class="note">{escape(note)}</p>' if note else ""
    return Markup(f'{caption}<table class="chart-data">{rows}</table>')


def _json(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)


# -- helpers --------------------------------------------------------------------------------
def _num(x: Any, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise ChartDataError(f"{what} is not a finite number: {x!r}")
    return float(x)


def _nums(xs: Any, what: str, length: int | None = None) -> list[float]:
    if not isinstance(xs, (list, tuple)):
        raise ChartDataError(f"{what} is not a list")
    if length is not None and len(xs) != length:
        raise ChartDataError(f"{what} has {len(xs)} entries, expected {length}")
    return [_num(x, f"{what}[{i}]") for i, x in enumerate(xs)]


def _opt_nums(chart: Mapping[str, Any], key: str, length: int) -> list[float | None]:
    xs = chart.get(key)
    if xs is None:
        return [None] * length
    if not isinstance(xs, (list, tuple)) or len(xs) != length:
        raise ChartDataError(f"'{key}' must be a list of {length} numbers")
    return [None if x is None else _num(x, f"{key}[{i}]") for i, x in enumerate(xs)]


def _t(s: Any, limit: int = 40) -> str:
    return str(escape(display_text(s, limit)))


def _fmt(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1000 or abs(x) < 0.001:
        return f"{x:.3g}"
    return f"{x:.4g}" if abs(x) < 1 else f"{x:.3g}"


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    out, v = [], start
    while v <= hi + step * 1e-9:
        out.append(round(v, 12))
        v += step
    return out


def _svg(width: int, height: int, title: str, body: str) -> str:
    return (f'<svg class="chart" role="img" aria-label="{_t(title, 120)}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}"><title>{_t(title, 120)}</title>{body}</svg>')


def _domain(values: Sequence[float], lows: Sequence[float | None], highs: Sequence[float | None],
            unit_hint: bool) -> tuple[float, float]:
    pts = list(values) + [x for x in lows if x is not None] + [x for x in highs if x is not None]
    lo, hi = min(pts + [0.0]), max(pts + [0.0])
    if unit_hint and lo >= 0 and hi <= 1:
        return 0.0, 1.0
    if hi == lo:
        hi = lo + 1.0
    pad = (hi - lo) * 0.05
    return (lo - pad if lo < 0 else lo), (hi + pad if hi > 0 else hi)


def _rows_to_columns(chart: Mapping[str, Any]) -> Mapping[str, Any]:
    """`rows: [{label, value, low, high, highlight}]` -> the column form `labels/values/low/high`."""
    rows = chart.get("rows")
    if rows is None:
        return chart
    if not isinstance(rows, (list, tuple)) or not all(isinstance(r, Mapping) for r in rows):
        raise ChartDataError("'rows' must be a list of objects")
    cols: dict[str, Any] = {k: v for k, v in chart.items() if k != "rows"}
    cols["labels"] = [r.get("label", "") for r in rows]
    cols["values"] = [r.get("value") for r in rows]
    if any(r.get("low") is not None for r in rows):
        cols["low"] = [r.get("low") for r in rows]
    if any(r.get("high") is not None for r in rows):
        cols["high"] = [r.get("high") for r in rows]
    cols["highlight"] = [bool(r.get("highlight")) for r in rows]
    return cols


def _hbars(chart: Mapping[str, Any], diverging: bool) -> str:
    chart = _rows_to_columns(chart)
    labels = chart.get("labels")
    if not isinstance(labels, (list, tuple)) or not labels:
        raise ChartDataError("'labels' must be a non-empty list")
    n = len(labels)
    if not isinstance(chart.get("values"), (list, tuple)):
        raise ChartDataError("'values' must be a list")
    values = _opt_nums(chart, "values", n)  # None: not measurable (e.g. no probes in the group)
    lows, highs = _opt_nums(chart, "low", n), _opt_nums(chart, "high", n)
    highlight = chart.get("highlight") if isinstance(chart.get("highlight"), (list, tuple)) else [False] * n
    value_label = chart.get("value_label") or chart.get("y_label") or chart.get("x_label")
    lo, hi = _domain([v for v in values if v is not None], lows, highs, unit_hint=not diverging)
    if diverging:  # symmetric around the reference so the sign of each gap reads at a glance
        ref = _num(chart.get("reference", 0.0), "reference")
        half = max(abs(lo - ref), abs(hi - ref)) or 1.0
        lo, hi = ref - half, ref + half
    else:
        ref = 0.0 if lo <= 0 <= hi else lo
    if "max" in chart:
        hi = _num(chart["max"], "max")
    x0, x1 = LABEL_W, WIDTH - VALUE_W
    top, axis_h = 8, 26
    height = top + n * ROW_H + axis_h + (16 if value_label else 0)

    def sx(v: float) -> float:
        return x0 + (min(max(v, lo), hi) - lo) / (hi - lo) * (x1 - x0)

    parts = []
    for tick in _ticks(lo, hi):
        x = sx(tick)
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + n * ROW_H}"/>'
                     f'<text class="tick" x="{x:.1f}" y="{top + n * ROW_H + 14}" text-anchor="middle">{_fmt(tick)}</text>')
    for i, (label, v, l, h) in enumerate(zip(labels, values, lows, highs)):
        y = top + i * ROW_H
        mark = " *" if i < len(highlight) and highlight[i] else ""
        if v is None:
            parts.append(f'<g><text class="label" x="{x0 - 6}" y="{y + ROW_H / 2 + 4:.1f}" text-anchor="end">{_t(label, 30)}{mark}</text>'
                         f'<text class="value" x="{x0 + 6}" y="{y + ROW_H / 2 + 4:.1f}">not measured</text></g>')
            continue
        a, b = sorted((sx(ref), sx(v)))
        cls = "bar neg" if diverging and v < ref else "bar"
        interval = f" [{_fmt(l)}, {_fmt(h)}]" if l is not None and h is not None else ""
        tip = _t(f"{display_text(label, 80)}: {_fmt(v)}{interval}", 200)
        parts.append(f'<g><title>{tip}</title>'
                     f'<text class="label" x="{x0 - 6}" y="{y + ROW_H / 2 + 4:.1f}" text-anchor="end">{_t(label, 30)}{mark}</text>'
                     f'<rect class="{cls}" x="{a:.1f}" y="{y + 4}" width="{max(b - a, 1):.1f}" height="{ROW_H - 8}"/>')
        if l is not None and h is not None:
            yl = y + ROW_H / 2
            parts.append(f'<line class="err" x1="{sx(l):.1f}" y1="{yl:.1f}" x2="{sx(h):.1f}" y2="{yl:.1f}"/>'
                         f'<line class="err" x1="{sx(l):.1f}" y1="{yl - 5:.1f}" x2="{sx(l):.1f}" y2="{yl + 5:.1f}"/>'
                         f'<line class="err" x1="{sx(h):.1f}" y1="{yl - 5:.1f}" x2="{sx(h):.1f}" y2="{yl + 5:.1f}"/>')
        parts.append(f'<text class="value" x="{x1 + 6}" y="{y + ROW_H / 2 + 4:.1f}">{_fmt(v)}{_t(interval, 40)}</text></g>')
    parts.append(f'<line class="axis" x1="{sx(ref):.1f}" y1="{top}" x2="{sx(ref):.1f}" y2="{top + n * ROW_H}"/>')
    if value_label:
        note = " (* = flagged)" if any(highlight) else ""
        parts.append(f'<text class="axis-label" x="{(x0 + x1) / 2:.1f}" y="{height - 4}" text-anchor="middle">{_t(value_label, 80)}{note}</text>')
    return _svg(WIDTH, height, str(chart.get("title", "")), "".join(parts))


@chart_kind("bars")
@chart_kind("bar")
def bars(chart: Mapping[str, Any]) -> str:
    """Rates (or any values) per label, with error bars from `low`/`high` when given."""
    return _hbars(chart, diverging=False)


@chart_kind("gap")
@chart_kind("interval_bar")
def gap(chart: Mapping[str, Any]) -> str:
    """Signed differences per label (e.g. per-persona gap from the mean) around `reference` (0)."""
    return _hbars(chart, diverging=True)


def _rank_bins(ranks: Sequence[int], num_candidates: int | None) -> tuple[list[str], list[int]]:
    top = max(ranks + ([num_candidates] if num_candidates else []))
    if top <= 20:
        labels = [str(r) for r in range(1, top + 1)]
        counts = [sum(1 for r in ranks if r == k) for k in range(1, top + 1)]
        return labels, counts
    labels, counts, start = [], [], 1
    while start <= top:  # powers of two: 1, 2-3, 4-7, ... (rank spans orders of magnitude)
        end = min(start * 2 - 1, top)
        labels.append(str(start) if start == end else f"{start}-{end}")
        counts.append(sum(1 for r in ranks if start <= r <= end))
        start *= 2
    return labels, counts


@chart_kind("rank_histogram")
def rank_histogram(chart: Mapping[str, Any]) -> str:
    """How often the true value ranked 1st, 2nd, ... among candidates (ProPILE likelihood probe)."""
    if "counts" in chart:
        labels = [str(b) for b in chart.get("bins") or []]
        counts = _nums(chart["counts"], "counts", len(labels) or None)
        labels = labels or [str(i + 1) for i in range(len(counts))]
        if len(counts) > 20 and labels == [str(i + 1) for i in range(len(counts))]:
            ranks = [i + 1 for i, c in enumerate(counts) for _ in range(int(c))]
            labels, counts_i = _rank_bins(ranks or [1], len(counts))
            counts = [float(c) for c in counts_i] if ranks else [0.0] * len(counts_i)
    else:
        ranks_raw = chart.get("ranks")
        if not isinstance(ranks_raw, (list, tuple)) or not ranks_raw:
            raise ChartDataError("'ranks' must be a non-empty list of 1-based ranks")
        ranks = [int(_num(r, "ranks[]")) for r in ranks_raw]
        if min(ranks) < 1:
            raise ChartDataError("ranks are 1-based")
        nc = chart.get("num_candidates")
        labels, counts_i = _rank_bins(ranks, int(_num(nc, "num_candidates")) if nc is not None else None)
        counts = [float(c) for c in counts_i]
    if not counts:
        raise ChartDataError("no bins")
    x0, x1, top, plot_h = 56, WIDTH - 16, 10, 170
    height = top + plot_h + 48
    cmax = max(counts) or 1.0
    bw = (x1 - x0) / len(counts)
    parts = []
    for tick in _ticks(0, cmax, 4):
        y = top + plot_h - tick / cmax * plot_h
        parts.append(f'<line class="grid" x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(tick)}</text>')
    for i, (label, c) in enumerate(zip(labels, counts)):
        h = c / cmax * plot_h
        x = x0 + i * bw
        parts.append(f'<g><title>rank {_t(label)}: {_fmt(c)}</title>'
                     f'<rect class="bar" x="{x + 1:.1f}" y="{top + plot_h - h:.1f}" width="{max(bw - 2, 1):.1f}" height="{h:.1f}"/>'
                     f'<text class="tick" x="{x + bw / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle">{_t(label, 12)}</text></g>')
    parts.append(f'<line class="axis" x1="{x0}" y1="{top + plot_h}" x2="{x1}" y2="{top + plot_h}"/>')
    x_label = chart.get("x_label") or "rank of the true value among candidates (1 = most likely)"
    parts.append(f'<text class="axis-label" x="{(x0 + x1) / 2:.1f}" y="{height - 6}" text-anchor="middle">{_t(x_label, 90)}</text>')
    return _svg(WIDTH, height, str(chart.get("title", "")), "".join(parts))


def _xy_frame(x0: float, x1: float, y0: float, y1: float, xd: tuple[float, float], yd: tuple[float, float],
              x_label: str, y_label: str, height: int) -> tuple[Callable[[float], float], Callable[[float], float], list[str]]:
    def sx(v: float) -> float:
        return x0 + (v - xd[0]) / (xd[1] - xd[0]) * (x1 - x0)

    def sy(v: float) -> float:
        return y1 - (v - yd[0]) / (yd[1] - yd[0]) * (y1 - y0)

    parts = []
    for t in _ticks(*xd, 5):
        parts.append(f'<line class="grid" x1="{sx(t):.1f}" y1="{y0}" x2="{sx(t):.1f}" y2="{y1}"/>'
                     f'<text class="tick" x="{sx(t):.1f}" y="{y1 + 14}" text-anchor="middle">{_fmt(t)}</text>')
    for t in _ticks(*yd, 5):
        parts.append(f'<line class="grid" x1="{x0}" y1="{sy(t):.1f}" x2="{x1}" y2="{sy(t):.1f}"/>'
                     f'<text class="tick" x="{x0 - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    parts.append(f'<rect class="frame" x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}"/>')
    parts.append(f'<text class="axis-label" x="{(x0 + x1) / 2:.1f}" y="{height - 6}" text-anchor="middle">{_t(x_label, 90)}</text>')
    parts.append(f'<text class="axis-label" transform="translate(14 {(y0 + y1) / 2:.1f}) rotate(-90)" text-anchor="middle">{_t(y_label, 60)}</text>')
    return sx, sy, parts


def _pad(lo: float, hi: float) -> tuple[float, float]:
    if hi == lo:
        return lo - 0.5, hi + 0.5
    pad = (hi - lo) * 0.08
    return lo - pad, hi + pad


@chart_kind("tradeoff")
@chart_kind("scatter")
def scatter(chart: Mapping[str, Any]) -> str:
    """Labelled points, e.g. each defense's (privacy, utility); optional x/y error bars."""
    points = chart.get("points")
    if not isinstance(points, (list, tuple)) or not points:
        raise ChartDataError("'points' must be a non-empty list")
    pts = []
    for i, p in enumerate(points):
        if not isinstance(p, Mapping):
            raise ChartDataError(f"points[{i}] is not an object")
        q = {"label": p.get("label", f"#{i + 1}"), "x": _num(p.get("x"), f"points[{i}].x"), "y": _num(p.get("y"), f"points[{i}].y")}
        for k in ("x_low", "x_high", "y_low", "y_high"):
            q[k] = None if p.get(k) is None else _num(p[k], f"points[{i}].{k}")
        pts.append(q)
    xs = [v for q in pts for v in (q["x"], q["x_low"], q["x_high"]) if v is not None]
    ys = [v for q in pts for v in (q["y"], q["y_low"], q["y_high"]) if v is not None]
    first = points[0]
    x_label = chart.get("x_label") or first.get("x_label") or "x"
    y_label = chart.get("y_label") or first.get("y_label") or "y"
    height = 340
    sx, sy, parts = _xy_frame(70, WIDTH - 150, 10, height - 44, _pad(min(xs), max(xs)), _pad(min(ys), max(ys)),
                              str(x_label), str(y_label), height)
    for q in pts:
        x, y = sx(q["x"]), sy(q["y"])
        if q["x_low"] is not None and q["x_high"] is not None:
            parts.append(f'<line class="err" x1="{sx(q["x_low"]):.1f}" y1="{y:.1f}" x2="{sx(q["x_high"]):.1f}" y2="{y:.1f}"/>')
        if q["y_low"] is not None and q["y_high"] is not None:
            parts.append(f'<line class="err" x1="{x:.1f}" y1="{sy(q["y_low"]):.1f}" x2="{x:.1f}" y2="{sy(q["y_high"]):.1f}"/>')
        parts.append(f'<g><title>{_t(q["label"], 80)}: x={_fmt(q["x"])}, y={_fmt(q["y"])}</title>'
                     f'<circle class="pt" cx="{x:.1f}" cy="{y:.1f}" r="5"/>'
                     f'<text class="pt-label" x="{x + 8:.1f}" y="{y - 6:.1f}">{_t(q["label"], 24)}</text></g>')
    return _svg(WIDTH, height, str(chart.get("title", "")), "".join(parts))


def _auc(fpr: Sequence[float], tpr: Sequence[float]) -> float:
    pts = sorted(zip(fpr, tpr))
    return sum((x2 - x1) * (y1 + y2) / 2 for (x1, y1), (x2, y2) in zip(pts, pts[1:]))


@chart_kind("roc")
def roc(chart: Mapping[str, Any]) -> str:
    """ROC curve(s) of a membership-style attack: `fpr`/`tpr`, `points`, or `curves: [{label, points|fpr+tpr, auc?}]`."""
    curves_raw = chart.get("curves") or [{"label": chart.get("label", "attack"), "fpr": chart.get("fpr"),
                                          "tpr": chart.get("tpr"), "points": chart.get("points"),
                                          "auc": chart.get("auc")}]
    curves = []
    for i, c in enumerate(curves_raw):
        if not isinstance(c, Mapping):
            raise ChartDataError(f"curves[{i}] is not an object")
        if c.get("points") is not None:  # [[fpr, tpr], ...]
            pairs = c["points"]
            if not isinstance(pairs, (list, tuple)) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
                raise ChartDataError(f"curves[{i}].points must be a list of [fpr, tpr] pairs")
            fpr = _nums([p[0] for p in pairs], f"curves[{i}].points fpr")
            tpr = _nums([p[1] for p in pairs], f"curves[{i}].points tpr")
        else:
            fpr = _nums(c.get("fpr"), f"curves[{i}].fpr")
            tpr = _nums(c.get("tpr"), f"curves[{i}].tpr", len(fpr))
        if not fpr:
            raise ChartDataError("empty ROC curve")
        if any(not 0 <= v <= 1 for v in fpr + tpr):
            raise ChartDataError("fpr/tpr must lie in [0, 1]")
        auc = c.get("auc")
        curves.append((c.get("label", f"curve {i + 1}"), fpr, tpr, _num(auc, "auc") if auc is not None else _auc(fpr, tpr)))
    size = 300
    height = size + 54
    sx, sy, parts = _xy_frame(70, 70 + size, 10, 10 + size, (0.0, 1.0), (0.0, 1.0),
                              "false positive rate", "true positive rate", height)
    parts.append(f'<line class="chance" x1="{sx(0):.1f}" y1="{sy(0):.1f}" x2="{sx(1):.1f}" y2="{sy(1):.1f}"/>')
    for i, (label, fpr, tpr, auc) in enumerate(curves):
        pts = sorted(zip(fpr, tpr))
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(f'<polyline class="curve c{i % 4}" points="{path}"/>')
        parts.append(f'<text class="legend c{i % 4}" x="{90 + size}" y="{30 + i * 18}">{_t(label, 26)} (AUC {auc:.3f})</text>')
    return _svg(WIDTH, height, str(chart.get("title", "")), "".join(parts))


@chart_kind("heatmap")
def heatmap(chart: Mapping[str, Any]) -> str:
    """A matrix of rates (cross-user leakage: rows = whose model, columns = whose data), cells shaded
    by value in [0, 1] (or the data's range) and labelled with it; `null` = not measured."""
    rows, cols, values = chart.get("rows"), chart.get("columns"), chart.get("values")
    if not isinstance(rows, (list, tuple)) or not isinstance(cols, (list, tuple)) or not rows or not cols:
        raise ChartDataError("'rows' and 'columns' must be non-empty lists of labels")
    if not isinstance(values, (list, tuple)) or len(values) != len(rows):
        raise ChartDataError(f"'values' must hold {len(rows)} rows")
    grid = [[None if x is None else _num(x, f"values[{i}][{j}]") for j, x in enumerate(_row(r, len(cols), i))]
            for i, r in enumerate(values)]
    finite = [x for r in grid for x in r if x is not None]
    lo, hi = (0.0, 1.0) if not finite or (min(finite) >= 0 and max(finite) <= 1) else (min(finite), max(finite))
    cell = max(28, min(64, (WIDTH - LABEL_W) // len(cols)))
    top, left = 40, LABEL_W
    width, height = left + cell * len(cols) + 10, top + cell * len(rows) + 40
    parts = []
    for j, c in enumerate(cols):
        parts.append(f'<text x="{left + j * cell + cell / 2:.1f}" y="{top - 8}" text-anchor="middle" '
                     f'font-size="11">{_t(c, 12)}</text>')
    for i, r in enumerate(rows):
        y = top + i * cell
        parts.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4:.1f}" text-anchor="end" font-size="11">{_t(r, 28)}</text>')
        for j, v in enumerate(grid[i]):
            x = left + j * cell
            if v is None:
                fill, label = "#eeeeee", "n/a"
            else:
                shade = (v - lo) / (hi - lo) if hi > lo else 0.0
                fill = f"rgb({255 - int(35 * shade)},{int(255 - 200 * shade)},{int(255 - 200 * shade)})"
                label = _fmt(v)
            parts.append(f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="{fill}" '
                         f'stroke="#999"/><text x="{x + cell / 2 - 1:.1f}" y="{y + cell / 2 + 4:.1f}" '
                         f'text-anchor="middle" font-size="10">{_t(label, 8)}</text>')
    x_label, y_label = chart.get("x_label", ""), chart.get("y_label", "")
    parts.append(f'<text x="{left}" y="{height - 12}" font-size="11">{_t(f"columns: {x_label}" if x_label else "", 80)}'
                 f'{_t(f"; rows: {y_label}" if y_label else "", 60)}</text>')
    return _svg(width, height, str(chart.get("title", "")), "".join(parts))


def _row(r: Any, length: int, i: int) -> list[Any]:
    if not isinstance(r, (list, tuple)) or len(r) != length:
        raise ChartDataError(f"values[{i}] must hold {length} entries")
    return list(r)


@chart_kind("line")
def line(chart: Mapping[str, Any]) -> str:
    """Series of (x, y) points joined in x order, with optional 95% error bars: a metric over training steps."""
    series_raw = chart.get("series")
    if not isinstance(series_raw, (list, tuple)) or not series_raw:
        raise ChartDataError("'series' must be a non-empty list")
    series = []
    for i, s in enumerate(series_raw):
        points = s.get("points") if isinstance(s, Mapping) else None
        if not isinstance(points, (list, tuple)) or not points:
            raise ChartDataError(f"series[{i}].points must be a non-empty list")
        pts = []
        for j, p in enumerate(points):
            if not isinstance(p, Mapping):
                raise ChartDataError(f"series[{i}].points[{j}] is not an object")
            low, high = p.get("low"), p.get("high")
            pts.append((_num(p.get("x"), f"series[{i}].points[{j}].x"), _num(p.get("y"), f"series[{i}].points[{j}].y"),
                        None if low is None else _num(low, "low"), None if high is None else _num(high, "high")))
        series.append((s.get("label", f"series {i + 1}"), sorted(pts)))
    xs = [p[0] for _, pts in series for p in pts]
    ys = [v for _, pts in series for p in pts for v in p[1:] if v is not None]
    height = 340
    sx, sy, parts = _xy_frame(70, WIDTH - 190, 10, height - 44, _pad(min(xs), max(xs)), _pad(min(ys), max(ys)),
                              str(chart.get("x_label") or "x"), str(chart.get("y_label") or "y"), height)
    for i, (label, pts) in enumerate(series):
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y, _, _ in pts)
        parts.append(f'<polyline class="curve c{i % 4}" points="{path}"/>')
        for x, y, low, high in pts:
            if low is not None and high is not None:
                parts.append(f'<line class="err" x1="{sx(x):.1f}" y1="{sy(low):.1f}" x2="{sx(x):.1f}" y2="{sy(high):.1f}"/>')
            parts.append(f'<g><title>{_t(label, 60)} at {_fmt(x)}: {_fmt(y)}</title>'
                         f'<circle class="pt" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4"/></g>')
        parts.append(f'<text class="legend c{i % 4}" x="{WIDTH - 180}" y="{30 + i * 18}">{_t(label, 28)}</text>')
    return _svg(WIDTH, height, str(chart.get("title", "")), "".join(parts))
