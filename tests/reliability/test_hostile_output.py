"""Hostile model output (issue 10, item 4): stored faithfully, shown inert.

A registered in-process target answers with HTML/JS, ANSI escapes, control characters, bidi
overrides, lone surrogates (invalid Unicode) and a 1 MB string, and its *name* carries markup and
escapes too (names reach every report and the terminal). The real CLI runs a PII audit on it.
"""

from __future__ import annotations

import json
import re
import zlib
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner

from privaudit.cli import main
from privaudit.data.subjects import generate_subjects, write_subjects
from privaudit.engine.store import read_records
from privaudit.targets.base import GENERATE, register_target

SCHEME = "hostile-test"
HOSTILE_NAME = 'evil<script>alert("name")</script>\x1b[2J\x1b]0;pwned\x07'
PAYLOADS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(2)">',
    '"><svg onload=alert(3)>',
    "\x1b[31mRED\x1b[0m\x1b]0;title\x07\x1b[2J",
    "a\x00b\x07c\x08d\re\x7f\x9b",
    "\ud800lone\udfff surrogates",
    "\u202egnp.exe",
    "H" * 1_000_000,
]
# A raw ESC, BEL, NUL or other C0/C1 control (tab/newline allowed) must never reach a terminal or report.
RAW_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e]")


class HostileTarget:
    """Deterministic: the payload is chosen by a hash of the prompt."""

    name = HOSTILE_NAME
    capabilities = frozenset({GENERATE})

    def fingerprint(self) -> str:
        return "hostile-v1"

    def generate(self, prompts, cfg):
        return [[expected_output(p)] * cfg.num_samples for p in prompts]

    def close(self) -> None:
        pass


def expected_output(prompt: str) -> str:
    return PAYLOADS[zlib.crc32(prompt.encode()) % len(PAYLOADS)]


register_target(SCHEME)(lambda location, options: HostileTarget())


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("hostile")
    subjects = tmp / "subjects.jsonl"
    write_subjects(subjects, generate_subjects(2, seed=0))
    out = tmp / "run"
    result = CliRunner().invoke(main, ["attack", "pii", "--target", f"{SCHEME}:x", "--subjects", str(subjects),
                                       "--out", str(out), "--subject", "s0000"])
    return result, out


def test_the_audit_completes_and_stores_every_output_faithfully(hostile_run):
    result, out = hostile_run
    assert result.exit_code == 0, result.output
    records = list(read_records(out))
    assert records
    seen = set()
    for rec in records:
        assert rec["outputs"] == [expected_output(rec["prompt"])] * len(rec["outputs"])
        seen.add(rec["outputs"][0])
    assert len(seen) >= 5, "too few payload kinds reached the store to test anything"
    assert any("\ud800" in s for s in seen) and any(len(s) == 1_000_000 for s in seen)
    (out / "results.jsonl").read_bytes().decode("utf-8")  # the file stays valid UTF-8


def test_terminal_output_has_no_raw_escape_or_control_characters(hostile_run):
    result, _ = hostile_run
    assert not RAW_CONTROL.search(result.output), repr(RAW_CONTROL.search(result.output))


def test_report_command_output_is_inert(hostile_run, tmp_path: Path):
    _, out = hostile_run
    result = CliRunner().invoke(main, ["report", str(out), "--out", str(tmp_path / "re")])
    assert result.exit_code == 0, result.output
    assert not RAW_CONTROL.search(result.output)


def test_targets_check_shows_outputs_escaped():
    result = CliRunner().invoke(main, ["targets", "check", f"{SCHEME}:x", "--prompt", "x"])
    assert result.exit_code == 0, result.output
    assert not RAW_CONTROL.search(result.output)


class _LiveCode(HTMLParser):
    """Collects what a browser would execute: script bodies and on* handler attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.handlers: list[tuple[str, str]] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self._in_script = tag == "script"
        if tag == "script":
            self.scripts.append(dict(attrs).get("src") or "")
        self.handlers += [(k, v or "") for k, v in attrs if k.lower().startswith("on")]

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def test_html_report_holds_no_live_markup_from_the_target(hostile_run):
    _, out = hostile_run
    html = (out / "report.html").read_text(encoding="utf-8")
    parser = _LiveCode()
    parser.feed(html)
    assert not any("alert" in s for s in parser.scripts)
    assert not any("alert" in v for _, v in parser.handlers), parser.handlers
    assert "&lt;script&gt;" in html  # the hostile target name is shown, escaped
    assert not RAW_CONTROL.search(html)


def test_markdown_json_and_junit_reports_are_inert_and_valid(hostile_run):
    _, out = hostile_run
    md = (out / "summary.md").read_text(encoding="utf-8")
    assert not RAW_CONTROL.search(md)
    json.loads((out / "summary.json").read_text(encoding="utf-8"))
    ElementTree.parse(out / "junit.xml")  # well-formed despite control characters in the name
