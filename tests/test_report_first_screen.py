"""The report of a real audit opens with its findings (issue 15), checked in headless Chromium.

The run (tests/report_story.py) is the demo's shape: PII extraction + likelihood on the embedded
public base and its memorizing fine-tune, membership on the fine-tune, and a real `compare` of
`none` vs `dp_sgd` whose pseudo-result joins the same report. Chromium renders it with every
request routed to a recording proxy on 127.0.0.1 (tests/browser_sink.py).
"""

from __future__ import annotations

import json
import re
import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest

from browser_sink import network_sink  # noqa: F401  (fixture)
from privaudit.reports.browser import PNG_MAGIC, dump_dom, find_chromium, screenshot
from report_story import Story, build_story

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(find_chromium() is None, reason="no chromium binary on PATH")]


@pytest.fixture(scope="module")
def story(memorized_setup, tmp_path_factory: pytest.TempPathFactory) -> Story:
    return build_story(tmp_path_factory.mktemp("story"), memorized_setup, fast=True)


class _Dom(HTMLParser):
    """Start tags in document order, and the text inside the element with a given id."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def position(self, element_id: str) -> int:
        return next(i for i, (_, a) in enumerate(self.tags) if a.get("id") == element_id)


def _section(dom: str, element_id: str, tag: str) -> str:
    start = dom.index(f'id="{element_id}"')
    return dom[start:dom.index(f"</{tag}>", start)]


def test_first_screen_has_summary_headline_table_evidence_and_tradeoff_without_network(
        story, memorized_setup, network_sink):
    proxy, log = network_sink
    dom = dump_dom(story.run / "report.html", proxy=proxy)
    assert log.page_requests() == [], log.requests  # the page asked for nothing over the network
    parser = _Dom()
    parser.feed(dom)
    # first screen, in this order: verdict, executive summary, headline table, trade-off chart;
    # every other section (all metrics, per-attack detail, provenance) after them, collapsed
    order = [parser.position(i) for i in ("verdict", "executive-summary", "headline-table", "tradeoff-chart",
                                          "evidence", "overview", "provenance")]
    assert order == sorted(order)
    assert all(tag == "details" and "open" not in attrs for tag, attrs in parser.tags
               if attrs.get("id") in ("overview", "attack-1", "provenance", "gate-details"))
    assert "FAIL: " in _section(dom, "verdict", "section")  # the fine-tune leaks beyond 5%
    summary = _section(dom, "executive-summary", "ul")
    assert re.search(r"finetuned reveals \d+% \[\d+, \d+\] of its \d+ data subjects' PII fields verbatim", summary), summary
    assert re.search(r"Membership inference on finetuned: AUC \d\.\d\d \[\d\.\d\d, \d\.\d\d\] \(0\.5 = chance\)", summary)
    assert re.search(r"dp_sgd \(epsilon [\d.]+\) brings verbatim leakage to \d+% \[\d+, \d+\] at a held-out perplexity", summary)
    table = _section(dom, "headline-table", "table")
    rows = table.count("<tr>") - 1
    assert 3 <= rows <= 10
    heads = re.findall(r"<th title=\"([^\"]+)\">", table)
    assert set(heads) == {memorized_setup.base_spec, memorized_setup.finetuned_spec}  # base vs fine-tune side by side
    assert "exact_match_rate" in table and "auc" in table
    chart = _section(dom, "tradeoff-chart", "figure")
    assert "<svg" in chart and "none" in chart and "dp_sgd" in chart
    # evidence: the fine-tune's verbatim hits with the leaked email highlighted, masked
    evidence = _section(dom, "evidence", "section")
    marks = re.findall(r'<mark class="leak">([^<]*)</mark>', evidence)
    assert marks and all(re.fullmatch(r"\w\*\*\*@\w\*\*\*\.\w+", m) for m in marks), marks
    assert not any(s.email in dom or s.name in dom for s in memorized_setup.subjects)


def test_summary_json_ranks_every_subject_and_the_report_shows_the_top(story, memorized_setup):
    data = json.loads((story.run / "summary.json").read_text(encoding="utf-8"))
    blocks = {b["target"]: b["subjects"] for b in data["subject_risk"]}
    ranked = blocks[memorized_setup.finetuned_spec]
    probed = {r["subject_id"] for r in ranked if r["fields_probed"]}
    assert len(probed) == len(memorized_setup.subjects)  # the whole ranking, every probed subject
    assert [r["rank"] for r in ranked] == list(range(1, len(ranked) + 1))
    leaked = [r["fields_leaked"] for r in ranked]
    assert leaked == sorted(leaked, reverse=True) and leaked[0] >= 1
    assert any(r["membership_score"] is not None for r in ranked)
    html = (story.run / "report.html").read_text(encoding="utf-8")
    risk = _section(html, "subject-risk", "section")
    assert ranked[0]["subject_id"] in risk and risk.count("<tr>") <= 2 * (10 + 1)


def test_first_screen_screenshot_is_a_real_png(story, tmp_path):
    png = screenshot(story.run / "report.html", tmp_path / "first.png", width=1280, height=1000)
    data = png.read_bytes()
    assert data[:8] == PNG_MAGIC and struct.unpack(">II", data[16:24]) == (1280, 1000)
    assert len(data) > 40_000  # text, a table and a chart; a blank page is a few kB
