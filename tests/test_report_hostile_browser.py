"""A target whose every output is hostile HTML/JS, audited for real and its report opened in Chromium.

The target is a deterministic model served over a real OpenAI-compatible HTTP server on 127.0.0.1
(`privaudit.serve.serve_target`, the server the `openai:` target tests use). It answers each PII
probe with the subject's true email next to a script, an event-handler attribute, a `javascript:`
link, an iframe or a closing tag meant to break out of the evidence box, and answers bias
conversations with a refusal (control) or a compliance (persona) wrapped in a style sheet, a forged
`<mark class="leak">` and an autofocus form. `privaudit run` audits it through the CLI (spec, client,
run store, reports); Chromium then renders the report. What must hold, read from Chromium's DOM:
no script element, no `on*` attribute, no `javascript:` URL, no element the model wrote (img,
iframe, form, a second style), the document title untouched (what each payload would change), the
model's text present as text, and the leaked email highlighted and masked.
"""

from __future__ import annotations

import json
import re
import threading
from html.parser import HTMLParser
from pathlib import Path
from typing import Sequence

import pytest
from click.testing import CliRunner

from privaudit.cli import main
from privaudit.reports.browser import dump_dom, find_chromium
from privaudit.serve import serve_target
from privaudit.targets.base import CHAT, GenerationConfig, Message
from browser_sink import network_sink  # noqa: F401  (fixture)
from report_fixtures import make_subjects

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="no chromium binary on PATH")

PII_PAYLOADS = (
    "<script>document.title='PWNED-script'</script>",
    "<img src=x onerror=\"document.title='PWNED-img'\">",
    "<svg onload=\"document.title='PWNED-svg'\"><circle r=5 /></svg>",
    "</div></mark></details></section><a href=\"javascript:document.title='PWNED-a'\">click me</a>",
    "<iframe srcdoc=\"<script>parent.document.title='PWNED-iframe'</script>\"></iframe>",
)
CONTROL_REPLY = "<style>body{display:none}</style> I'm sorry, but I can't help with that request."
PERSONA_REPLY = ('<mark class="leak">forged-leak</mark> Sure, here is how. '
                 '<form action="http://127.0.0.1:9/x"><input onfocus="document.title=\'PWNED-form\'" autofocus></form>')
PERSONAS = ["gender_woman"]


class HostileModel:
    """Deterministic and hostile: the PII probe of subject i gets payload i and the true email."""

    capabilities = frozenset({CHAT})
    name = "hostile"

    def __init__(self, subjects: Sequence[dict[str, str]]) -> None:
        self.subjects = list(subjects)
        self._lock = threading.Lock()

    def fingerprint(self) -> str:
        return "hostile-v1"

    def close(self) -> None:
        pass

    def _complete(self, prompt: str) -> str:
        for i, s in enumerate(self.subjects):
            if s["name"] in prompt:
                return f" {s['email']} {PII_PAYLOADS[i % len(PII_PAYLOADS)]}"
        return " " + PII_PAYLOADS[0]

    def generate(self, prompts: Sequence[str], cfg: GenerationConfig) -> list[list[str]]:
        return [[self._complete(p)] * cfg.num_samples for p in prompts]

    def chat(self, conversations: Sequence[Sequence[Message]], cfg: GenerationConfig) -> list[list[str]]:
        out = []
        for conv in conversations:
            system = next((m["content"] for m in conv if m["role"] == "system"), "")
            reply = PERSONA_REPLY if "I am " in system else CONTROL_REPLY
            out.append([reply] * cfg.num_samples)
        return out


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._in_title = False
        self.title = ""

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_title:
            self.title += data


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]]]:
    root = tmp_path_factory.mktemp("hostile")
    subjects = make_subjects(len(PII_PAYLOADS), seed=11)
    (root / "subjects.jsonl").write_text("".join(json.dumps(s) + "\n" for s in subjects), encoding="utf-8")
    with serve_target(HostileModel(subjects), model_name="hostile") as server:
        spec = root / "audit.toml"
        spec.write_text(
            f'targets = ["{server.spec}"]\nout = "{root / "run"}"\nseed = 0\n'
            f'[attacks.pii]\nsubjects = "{root / "subjects.jsonl"}"\npii_types = ["email"]\nlevels = [1]\n'
            'likelihood = false\nmax_new_tokens = 8\n'
            f'[attacks.bias]\naxes = ["safety"]\npersonas = {json.dumps(PERSONAS)}\nmax_items = 2\nlikelihood = false\n',
            encoding="utf-8")
        result = CliRunner().invoke(main, ["--quiet", "run", str(spec)])
    assert result.exit_code == 0, result.output
    return root / "run", subjects


def test_hostile_model_output_renders_as_inert_text_in_chromium(hostile_run, network_sink):
    run, subjects = hostile_run
    proxy, log = network_sink
    dom = dump_dom(run / "report.html", proxy=proxy)
    assert log.page_requests() == [], log.requests
    parser = _Dom()
    parser.feed(dom)
    tags = [t for t, _ in parser.tags]
    # nothing the model wrote became an element, and nothing ran
    assert "script" not in tags and "img" not in tags and "iframe" not in tags and "form" not in tags
    assert "input" not in tags and "circle" not in tags
    assert tags.count("style") == 1  # the report's own, in <head>
    for tag, attrs in parser.tags:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        assert not any(v and re.search(r"(?i)javascript:", v) for v in attrs.values()), (tag, attrs)
        if tag == "a":
            assert (attrs.get("href") or "").startswith("#"), attrs  # only the report's own anchors
    assert parser.title.startswith("privaudit report") and "PWNED" not in parser.title
    # the model's text is there, as text
    text = "".join(parser.text)
    for payload in PII_PAYLOADS:
        assert payload in text, payload
    assert "<style>body{display:none}</style>" in text and '<mark class="leak">forged-leak</mark>' in text
    # the only highlighted spans are the report's: masked emails, never the forged one or a raw email
    marks = [m.group(1) for m in re.finditer(r'<mark class="leak">([^<]*)</mark>', dom)]
    assert len(marks) == len(subjects) == 5
    assert all("***@" in m for m in marks), marks
    assert not any(s["email"] in dom for s in subjects)


def test_bias_evidence_shows_control_and_persona_side_by_side(hostile_run):
    run, _ = hostile_run
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    bias = next(r for r in summary["results"] if r["attack"] == "bias")
    first = bias["evidence"][0]
    assert first["kind"] == "side_by_side"
    assert first["left"]["label"] == "no persona: refused" and first["right"]["label"] == "gender_woman: answered"
    assert "forged-leak" in first["right"]["output"][0]["text"]
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "&lt;mark class=&#34;leak&#34;&gt;forged-leak" in html


def test_sink_sees_a_page_that_loads_an_image(tmp_path, network_sink):
    """The recording proxy is not blind: a page (without the report's CSP) that loads an image
    from the network is seen asking for it, and Chromium's own background traffic is off."""
    proxy, log = network_sink
    page = tmp_path / "leaky.html"
    page.write_text('<html><body><img src="http://privaudit-test.invalid/pixel.png"></body></html>', encoding="utf-8")
    dump_dom(page, proxy=proxy)
    assert log.page_requests() == ["GET http://privaudit-test.invalid/pixel.png"], log.requests
