"""report.html: self-contained, every section present, hostile model output inert, charts generic."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pandas as pd
import pytest

from privaudit.attacks.base import AttackResult
from privaudit.metrics import MetricSpec, metric_specs, proportion
from privaudit.reports.charts import known_kinds, render_chart
from privaudit.reports.html import render_html
from privaudit.reports.json import build_summary
from report_fixtures import HOSTILE_OUTPUTS, SURROGATE_OUTPUT, make_subjects, registered_fixture_attack, write_run


@pytest.fixture
def fixture_attack():
    yield from registered_fixture_attack()


class _Elements(HTMLParser):
    """Every start tag and its attributes, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(html)
    return parser.tags


def assert_inert(html: str) -> None:
    tags = elements(html)
    names = {t for t, _ in tags}
    assert not names & {"script", "img", "iframe", "object", "embed", "link", "base", "form"}, names
    for tag, attrs in tags:
        assert not any(a.startswith("on") for a in attrs), (tag, attrs)
        assert not any(v and re.search(r"(?i)javascript:|https?://", v) for v in attrs.values()), (tag, attrs)
    assert "\x1b" not in html and "\x00" not in html and "\u202e" not in html


def hostile_result(outputs: list[str]) -> AttackResult:
    records = pd.DataFrame({"output": outputs, "hit": [True] * len(outputs)})
    return AttackResult(
        attack=outputs[0][:20], target="<b>target</b>", records=records,
        metrics={"<i>rate</i>": proportion(1, 2)},
        tables={"outputs": [{"output": o, "<th>col": o} for o in outputs]},
        charts={"c": {"kind": "bars", "title": outputs[0], "labels": outputs, "values": [0.5] * len(outputs)},
                "s": {"kind": "scatter", "title": "t", "points": [{"label": o, "x": 1, "y": 2} for o in outputs]}},
        assumptions=outputs, provenance={"note": outputs[1]},
        # the contract's strings are shown too (unit, cluster): hostile ones must stay inert as well
        specs=metric_specs(MetricSpec("<i>rate</i>", "proportion", "higher_is_worse", outputs[1], cluster=outputs[3])),
    )


def test_report_has_every_section(fixture_attack, tmp_path):
    run = tmp_path / "run"
    write_run(run, make_subjects(5), thresholds={"reportfixture.exact_match_rate": "<= 0.99"})
    html = (run / "report.html").read_text(encoding="utf-8")
    for section in ("verdict", "overview", "attack-1", "subjects", "assumptions", "provenance", "gate-checks", "targets"):
        assert f'id="{section}"' in html, section
    assert "PASS: all 2 privacy checks passed" in html
    assert html.count("<svg") == 10  # 5 drawable chart kinds x 2 targets; the unknown kind is a table
    assert "no renderer for chart kind &#39;sankey&#39;" in html
    assert "knows each subject&#39;s name" in html  # assumptions
    assert "sha256:0f00d" in html and "abc123" in html  # fingerprints and config hash
    assert 'id="masking-note"' in html and 'id="pii-banner"' not in html


def test_report_is_self_contained(fixture_attack, tmp_path):
    run = tmp_path / "run"
    write_run(run, make_subjects(3))
    html = (run / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"(?i)https?://|//[a-z0-9.-]+\.[a-z]{2,}/|url\(|@import|\bsrc=|\bhref=\"(?!#)", html)
    assert "default-src &#39;none&#39;" in html or "default-src 'none'" in html
    assert_inert(html)


def test_hostile_outputs_through_a_run_are_inert(fixture_attack, tmp_path):
    run = tmp_path / "run"
    write_run(run, make_subjects(6))
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in html  # shown, escaped
    assert_inert(html)


def test_hostile_outputs_in_every_field_are_inert():
    outputs = [*HOSTILE_OUTPUTS, SURROGATE_OUTPUT, "\x1b]8;;http://evil.example\x07link\x1b]8;;\x07"]
    summary = build_summary([hostile_result(outputs)], {"targets": {"<script>x</script>": "\x1b[2J"}})
    html = render_html(summary)
    assert_inert(html)
    html.encode("utf-8")  # lone surrogates were replaced, the page is valid UTF-8
    assert "\\x1b[31mred" in html and "\\u202e" in html  # control characters are spelled out, visibly
    assert "&lt;img src=x onerror=" in html


