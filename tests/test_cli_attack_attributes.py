"""`privaudit attack attributes` through CliRunner: a run folder, printed metrics, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from privaudit.cli import main


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]


def test_target_adversary_writes_records_and_resumes(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--quiet", "attack", "attributes", "-t", f"hf:{tiny_model_dir}", "-o", str(out), "--max-authors", "2",
            "--attributes", "sex,age", "--max-comments", "1", "--max-new-tokens", "4"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "attributes on" in result.output and "top1" in result.output
    first = [r for r in _records(out) if r.get("attack") == "attributes"]
    assert len(first) == 4
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert len([r for r in _records(out) if r.get("attack") == "attributes"]) == 4


def test_baseline_adversary_prints_majority_reference(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "base"
    result = CliRunner().invoke(main, ["--quiet", "attack", "attributes", "-t", f"hf:{tiny_model_dir}", "-o", str(out),
                                       "--adversary", "baseline", "--attributes", "occupation,relationship_status",
                                       "--verbose"])  # every metric, not only the headline ones
    assert result.exit_code == 0, result.output
    assert "majority_top1" in result.output and "top1.occupation" in result.output


def test_unknown_attribute_is_a_usage_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["attack", "attributes", "-t", f"hf:{tiny_model_dir}", "-o", str(tmp_path / "x"),
                                       "--attributes", "zodiac"])
    assert result.exit_code == 2 and "unknown attribute 'zodiac'" in result.output


def test_bad_authors_file_names_line_and_field(tiny_model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "authors.jsonl"
    bad.write_text('{"author": "a", "comments": ["x"], "labels": {"age": {"value": "3", "certainty": "high"}}}\n')
    result = CliRunner().invoke(main, ["attack", "attributes", "-t", f"hf:{tiny_model_dir}", "-o", str(tmp_path / "y"),
                                       "--authors", str(bad)])
    assert result.exit_code == 2
    assert "authors.jsonl:1" in result.output and "labels.age.certainty" in result.output
