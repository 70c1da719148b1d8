"""junit.xml: one test case per gate check, so CI systems show privacy checks natively.

Failed checks carry a <failure> with the check's message; checks that could not be measured
carry an <error> (exit 3 in the gate); a threshold configuration error is one <error> test case.
Built with ElementTree (which escapes markup) from the masked summary, with characters XML 1.0
forbids (control characters from model output) spelled out first.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Mapping

from privaudit.engine.store import write_text_atomic
from privaudit.reports import report_format
from privaudit.reports.text import display_text

SUITE_NAME = "privaudit.gate"


def _x(value: Any, limit: int = 2000) -> str:
    return display_text("" if value is None else value, limit)


def build_junit(summary: Mapping[str, Any]) -> ET.Element:
    """The <testsuites> tree for the summary's gate section (an empty suite without thresholds)."""
    gate = summary.get("gate") or {}
    checks = gate.get("checks") or []
    cases: list[ET.Element] = []
    failures = errors = 0
    if gate.get("error"):
        case = ET.Element("testcase", {"classname": SUITE_NAME, "name": "thresholds configuration", "time": "0"})
        ET.SubElement(case, "error", {"message": _x(gate["error"], 500), "type": "usage"}).text = _x(gate["error"])
        cases.append(case)
        errors += 1
    for c in checks:
        name = _x(f"{c.get('attack')}.{c.get('metric')}@{c.get('target')} {c.get('op')} {c.get('threshold')}", 500)
        case = ET.Element("testcase", {"classname": _x(f"privaudit.{c.get('attack')}", 200), "name": name, "time": "0"})
        status = c.get("status")
        if status == "fail":
            failures += 1
            ET.SubElement(case, "failure", {"message": _x(c.get("message"), 500), "type": "threshold"}).text = _x(c.get("message"))
        elif status != "pass":
            errors += 1
            ET.SubElement(case, "error", {"message": _x(c.get("message"), 500), "type": "unmeasured"}).text = _x(c.get("message"))
        ET.SubElement(case, "system-out").text = _x(
            f"value={c.get('value')} low={c.get('low')} high={c.get('high')} n={c.get('n')} "
            f"direction={c.get('direction')} compared {c.get('compared_as') or c.get('bound')}={c.get('compared')} "
            f"{c.get('op')} {c.get('threshold')}")
        cases.append(case)
    counts = {"tests": str(len(cases)), "failures": str(failures), "errors": str(errors), "skipped": "0", "time": "0"}
    root = ET.Element("testsuites", {"name": "privaudit", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": SUITE_NAME, **counts,
                                               "timestamp": _x((summary.get("manifest") or {}).get("finished", ""), 40)})
    props = ET.SubElement(suite, "properties")
    for key, value in (("schema_version", summary.get("schema_version")), ("pii_shown", summary.get("pii_shown")),
                       ("gate_status", gate.get("status", "no thresholds"))):
        ET.SubElement(props, "property", {"name": key, "value": _x(value, 200)})
    suite.extend(cases)
    return root


@report_format("junit", "junit.xml")
def render_junit(summary: Mapping[str, Any]) -> str:
    root = build_junit(summary)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(path: Path, summary: Mapping[str, Any]) -> Path:
    """Write junit.xml (user-only, like every run output)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, render_junit(summary))
    return path
