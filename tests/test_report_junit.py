"""junit.xml: golden structure parsed with ElementTree: one testcase per gate check, failures carry messages."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from privaudit.reports.junit import SUITE_NAME, render_junit
from report_fixtures import ATTACK_NAME, HOSTILE_OUTPUTS, make_subjects, registered_fixture_attack, write_run


@pytest.fixture
def fixture_attack():
    yield from registered_fixture_attack()


def check(status, target="t", message="upper 0.2 not <= 0.1", metric="rate"):
    return {"name": f"a.{metric}@{target}", "attack": "a", "metric": metric, "target": target, "op": "<=",
            "threshold": 0.1, "bound": "upper", "compared": 0.2, "value": 0.1, "low": 0.0, "high": 0.2, "n": 20,
            "status": status, "message": message}


def parse(summary) -> ET.Element:
    return ET.fromstring(render_junit(summary).encode("utf-8"))


def test_one_testcase_per_gate_check_from_a_run(fixture_attack, tmp_path):
    run = tmp_path / "run"
    write_run(run, make_subjects(4), thresholds={f"{ATTACK_NAME}.exact_match_rate": "<= 0.99",
                                                 f"{ATTACK_NAME}.top1_rate": {"max": 0.0001}})
    root = ET.parse(run / "junit.xml").getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == SUITE_NAME
    cases = suite.findall("testcase")
    assert len(cases) == 4 == int(suite.get("tests")) == int(root.get("tests"))
    names = [c.get("name") for c in cases]
    assert names[0].startswith(f"{ATTACK_NAME}.exact_match_rate@tiny-a <=")
    assert all(c.get("classname") == f"privaudit.{ATTACK_NAME}" for c in cases)
    failed = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name").split(" ")[0] for c in failed] == [f"{ATTACK_NAME}.top1_rate@tiny-a", f"{ATTACK_NAME}.top1_rate@tiny-b"]
    assert suite.get("failures") == "2" and suite.get("errors") == "0"
    for c in failed:
        failure = c.find("failure")
        assert "not <= 0.0001" in failure.get("message") and failure.text == failure.get("message")
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props == {"schema_version": "2.1", "pii_shown": "False", "gate_status": "fail"}


def test_unmeasured_checks_are_errors_and_passes_are_bare():
    root = parse({"schema_version": "1.0", "gate": {"status": "unmeasured", "checks": [
        check("pass", "a", "within"), check("unmeasured", "b", "rate could not be measured (n=0)")]}})
    suite = root.find("testsuite")
    ok, bad = suite.findall("testcase")
    assert ok.find("failure") is None and ok.find("error") is None and ok.find("system-out") is not None
    assert bad.find("error").get("type") == "unmeasured" and "n=0" in bad.find("error").get("message")
    assert suite.get("errors") == "1" and suite.get("failures") == "0"


def test_threshold_configuration_error_is_one_error_case():
    root = parse({"gate": {"status": "error", "error": "thresholds.a.nope: no metric 'nope'", "checks": []}})
    (case,) = root.iter("testcase")
    assert case.get("name") == "thresholds configuration" and "nope" in case.find("error").get("message")


def test_no_thresholds_gives_an_empty_suite():
    root = parse({"schema_version": "1.0", "gate": None})
    assert root.get("tests") == "0" and root.find("testsuite").findall("testcase") == []


def test_hostile_text_stays_well_formed_xml():
    nasty = "".join(HOSTILE_OUTPUTS) + "\x00\x1b]]>"
    root = parse({"gate": {"status": "fail", "checks": [check("fail", target=nasty, message=nasty)]}})
    failure = root.find(".//failure")
    assert "<script>" in failure.get("message")  # kept as text, escaped by the serializer
    assert "\x00" not in failure.text and "\\x00" in failure.text
