"""A report from a real run, opened in headless Chromium: charts and tables render; a screenshot.

The run is real: `privaudit run --gate` through the CLI on the session's tiny causal LM with the
PII attack (extraction + likelihood probe), so the report shows what an actual audit produces.
Chromium starts headless, without sandbox, with a fresh profile and an unreachable proxy.
"""

from __future__ import annotations

import json
import struct
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from privaudit.cli import main
from privaudit.reports.browser import PNG_MAGIC, dump_dom, find_chromium, screenshot
from report_fixtures import make_subjects

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gated audit run of the PII attack on the tiny model, through `privaudit run --gate`."""
    root = tmp_path_factory.mktemp("browser_run")
    subjects = root / "subjects.jsonl"
    subjects.write_text("".join(json.dumps(s) + "\n" for s in make_subjects(2)), encoding="utf-8")
    spec = root / "audit.toml"
    spec.write_text(
        f'targets = ["hf:{tiny_model_dir}"]\nout = "{root / "run"}"\nseed = 0\n'
        f'[attacks.pii]\nsubjects = "{subjects}"\npii_types = ["email", "phone"]\nlevels = [1]\n'
        'likelihood = true\nnum_candidates = 5\nmax_new_tokens = 6\n'
        '[thresholds]\n"pii.exact_match_rate" = "<= 0.99"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["--quiet", "run", str(spec), "--gate"])
    assert result.exit_code == 0, result.output
    assert "gate: passed" in result.output
    return root / "run"


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_real_run_writes_every_report_and_junit(real_run):
    for name in ("report.html", "summary.json", "junit.xml", "summary.md"):
        assert (real_run / name).is_file(), name
    suite = ET.parse(real_run / "junit.xml").getroot()
    assert suite.get("tests") == "1" and suite.get("failures") == "0"


needs_chromium = pytest.mark.skipif(find_chromium() is None,
                                    reason="no chromium binary on PATH (.ci/run installs the Debian 'chromium' package)")


@needs_chromium
def test_chromium_renders_the_charts_and_tables(real_run):
    dom = dump_dom(real_run / "report.html")
    parser = _Dom()
    parser.feed(dom)
    tags = [t for t, _ in parser.tags]
    ids = {a.get("id") for _, a in parser.tags}
    assert tags.count("svg") >= 2  # the association-level bars and the likelihood-rank histogram
    assert tags.count("rect") >= 3 and tags.count("table") >= 4
    assert {"verdict", "gate-checks", "overview", "attack-1", "provenance"} <= ids
    assert "Rank of the true value among candidates" in dom
    assert "PASS: all 1 privacy checks passed" in dom
    assert "script" not in tags


@needs_chromium
def test_chromium_screenshot_is_a_real_png(real_run, tmp_path):
    png = screenshot(real_run / "report.html", tmp_path / "report.png", width=1280, height=2000)
    data = png.read_bytes()
    assert _png_size(data) == (1280, 2000)
    assert len(data) > 20_000  # a blank page of that size compresses to a few kB


def _regate(real_run: Path, thresholds: str) -> tuple[int, str]:
    """Re-run the same audit with other thresholds: the run resumes (no probe recomputed) and gates."""
    spec = real_run.parent / "audit.toml"
    text = spec.read_text(encoding="utf-8")
    other = real_run.parent / "regate.toml"
    other.write_text(text[: text.index("[thresholds]")] + "[thresholds]\n" + thresholds, encoding="utf-8")
    result = CliRunner().invoke(main, ["--quiet", "run", str(other), "--gate"])
    return result.exit_code, result.output


def test_run_gate_exit_codes_end_to_end(real_run):
    code, out = _regate(real_run, '"pii.exact_match_rate" = "<= 0.0001"\n')
    assert code == 1 and "gate: FAILED" in out, out
    failure = ET.parse(real_run / "junit.xml").getroot().find(".//failure")
    assert failure is not None and "not <= 0.0001" in failure.get("message")
    code, out = _regate(real_run, '"pii.no_such_metric" = "<= 0.1"\n')
    assert code == 2 and "no_such_metric" in out and "Traceback" not in out
    code, out = _regate(real_run, '"pii.exact_match_rate" = "<= 0.99"\n')
    assert code == 0 and "gate: passed" in out
