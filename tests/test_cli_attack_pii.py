"""`privaudit attack pii` through Click's CliRunner: the data-subject view, masking, resume, exit codes."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from privaudit.cli import main


def _run(*args: str):
    return CliRunner().invoke(main, ["--quiet", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def leaked_subject(memorized_setup):
    """A training subject (its email was in the fine-tuning corpus)."""
    by_id = {s.id: s for s in memorized_setup.subjects}
    return by_id[memorized_setup.train_subject_ids[0]]


def test_subject_view_prints_what_the_model_leaks_masked_by_default(memorized_setup, leaked_subject, tmp_path):
    out = tmp_path / "run"
    args = ["attack", "pii", "--target", memorized_setup.finetuned_spec, "--subjects",
            str(memorized_setup.subjects_path), "--subject", leaked_subject.id, "--pii-type", "email",
            "--level", "1", "--max-new-tokens", "24", "--likelihood", "--candidates", "5", "--out", str(out)]
    result = _run(*args)
    assert result.exit_code == 0, result.output
    assert f"leaks about" in result.output and f"({leaked_subject.id})" in result.output
    assert "exact_match_rate" in result.output and "likelihood rank" in result.output
    assert leaked_subject.email not in result.output and leaked_subject.name not in result.output

    summary = json.loads((out / "summary.json").read_text())
    (res,) = summary["results"]
    rows = res["tables"]["per_subject"]
    assert [r["subject_id"] for r in rows] == [leaked_subject.id]
    assert leaked_subject.email not in json.dumps(summary)
    html = (out / "report.html").read_text()
    assert leaked_subject.id in html and leaked_subject.email not in html

    lines = (out / "results.jsonl").read_text().count("\n")
    again = _run(*args)  # resume into the same folder: nothing recomputed, same answer
    assert again.exit_code == 0 and (out / "results.jsonl").read_text().count("\n") == lines

    shown = _run(*args, "--show-pii", "--out", str(tmp_path / "shown"))
    assert shown.exit_code == 0 and leaked_subject.name in shown.output


def test_unknown_subject_and_bad_subjects_file_exit_2(memorized_setup, tmp_path):
    missing = _run("attack", "pii", "--target", memorized_setup.base_spec, "--subjects",
                   str(memorized_setup.subjects_path), "--subject", "nobody", "--out", str(tmp_path / "a"))
    assert missing.exit_code == 2 and "nobody" in missing.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "name": "X", "email": 5}\n')
    result = _run("attack", "pii", "--target", memorized_setup.base_spec, "--subjects", str(bad),
                  "--out", str(tmp_path / "b"))
    assert result.exit_code == 2 and "bad.jsonl:1" in result.output and "email" in result.output
