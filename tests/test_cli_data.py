"""`privaudit data subjects|corpus|validate` through Click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from privaudit.cli import main
from privaudit.data.corpus import load_corpus
from privaudit.data.subjects import load_subjects


def _run(*args: str) -> "object":
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture()
def subjects_file(tmp_path: Path) -> Path:
    out = tmp_path / "subjects.jsonl"
    result = _run("data", "subjects", "--n", "30", "--seed", "0", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"wrote 30 subjects to {out}" in result.output
    return out


def test_subjects_command_writes_the_same_file_for_the_same_seed(tmp_path: Path, subjects_file: Path) -> None:
    again = tmp_path / "again.jsonl"
    _run("data", "subjects", "--n", "30", "--seed", "0", "--out", str(again))
    other = tmp_path / "other.jsonl"
    _run("data", "subjects", "--n", "30", "--seed", "1", "--out", str(other))
    assert again.read_bytes() == subjects_file.read_bytes() != other.read_bytes()
    assert len(load_subjects(subjects_file)) == 30
    assert (subjects_file.stat().st_mode & 0o777) == 0o600


def test_corpus_command_plants_canaries_and_repeats(tmp_path: Path, subjects_file: Path) -> None:
    out = tmp_path / "corpus.jsonl"
    result = _run("data", "corpus", "--subjects", str(subjects_file), "--repeats", "5", "--canaries", "1,4,16",
                  "--seed", "0", "--filler-docs", "5", "--out", str(out))
    assert result.exit_code == 0, result.output
    corpus = load_corpus(out)
    assert [c.repeats for c in corpus.canaries] == [1, 4, 16]
    assert {corpus.repeats_of(s) for s in corpus.train_subject_ids()} == {5}
    assert len(corpus.heldout_subject_ids()) == 6
    assert "6 held-out subjects, 3 canaries" in result.output


def test_corpus_command_spreads_repeat_levels_over_subjects(tmp_path: Path, subjects_file: Path) -> None:
    out = tmp_path / "corpus.jsonl"
    result = _run("data", "corpus", "--subjects", str(subjects_file), "--repeats", "1,8", "--out", str(out))
    assert result.exit_code == 0, result.output
    corpus = load_corpus(out)
    assert {corpus.repeats_of(s) for s in corpus.train_subject_ids()} == {1, 8}


def test_validate_prints_counts_for_subjects_and_corpus(tmp_path: Path, subjects_file: Path) -> None:
    result = _run("data", "validate", str(subjects_file))
    assert result.exit_code == 0
    assert "valid subjects: 30 subjects (email 30, phone 30, address 30, birthdate 30, employer 30)" in result.output
    corpus_file = tmp_path / "corpus.jsonl"
    _run("data", "corpus", "--subjects", str(subjects_file), "--out", str(corpus_file))
    result = _run("data", "validate", str(corpus_file))
    assert result.exit_code == 0 and "valid corpus: 110 documents" in result.output


@pytest.mark.parametrize("content, message", [
    ('{"id": "a", "name": "A"}\n{"id": "a", "name": "B"}\n', "bad.jsonl:2: field 'id': duplicate id 'a' (first on line 1)"),
    ('{"id": "a", "name": "A", "email": ""}\n', "bad.jsonl:1: field 'email': empty value"),
    ('{"id": "a", "name": "A"}\n{"id": \n', "bad.jsonl:2: invalid JSON"),
    ("", "bad.jsonl: empty file"),
    ('{"record": "document", "id": "d", "kind": "x", "split": "train", "text": "t"}\n',
     "bad.jsonl:1: field 'kind': expected one of"),
])
def test_validate_bad_file_prints_one_line_and_exits_2(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, "utf-8")
    result = _run("data", "validate", str(path))
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


@pytest.mark.parametrize("args, message", [
    (["--repeats", "1,x"], "--repeats: expected comma-separated integers"),
    (["--repeats", "0"], "--repeats: expected integers >= 1"),
    (["--canaries", "4,-1"], "--canaries: expected integers >= 0"),
])
def test_corpus_bad_options_exit_2(tmp_path: Path, subjects_file: Path, args: list[str], message: str) -> None:
    result = _run("data", "corpus", "--subjects", str(subjects_file), "--out", str(tmp_path / "c.jsonl"), *args)
    assert result.exit_code == 2 and message in result.stderr


def test_corpus_with_missing_subjects_file_exits_2(tmp_path: Path) -> None:
    result = _run("data", "corpus", "--subjects", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "c.jsonl"))
    assert result.exit_code == 2 and "none.jsonl: no such file" in result.stderr
    assert not (tmp_path / "c.jsonl").exists()
