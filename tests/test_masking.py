"""Masking: value shapes, known values anywhere in any string, patterns, and no raw PII in any report."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from privaudit.masking import Masker, mask_tree, mask_value, masker_for_results
from report_fixtures import make_subjects, registered_fixture_attack, write_run


@pytest.fixture
def fixture_attack():
    yield from registered_fixture_attack()


def test_email_keeps_first_letters_and_tld():
    assert mask_value("jane.roe@example.com") == "j***@e***.com"


def test_phone_keeps_last_two_digits():
    assert mask_value("+1-555-123-4567") == "***67"
    assert mask_value("(555) 123-4567 x89") == "***89"


def test_name_becomes_initials():
    assert mask_value("Jane Roe") == "J*** R***"


def test_generic_value_keeps_first_char_and_short_values_nothing():
    assert mask_value("42 Elm Street, Springfield") == "4***"
    assert mask_value("34") == "***"


def test_known_values_masked_case_insensitively_longest_first():
    m = Masker(["Jane Roe", "Jane Roe-Smith", "jane.roe@example.com"])
    out = m("JANE ROE-SMITH wrote to Jane.Roe@Example.com; jane roe agreed")
    assert "roe" not in out.lower()
    assert out.startswith("J*** R***")  # the longer value is masked whole
    assert "j***@e***.com" in out


def test_known_value_embedded_in_a_longer_token_is_masked():
    assert "555-0101" not in Masker(["555-0101"])("call555-0101now")
    assert "jane.roe@example.com" not in Masker(["jane.roe@example.com"])("xjane.roe@example.comx")


def test_short_known_values_only_as_whole_words():
    m = Masker(["34"], patterns=False)
    assert m("age 34.") == "age ***."
    assert m("rate 0.34 of 340") == "rate 0.34 of 340"


def test_unknown_emails_and_phones_are_masked_by_pattern():
    out = Masker()("mail bob@corp.io or call 555-867-5309 or +44 20 7946 0958")
    assert "bob@corp.io" not in out and "867-5309" not in out and "7946" not in out


@pytest.mark.parametrize("text", [
    "2026-11-23T10:00:00Z", "sha256:b86b944a1234567890", "Python 3.11.9", "0.613809583977621",
    "Linux-6.1.0-25-amd64-x86_64-with-glibc2.36", "n=1000 seed 20240101",
])
def test_provenance_strings_are_not_taken_for_pii(text):
    assert Masker()(text) == text


def test_mask_tree_masks_keys_and_nested_values_and_keeps_numbers():
    m = Masker(["Jane Roe"])
    tree = {"Jane Roe": [{"who": "jane roe", "n": 3, "rate": 0.5, "ok": True}], "none": None}
    assert mask_tree(tree, m) == {"J*** R***": [{"who": "J*** R***", "n": 3, "rate": 0.5, "ok": True}], "none": None}


@settings(max_examples=60, deadline=None)
@given(st.emails(), st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_no_known_email_survives_masking(email, filler):
    m = Masker([email])
    assert email.lower() not in m(f"{filler}{email}{filler}").lower()


@settings(max_examples=60, deadline=None)
@given(st.from_regex(r"[A-Z][a-z]{2,8} [A-Z][a-z]{2,10}", fullmatch=True))
def test_no_known_name_survives_masking(name):
    m = Masker([name])
    assert name.lower() not in m(f"Dear {name.upper()}, {name} wrote.").lower()


def test_known_values_come_from_the_attacks_pii_fields(fixture_attack, tmp_path):
    subjects = make_subjects(3)
    results = write_run(tmp_path / "run", subjects, targets=("t",))
    masker = masker_for_results(results)
    for s in subjects:
        assert s["name"] in masker.known
        assert {s["email"], s["address"]} <= set(masker.known)


def test_no_raw_pii_of_any_subject_in_default_reports(fixture_attack, tmp_path):
    subjects = make_subjects(8)
    run = tmp_path / "run"
    write_run(run, subjects, thresholds={"reportfixture.exact_match_rate": "<= 0.5"})
    outputs = {name: (run / name).read_text(encoding="utf-8")
               for name in ("report.html", "summary.json", "summary.md", "junit.xml")}
    raw = (run / "results.jsonl").read_text(encoding="utf-8")
    for s in subjects:
        for field in ("name", "email", "phone", "address"):
            assert s[field] in raw  # the records really hold the PII...
            for name, text in outputs.items():  # ...and no report shows it
                assert s[field].lower() not in text.lower(), f"{field} of {s['id']} leaked into {name}"
    assert json.loads(outputs["summary.json"])["masking"]["masked"] is True


def test_show_pii_opts_in(fixture_attack, tmp_path):
    subjects = make_subjects(3)
    run = tmp_path / "run"
    write_run(run, subjects, show_pii=True)
    html = (run / "report.html").read_text(encoding="utf-8")
    assert any(s["name"] in html for s in subjects)
    assert 'id="pii-banner"' in html


def test_megabyte_strings_mask_in_linear_time():
    """An unbounded `[...]+@` email regex is quadratic on long runs of letters (it took minutes)."""
    import time

    m = Masker(["Chris Curtis"])
    text = "Chris Curtis " + "A" * 1_000_000 + " mail x.y@example.com " + "b" * 500_000 + "@"
    start = time.perf_counter()
    out = m(text)
    assert time.perf_counter() - start < 15
    assert out.startswith("C*** C*** ") and "x***@e***.com" in out and "x.y@example.com" not in out


def test_a_known_value_equal_to_a_schema_key_does_not_break_the_summary_structure():
    from privaudit.masking import Masker, mask_tree

    estimate = {"value": 0.0, "low": 0.0, "high": 0.03, "n": 100, "method": "wilson", "low income": "low"}
    masked = mask_tree({"metrics": {"rate": estimate}}, Masker(known_values=["low"]))
    assert set(masked["metrics"]["rate"]) >= {"value", "low", "high", "n", "method"}
    assert "low income" not in masked["metrics"]["rate"]  # other keys and values are still masked
    assert "low" not in masked["metrics"]["rate"].values()
