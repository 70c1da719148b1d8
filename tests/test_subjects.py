"""Data-subject schema validation (errors name FILE:LINE: field) and the seeded Faker generator."""

from __future__ import annotations

import json
import re
from pathlib import Path

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privaudit.data.subjects import (
    MAX_FIELD_CHARS, DataSubject, generate_subjects, load_subjects, subject_from_mapping, write_subjects,
)
from privaudit.errors import InputError

GOOD = {"id": "s1", "name": "Jane Roe", "email": "jroe88@mail.com", "phone": "(555) 201-3344",
        "address": "12 Oak St, Springfield, IL 62704"}


def _jsonl(tmp_path: Path, *rows: object) -> Path:
    path = tmp_path / "subjects.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), "utf-8")
    return path


def test_loads_valid_subjects_with_extra_fields(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, {**GOOD, "ssn": "123-45-6789"}, {"id": "s2", "name": "Al Bo", "phone": None})
    a, b = load_subjects(path)
    assert a.email == "jroe88@mail.com" and a.extra == {"ssn": "123-45-6789"}
    assert a.pii_fields() == {"email": "jroe88@mail.com", "phone": "(555) 201-3344",
                              "address": "12 Oak St, Springfield, IL 62704", "ssn": "123-45-6789"}
    assert b.phone is None and b.pii_fields() == {}


def test_pii_fields_excludes_id_and_name() -> None:
    s = DataSubject(id="x", name="Jane Roe", email="j@x.org", extra={"employer": "Acme"})
    assert s.pii_fields() == {"email": "j@x.org", "employer": "Acme"}


@pytest.mark.parametrize("row, message", [
    ({"name": "Jane"}, r":2: field 'id': required field is missing"),
    ({"id": "s9"}, r":2: field 'name': required field is missing"),
    ({"id": 7, "name": "Jane"}, r":2: field 'id': expected a string, got number"),
    ({**GOOD, "id": "s9", "email": ["a@b.c"]}, r":2: field 'email': expected a string, got array"),
    ({**GOOD, "id": "s9", "phone": ""}, r":2: field 'phone': empty value"),
    ({**GOOD, "id": "s9", "address": "   "}, r":2: field 'address': empty value"),
    ({**GOOD, "id": "s9", "employer": 3}, r":2: field 'employer': expected a string, got number"),
    ({**GOOD, "id": "s9", "ssn": None}, r":2: field 'ssn': expected a string, got null"),
    ({**GOOD, "id": "s9", "name": "x" * (MAX_FIELD_CHARS + 1)}, r":2: field 'name': value too long"),
    ({**GOOD, "id": "s9", "bad key!": "v"}, r":2: field 'bad key!': field names must be identifiers"),
    ({**GOOD, "id": "s9", "name": "\ud800"}, r":2: field 'name': value holds an unpaired surrogate"),
])
def test_bad_field_names_file_line_and_field(tmp_path: Path, row: dict, message: str) -> None:
    path = _jsonl(tmp_path, GOOD, row)
    with pytest.raises(InputError, match=r"subjects\.jsonl" + message):
        load_subjects(path)


def test_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, GOOD, {"id": "s2", "name": "B"}, "", {**GOOD, "name": "Other"})
    with pytest.raises(InputError, match=r"subjects\.jsonl:4: field 'id': duplicate id 's1' \(first on line 1\)"):
        load_subjects(path)


@pytest.mark.parametrize("content, message", [
    (None, "no such file"), (b"", "empty file"), (b'{"id": "caf\xe9"}\n', ":1: not UTF-8"),
    (b'{"id": "a", "name": "b"}\n{oops}\n', ":2: invalid JSON"),
])
def test_unreadable_files_are_input_errors(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "subjects.jsonl"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=re.escape(message)):
        load_subjects(path)


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    subjects = generate_subjects(25, seed=3)
    write_subjects(tmp_path / "s.jsonl", subjects)
    assert load_subjects(tmp_path / "s.jsonl") == subjects


def test_generator_is_deterministic_per_seed() -> None:
    assert generate_subjects(40, seed=7) == generate_subjects(40, seed=7)
    assert generate_subjects(40, seed=7) != generate_subjects(40, seed=8)


def test_generated_subjects_are_complete_unique_and_well_formed() -> None:
    subjects = generate_subjects(300, seed=0)
    assert len({s.id for s in subjects}) == len({s.name for s in subjects}) == len({s.email for s in subjects}) == 300
    for s in subjects:
        assert set(s.pii_fields()) == {"email", "phone", "address", "birthdate", "employer"}
        assert re.fullmatch(r"[a-z0-9._]+@[a-z0-9.\-]+\.[a-z]+", s.email)
        assert re.fullmatch(r"\(\d{3}\) \d{3}-\d{4}", s.phone)
        assert phonenumbers.is_valid_number(phonenumbers.parse(s.phone, "US")), s.phone
        assert "\n" not in s.address and re.search(r", [A-Z]{2} \d{5}$", s.address), s.address
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", s.extra["birthdate"])


def test_generated_emails_vary_in_pattern_and_domain() -> None:
    subjects = generate_subjects(200, seed=1)
    domains = {s.email.split("@")[1] for s in subjects}
    trivially_predictable = sum(
        s.email.split("@")[0] == s.name.lower().replace(" ", ".") and s.email.endswith("@gmail.com") for s in subjects)
    assert len(domains) > 20
    assert trivially_predictable < 10
    # Derived from the name: the mailbox shares letters with the first or last name.
    assert sum(any(p.lower()[:3] in s.email for p in s.name.split()) for s in subjects) > 180


def test_generator_rejects_negative_n_and_unknown_locale() -> None:
    with pytest.raises(InputError):
        generate_subjects(-1)
    with pytest.raises(InputError, match="locale"):
        generate_subjects(2, locale="xx_NOPE")


field_values = st.none() | st.booleans() | st.integers() | st.text(max_size=30) | st.lists(st.text(max_size=3), max_size=2)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.dictionaries(
    st.sampled_from(["id", "name", "email", "phone", "address", "ssn", "", "bad key"]) | st.text(max_size=8),
    field_values, max_size=6), min_size=0, max_size=4))
def test_fuzzed_subject_files_load_or_raise_input_error_only(tmp_path: Path, rows: list[dict]) -> None:
    path = tmp_path / "fuzz.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    try:
        subjects = load_subjects(path)
    except InputError as exc:
        assert "fuzz.jsonl" in str(exc) and "\n" not in str(exc)
        return
    assert len({s.id for s in subjects}) == len(subjects)
    assert all(isinstance(v, str) and v for s in subjects for v in s.pii_fields().values())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_fuzzed_bytes_never_raise_anything_but_input_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bytes.jsonl"
    path.write_bytes(data)
    try:
        load_subjects(path)
    except InputError:
        pass


def test_subject_from_mapping_without_file_uses_placeholder_location() -> None:
    with pytest.raises(InputError, match=r"<subjects>: field 'name'"):
        subject_from_mapping({"id": "a"})


def test_a_control_character_in_a_field_name_is_escaped_and_the_error_stays_one_line(tmp_path):
    path = tmp_path / "subjects.jsonl"
    path.write_text('{"\\n": null, "id": "s1", "name": "Ann Lee"}\n', encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_subjects(path)
    message = str(err.value)
    assert "\n" not in message and "field '\\n'" in message and f"{path}:1" in message
