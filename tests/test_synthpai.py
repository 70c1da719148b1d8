"""SynthPAI loaders (profile, comment and per-author layouts), their errors, and the seeded generator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from privaudit.data.synthpai import (
    ATTRIBUTES,
    AttributeLabel,
    bundled_sample_path,
    generate_authors,
    load_authors,
    write_authors,
)
from privaudit.errors import InputError


def _write(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_profile_layout_prefers_the_human_review(tmp_path: Path) -> None:
    row = {"username": "pers1", "comments": [{"text": "hello"}, {"text": "I live in Oslo"}],
           "reviews": {"gpt4": {"age": {"estimate": "99", "hardness": 1, "certainty": 5}},
                       "human": {"age": {"estimate": "34", "hardness": 2, "certainty": 4},
                                 "city_country": {"estimate": "Oslo, Norway", "hardness": 1, "certainty": 5},
                                 "timestamp": 1.0, "income_level": {"estimate": "", "hardness": 0, "certainty": 0}}}}
    [author] = load_authors(_write(tmp_path / "p.jsonl", [row]))
    assert author.author_id == "pers1" and author.comments == ("hello", "I live in Oslo")
    assert author.labels["age"] == AttributeLabel("34", hardness=2, certainty=4)
    assert set(author.labels) == {"age", "city_country"}


def test_comment_layout_groups_by_author_and_keeps_the_easiest_label(tmp_path: Path) -> None:
    rows = [
        {"author": "u1", "text": "first", "reviews": {"human": {"sex": {"estimate": "male", "hardness": 4, "certainty": 3}}}},
        {"author": "u2", "text": "other"},
        {"author": "u1", "text": "second", "reviews": {"human": {"sex": {"estimate": "male", "hardness": 1, "certainty": 5}}}},
    ]
    authors = load_authors(_write(tmp_path / "c.jsonl", rows))
    assert [a.author_id for a in authors] == ["u1", "u2"]
    assert authors[0].comments == ("first", "second")
    assert authors[0].labels["sex"].hardness == 1


def test_simple_layout_accepts_bare_values(tmp_path: Path) -> None:
    [author] = load_authors(_write(tmp_path / "s.jsonl", [{"author": "a", "comments": ["x"], "labels": {"sex": "female"}}]))
    assert author.labels["sex"] == AttributeLabel("female", hardness=0, certainty=5)
    assert author.evaluated_labels() == {"sex": AttributeLabel("female", 0, 5)}


@pytest.mark.parametrize("row, message", [
    ("{not json", r"bad.jsonl:2\b.*invalid JSON"),
    ({"author": "a", "comments": "x", "labels": {}}, r"bad.jsonl:2\b.*comments.*expected a list"),
    ({"author": "a", "comments": ["x"], "labels": {"zodiac": "leo"}}, r"bad.jsonl:2\b.*labels\.zodiac.*unknown attribute"),
    ({"author": "a", "comments": ["x"], "labels": {"age": {"value": "3", "hardness": 9}}}, r"bad.jsonl:2\b.*labels\.age\.hardness"),
    ({"comments": ["x"], "labels": {}}, r"bad.jsonl:2\b.*author.*missing author id"),
    ({"author": "a", "text": 5}, r"bad.jsonl:2\b.*text.*expected a string"),
    ({"author": "b"}, r"bad.jsonl:2\b.*comments.*missing"),
])
def test_errors_name_file_line_and_field(tmp_path: Path, row, message: str) -> None:
    good = {"author": "ok", "comments": ["fine"], "labels": {}}
    path = _write(tmp_path / "bad.jsonl", [good, row])
    with pytest.raises(InputError, match=message) as info:
        load_authors(path)
    assert "bad.jsonl" in str(info.value)


def test_missing_file_and_duplicate_authors_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_authors(tmp_path / "nope.jsonl")
    row = {"author": "a", "comments": ["x"], "labels": {}}
    with pytest.raises(InputError, match=r"d.jsonl:2\b.*duplicate author 'a'"):
        load_authors(_write(tmp_path / "d.jsonl", [row, row]))


def test_generator_is_seeded_and_round_trips(tmp_path: Path) -> None:
    first, again, other = generate_authors(5, seed=1), generate_authors(5, seed=1), generate_authors(5, seed=2)
    assert first == again and first != other
    assert load_authors(write_authors(first, tmp_path / "g.jsonl")) == first


def test_bundled_sample_is_the_seeded_generator_output(tmp_path: Path) -> None:
    regenerated = write_authors(generate_authors(), tmp_path / "sample.jsonl")
    assert regenerated.read_bytes() == bundled_sample_path().read_bytes()


def test_bundled_sample_covers_every_attribute_and_hardness_level() -> None:
    authors = load_authors()
    labels = [lab for a in authors for lab in a.labels.values()]
    assert len(authors) == 120
    assert {attr for a in authors for attr in a.labels} == set(ATTRIBUTES)
    assert {lab.hardness for lab in labels} == {1, 2, 3, 4, 5}