def test_megabyte_output_is_shortened_not_dropped(fixture_attack, tmp_path):
    run = tmp_path / "run"
    write_run(run, make_subjects(3), huge=True)
    html = (run / "report.html").read_text(encoding="utf-8")
    assert len(html) < 400_000
    assert "more characters]" in html
    assert_inert(html)


def test_show_pii_banner_is_at_the_top(fixture_attack, tmp_path):
    run = tmp_path / "run"
    write_run(run, make_subjects(3), show_pii=True)
    html = (run / "report.html").read_text(encoding="utf-8")
    body = html[html.index("<body>"):]
    assert body.index('id="pii-banner"') < body.index("<h1>")


@pytest.mark.parametrize("chart", [
    {"kind": "bars", "title": "r", "labels": ["a", "b"], "values": [0.1, None], "low": [0.0, None], "high": [0.2, None]},
    {"kind": "bar", "labels": ["x"], "values": [3.0]},
    {"kind": "gap", "labels": ["p1", "p2"], "values": [-0.2, 0.1], "low": [-0.3, 0.0], "high": [-0.1, 0.2]},
    {"kind": "interval_bar", "reference": 0.0, "rows": [{"label": "p", "value": 0.1, "low": 0.0, "high": 0.2, "highlight": True}]},
    {"kind": "rank_histogram", "ranks": [1, 1, 2, 5, 40], "num_candidates": 50},
    {"kind": "rank_histogram", "bins": list(range(1, 101)), "counts": [3] + [0] * 98 + [1]},
    {"kind": "scatter", "points": [{"label": "a", "x": 0.1, "y": 3, "x_low": 0, "x_high": 0.2}, {"label": "b", "x": 0.1, "y": 3}]},
    {"kind": "roc", "fpr": [0, 0.5, 1], "tpr": [0, 0.8, 1]},
    {"kind": "roc", "curves": [{"label": "loss", "fpr": [0, 1], "tpr": [0, 1], "auc": 0.5}, {"label": "zlib", "fpr": [0, 0.2, 1], "tpr": [0, 0.6, 1]}]},
    {"kind": "roc", "curves": [{"label": "min-k", "points": [[0, 0], [0.1, 0.4], [1, 1]]}]},
    {"kind": "tradeoff", "x_label": "perplexity", "y_label": "exact match",
     "points": [{"label": "none", "x": 12.1, "y": 0.41, "y_low": 0.33, "y_high": 0.49}, {"label": "dp", "x": 14.0, "y": 0.02}]},
])
def test_each_chart_kind_draws_svg(chart):
    svg = str(render_chart(chart))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert_inert(svg)


@pytest.mark.parametrize("chart", [
    {"kind": "bars", "labels": ["a", "b"], "values": [1.0]},
    {"kind": "scatter", "points": [{"label": "a", "x": "NaN-ish", "y": 1}]},
    {"kind": "roc", "fpr": [0, 2], "tpr": [0, 1]},
    {"kind": "rank_histogram", "ranks": [0]},
    {"kind": "heatmap", "cells": [[1, 2]]},
    {"kind": "roc", "curves": [{"label": "x", "points": [[0, 0, 1]]}]},
])
def test_undrawable_or_unknown_charts_become_tables(chart):
    out = str(render_chart(chart))
    assert "<svg" not in out and "<table" in out


def test_renderer_registry_covers_the_documented_kinds():
    assert {"bars", "gap", "rank_histogram", "scatter", "tradeoff", "roc"} <= set(known_kinds())


def test_roc_auc_is_computed_from_points_when_not_given():
    svg = str(render_chart({"kind": "roc", "curves": [{"label": "m", "points": [[0, 0], [0, 1], [1, 1]]}]}))
    assert "(AUC 1.000)" in svg
