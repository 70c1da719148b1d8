"""The pytest plugin (privaudit/pytest_plugin.py), exercised with pytester: pytest's own plugin tests.

A project's test file uses the fixtures the plugin provides from `--privaudit-audit`: a passing and
a failing privacy assertion, the failure carrying the gate's one-line message, into pytest's own
JUnit XML. The plugin is found through its `pytest11` entry point (a subprocess, nothing passed
with `-p`), as in any project that installs privaudit.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import pytest
import tomli_w

import privaudit

pytest_plugins = ["pytester"]

PRIVACY_TESTS = '''
def test_fixtures_come_from_the_audit_toml(privaudit_target, privaudit_targets, privaudit_subjects):
    assert privaudit_target.startswith("hf:") and privaudit_targets == [privaudit_target]
    assert len(privaudit_subjects) == 3

def test_extraction_is_below_one(privaudit_audit, assert_privacy):
    assert_privacy(privaudit_audit, "pii.exact_match_rate <= 1.0")

def test_extraction_is_below_one_percent(privaudit_audit, assert_privacy):
    assert_privacy(privaudit_audit, "pii.exact_match_rate <= 0.01")
'''


@pytest.fixture(scope="module")
def audit_toml(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from privaudit.data.subjects import write_subjects

    folder = tmp_path_factory.mktemp("plugin_audit")
    write_subjects(folder / "subjects.jsonl", privaudit.generate_subjects(3, seed=0))
    path = folder / "audit.toml"
    path.write_text(tomli_w.dumps({
        "targets": [f"hf:{tiny_model_dir}"], "out": str(folder / "run"),
        "attacks": {"pii": {"subjects": str(folder / "subjects.jsonl"), "pii_types": ["email"],
                            "max_new_tokens": 12}},
    }), encoding="utf-8")
    return path


def test_privacy_assertions_pass_and_fail_with_the_gates_message(pytester: pytest.Pytester, audit_toml: Path,
                                                                 tiny_model_dir: Path) -> None:
    expected = privaudit.audit(spec=audit_toml).check("pii.exact_match_rate <= 0.01").checks[0]
    assert expected.status == "fail"  # n=3 subjects: the upper 95% bound is far above 1%
    pytester.makepyfile(test_privacy=PRIVACY_TESTS)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess("--privaudit-audit", str(audit_toml), f"--junitxml={junit}", "-p",
                                           "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    line = f"FAIL pii.exact_match_rate@hf:{tiny_model_dir}: {expected.message}"
    shown = [text.split(None, 1)[1] for text in result.stdout.str().splitlines() if text.startswith("E ")]
    assert f"AssertionError: {line}" in shown  # one line, as `privaudit gate` says it
    assert "api.py" not in result.stdout.str()  # the traceback ends in the test, not in privaudit
    (failure,) = ElementTree.parse(junit).iter("failure")  # pytest's own JUnit XML carries the same line
    assert line in failure.get("message", "") and line in (failure.text or "")


def test_fixtures_skip_without_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_none="def test_needs_a_target(privaudit_target):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no --privaudit-target or --privaudit-audit given*"])
