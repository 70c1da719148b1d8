"""The report's first screen, written from summary.json: executive summary, headline table, trade-off.

A reader should learn the finding before scrolling: what share of the data subjects' fields the
model gives away verbatim (with its interval and its unit), how its public base compares, whether
training documents are told apart (membership AUC), how far personas move refusals, and what each
defense buys at what utility cost. Every sentence is built from a metric of the summary (value,
95% interval, n), never typed in; the table takes each attack's declared headline metrics
(`MetricSpec.headline`), targets as columns, so a personalized model and its base sit side by side.
"""

from __future__ import annotations

import math
from pathlib import PurePath
from typing import Any, Mapping, Sequence

from privaudit.reports.text import display_text

COMPARE = "compare"
HEADLINE_ROWS = 10
FALLBACK_PER_ATTACK = 2  # an attack that marks no headline metric shows its first ones
# The trade-off chart drawn on the first screen: verbatim leakage first, as the reader asks.
TRADEOFF_ORDER = ("tradeoff_pii_exact_match_rate", "tradeoff_pii_likelihood_top1_rate", "tradeoff_membership_auc")
REFERENCE_VARIANT = "none"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def fmt_estimate(est: Mapping[str, Any] | None, *, interval: bool = True) -> str:
    """`12% [7, 20]` for a proportion, `0.93 [0.88, 0.97]` for a mean, `+0.12 [...]` for a difference."""
    if not isinstance(est, Mapping) or not _finite(est.get("value")):
        return "not measured"
    kind = est.get("kind")
    value, low, high = est.get("value"), est.get("low"), est.get("high")
    if kind == "proportion":
        body = f"{value * 100:.0f}%"
        ends = f" [{low * 100:.0f}, {high * 100:.0f}]" if _finite(low) and _finite(high) else ""
    elif kind == "count":
        return f"{value:,.0f}"
    else:
        sign = "+" if kind == "difference" and value > 0 else ""
        body = f"{sign}{value:.2f}" if abs(value) < 100 else f"{value:,.1f}"
        ends = f" [{low:.2f}, {high:.2f}]" if _finite(low) and _finite(high) and kind != "point" and abs(value) < 100 else ""
    return body + (ends if interval else "")


def target_labels(targets: Sequence[str]) -> dict[str, str]:
    """Short names for column heads: the last path part of `hf:/…/finetuned` when that is unique."""
    short = {}
    for t in targets:
        body = t.split(":", 1)[1] if ":" in t and not t.startswith("/") else t
        if "#" in body:  # openai:URL#model: the model's name
            short[t] = body.rsplit("#", 1)[1] or t
        elif "/" in body:
            short[t] = PurePath(body.split(":adapter=")[0].rstrip("/")).name or t
        else:
            short[t] = t
    if len(set(short.values())) < len(short):
        return {t: t for t in targets}
    return short


def _results(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in summary.get("results") or [] if isinstance(r, Mapping)]


