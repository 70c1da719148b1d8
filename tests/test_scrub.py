"""Presidio scrubbing of a training corpus: spans removed per entity type, known values that survive."""

from __future__ import annotations

from privaudit.data.subjects import DataSubject
from privaudit.defenses.scrub import ScrubConfig, scrub_texts, surviving_values

JANE = DataSubject(id="s1", name="Jane Roe", email="jane.roe@example.com", phone="(415) 555-0134",
                   extra={"employer": "Quillfeather Analytics"})
TEXTS = [
    "Reach Jane Roe at jane.roe@example.com or (415) 555-0134. She works at Quillfeather Analytics.",
    "Reach Jane Roe at jane.roe@example.com or (415) 555-0134. She works at Quillfeather Analytics.",
    "Invoices go to billing@acme-widgets.org, nowhere else.",
]


def test_scrub_counts_removed_spans_per_entity_type_with_repeats() -> None:
    result = scrub_texts(TEXTS, [JANE], ScrubConfig())
    assert result.report.removed["EMAIL_ADDRESS"] == 3  # two copies of one document plus one other email
    assert result.report.removed["PHONE_NUMBER"] == 2
    assert all("jane.roe@example.com" not in t and "555-0134" not in t for t in result.texts)
    assert "<EMAIL_ADDRESS>" in result.texts[0] and result.texts[0] == result.texts[1]
    assert result.report.documents == 3


def test_known_values_without_a_detector_are_reported_as_surviving() -> None:
    report = scrub_texts(TEXTS, [JANE], ScrubConfig()).report
    # No pattern finds an employer name: it survives and the report says so (by field, never the value).
    assert report.surviving == {"employer": 1}
    assert report.surviving_examples == (("s1", "employer"),)
    assert report.known_values_total == 3 and report.known_values_surviving == 1
    assert "Quillfeather" not in repr(report)


def test_known_fields_add_an_exact_match_recognizer() -> None:
    result = scrub_texts(TEXTS, [JANE], ScrubConfig(known_fields=("employer", "name")))
    assert result.report.known_values_surviving == 0
    assert "Quillfeather" not in result.texts[0] and "Jane Roe" not in result.texts[0]


def test_mask_operator_keeps_no_digits_of_the_phone() -> None:
    result = scrub_texts(TEXTS[:1], [JANE], ScrubConfig(operator="mask", entities=("PHONE_NUMBER",)))
    assert "555-0134" not in result.texts[0] and "jane.roe@example.com" in result.texts[0]
    assert set(result.report.removed) == {"PHONE_NUMBER"}


def test_surviving_values_ignores_values_absent_before_scrubbing() -> None:
    present, surviving, examples = surviving_values(["no pii here"], ["no pii here"], [JANE])
    assert (present, dict(surviving), examples) == (0, {}, [])