def _metric(res: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    est = (res.get("metrics") or {}).get(name)
    return est if isinstance(est, Mapping) and _finite(est.get("value")) else None


# -- executive summary ---------------------------------------------------------------------------
def _pii_sentence(runs: list[Mapping[str, Any]], label: dict[str, str]) -> str | None:
    measured = [(r, _metric(r, "exact_match_rate")) for r in runs]
    measured = [(r, e) for r, e in measured if e is not None]
    if not measured:
        return None
    measured.sort(key=lambda re_: -re_[1]["value"])
    first, est = measured[0]
    subjects = est.get("clusters") or est.get("n")
    text = (f"{label[first['target']]} reveals {fmt_estimate(est)} of its {subjects} data subjects' PII fields "
            f"verbatim ({est.get('n')} (subject, field) pairs)")
    others = [f"{label[r['target']]}, {fmt_estimate(e)}" for r, e in measured[1:]]
    if others:
        text += "; " + "; ".join(others)
    top1 = _metric(first, "likelihood_top1_rate")
    if top1 is not None:
        text += (f". Under the likelihood probe, {label[first['target']]} ranks the true value first among "
                 f"{_candidates(first)}candidates in {fmt_estimate(top1)} of probes")
    return text + "."


def _candidates(res: Mapping[str, Any]) -> str:
    n = (res.get("provenance") or {}).get("num_candidates")
    return f"{n} " if isinstance(n, int) else ""


def _membership_sentence(runs: list[Mapping[str, Any]], label: dict[str, str]) -> str | None:
    parts = []
    for r in runs:
        auc = _metric(r, "auc")
        if auc is None:
            continue
        text = f"on {label[r['target']]}: AUC {fmt_estimate(auc)} (0.5 = chance)"
        tpr = _metric(r, "tpr_at_1pct_fpr")
        if tpr is not None:
            text += f", {fmt_estimate(tpr)} of training documents flagged at 1% false positives"
        parts.append(text)
    return ("Membership inference " + "; ".join(parts) + ".") if parts else None


def _largest(res: Mapping[str, Any], names: Sequence[str]) -> tuple[str, Mapping[str, Any]] | None:
    found = [(n, e) for n in names if (e := _metric(res, n)) is not None]
    return max(found, key=lambda ne: abs(ne[1]["value"])) if found else None


def _bias_sentence(runs: list[Mapping[str, Any]], label: dict[str, str]) -> str | None:
    parts = []
    for r in runs:
        gaps = [n for n, e in (r.get("metrics") or {}).items() if n.startswith("max_") and n.endswith("_gap")
                and isinstance(e, Mapping) and e.get("headline")]
        got = _largest(r, gaps)
        if got is not None:
            name, est = got
            what = name[len("max_"):-len("_gap")].replace("_", " ")
            parts.append(f"on {label[r['target']]} the largest persona-vs-control {what} gap is {fmt_estimate(est)}")
    return ("Persona bias: " + "; ".join(parts) + ".") if parts else None


def _attribute_sentence(runs: list[Mapping[str, Any]], label: dict[str, str]) -> str | None:
    parts = []
    for r in runs:
        top1 = _metric(r, "top1")
        if top1 is None:
            continue
        text = f"{label[r['target']]} guesses {fmt_estimate(top1)} of {top1.get('n')} author attributes right (top-1)"
        base = _metric(r, "majority_top1")
        if base is not None:
            text += f", majority-class baseline {fmt_estimate(base)}"
        parts.append(text)
    return ("Attribute inference: " + "; ".join(parts) + ".") if parts else None


def _variants(res: Mapping[str, Any]) -> list[str]:
    names = (res.get("provenance") or {}).get("variants")
    if isinstance(names, list):
        return [str(v) for v in names]
    return sorted({n.rsplit(".", 1)[1] for n in (res.get("metrics") or {}) if n.startswith("heldout_perplexity.")})


def _leakage_name(res: Mapping[str, Any], variants: Sequence[str]) -> tuple[str, str] | None:
    for metric, words in (("pii.exact_match_rate", "verbatim leakage"), ("pii.likelihood_top1_rate", "likelihood top-1"),
                          ("membership.auc", "membership AUC")):
        if any(_metric(res, f"{metric}.{v}") for v in variants):
            return metric, words
    return None


def variant_label(res: Mapping[str, Any], v: str) -> str:
    eps = _metric(res, f"epsilon.{v}")
    return f"{v} (epsilon {eps['value']:.2g})" if eps else v


def _compare_sentence(res: Mapping[str, Any]) -> str | None:
    variants = _variants(res)
    chosen = _leakage_name(res, variants)
    if chosen is None:
        return None
    metric, words = chosen
    ref = REFERENCE_VARIANT if REFERENCE_VARIANT in variants else variants[0]

    def at(v: str) -> str:
        ppl = _metric(res, f"heldout_perplexity.{v}")
        cost = f" at a held-out perplexity of {ppl['value']:.3g}" if ppl else ""
        return f"{fmt_estimate(_metric(res, f'{metric}.{v}'))}{cost}"

    others = [f"{variant_label(res, v)} brings {words} to {at(v)}" for v in variants if v != ref]
    head = f"Defenses compared on the same probes: {words} without defense ({ref}) is {at(ref)}"
    return head + ("; " + "; ".join(others) if others else "") + "."


SENTENCES = {"pii": _pii_sentence, "membership": _membership_sentence, "bias": _bias_sentence,
             "attributes": _attribute_sentence}


def executive_summary(summary: Mapping[str, Any]) -> list[str]:
    """Sentences with value and interval, one per attack (then the defenses), from the summary."""
    by_attack: dict[str, list[Mapping[str, Any]]] = {}
    for r in _results(summary):
        by_attack.setdefault(str(r.get("attack")), []).append(r)
    label = target_labels([str(r.get("target")) for r in _results(summary)])
    out = []
    for attack, runs in by_attack.items():
        if attack == COMPARE:
            continue
        write = SENTENCES.get(attack)
        sentence = write(runs, label) if write else _generic_sentence(attack, runs, label)
        if sentence:
            out.append(sentence)
    for r in by_attack.get(COMPARE, []):
        sentence = _compare_sentence(r)
        if sentence:
            out.append(sentence)
    return [display_text(s, 1000) for s in out]


def _generic_sentence(attack: str, runs: list[Mapping[str, Any]], label: dict[str, str]) -> str | None:
    parts = []
    for r in runs:
        for name, est in headline_metrics(r)[:FALLBACK_PER_ATTACK]:
            parts.append(f"{name} on {label[r['target']]} {fmt_estimate(est)}")
    return f"{attack}: " + "; ".join(parts) + "." if parts else None


# -- headline table ------------------------------------------------------------------------------
def headline_metrics(res: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The result's declared headline metrics, or its first ones when it declares none."""
    metrics = [(n, e) for n, e in (res.get("metrics") or {}).items() if isinstance(e, Mapping)]
    marked = [(n, e) for n, e in metrics if e.get("headline") is True]
    return marked if marked else metrics[:FALLBACK_PER_ATTACK]


def headline_table(summary: Mapping[str, Any], status: Mapping[tuple[str, str, str], str | None]) -> dict[str, Any]:
    """Rows (attack, metric) x columns (targets): each cell the estimate and its gate status."""
    results = [r for r in _results(summary) if r.get("attack") != COMPARE]
    targets = list(dict.fromkeys(str(r.get("target")) for r in results))
    label = target_labels(targets)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in results:
        attack, target = str(r.get("attack")), str(r.get("target"))
        for name, est in headline_metrics(r):
            row = rows.setdefault((attack, name), {"attack": attack, "metric": name, "n": {}, "cells": {}})
            row["cells"][target] = {"text": fmt_estimate(est), "n": est.get("n"),
                                    "status": status.get((attack, name, target))}
    shown = list(rows.values())[:HEADLINE_ROWS]
    return {
        "columns": [{"target": display_text(t, 200), "label": display_text(label[t], 60)} for t in targets],
        "rows": [{"attack": display_text(r["attack"], 60), "metric": display_text(r["metric"], 80),
                  "cells": [_cell(r["cells"].get(t)) for t in targets]} for r in shown],
        "more": len(rows) - len(shown),
    }


def _cell(cell: Mapping[str, Any] | None) -> dict[str, Any]:
    if cell is None:
        return {"text": "", "n": "", "status": None}
    n = cell.get("n")
    return {"text": cell["text"], "n": f"n = {n:,}" if isinstance(n, int) else "", "status": cell.get("status")}


# -- defenses ------------------------------------------------------------------------------------
def defenses_view(summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """The compare result's trade-off chart (one) and a row per variant, for the first screen."""
    res = next((r for r in _results(summary) if r.get("attack") == COMPARE), None)
    if res is None:
        return None
    charts = res.get("charts") or {}
    key = next((k for k in TRADEOFF_ORDER if k in charts), next(iter(charts), None))
    variants = _variants(res)
    columns = [(m, w) for m, w in (("pii.exact_match_rate", "verbatim leakage"), ("pii.likelihood_top1_rate",
               "likelihood top-1"), ("membership.auc", "membership AUC"), ("heldout_perplexity", "held-out perplexity"))
               if any(_metric(res, f"{m}.{v}") for v in variants)]
    rows = [{"variant": display_text(variant_label(res, v), 80),
             "cells": [fmt_estimate(_metric(res, f"{m}.{v}")) for m, _ in columns]} for v in variants]
    return {"chart": charts.get(key) if key else None, "columns": [w for _, w in columns], "rows": rows}
