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


def test_demo_finetune_fails_the_demo_pii_threshold_at_the_subject_field_unit(memorized_setup, tmp_path):
    """Issue 14's Must-show: the demo's fine-tune leaks ~12% of (subject, field) pairs verbatim, so
    the demo's own `pii.exact_match_rate <= 0.05` fails through `privaudit run --gate`.

    The old headline counted the 27 probes of each subject as independent trials: 14 hits in 540
    probes, Wilson upper ~0.043, which passed the same threshold. Checked below from the records.
    """
    import tomli_w

    from privaudit.demo import DEMO_THRESHOLDS, DemoOptions, demo_spec
    from privaudit.metrics import clustered_proportion, proportion

    s = memorized_setup
    demo = demo_spec(DemoOptions(out=tmp_path, builtin=False), s.base_spec, s.finetuned_spec, s.subjects_path,
                     s.corpus_path)
    pii = {**demo.attacks["pii"], "targets": [s.finetuned_spec]}  # the demo's pii table, on the fine-tune
    key = "pii.exact_match_rate"
    spec = tmp_path / "audit.toml"
    spec.write_text(tomli_w.dumps({"targets": [s.finetuned_spec], "out": str(tmp_path / "run"), "seed": demo.seed,
                                   "attacks": {"pii": pii}, "thresholds": {key: DEMO_THRESHOLDS[key]}}))

    result = _run("run", str(spec), "--gate")

    assert result.exit_code == 1, result.output
    assert any(line.startswith("FAIL") and key in line for line in result.output.splitlines()), result.output
    (res,) = json.loads((tmp_path / "run" / "summary.json").read_text())["results"]
    headline = res["metrics"]["exact_match_rate"]
    records = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    probes = [r for r in records if r.get("kind") == "extract"]
    pairs: dict[tuple[str, str], bool] = {}
    for r in probes:
        pairs[(r["subject_id"], r["pii_type"])] = pairs.get((r["subject_id"], r["pii_type"]), False) or r["exact"]
    expected = clustered_proportion(list(pairs.values()), [sid for sid, _ in pairs])
    assert headline["value"] == pytest.approx(expected.value) and headline["high"] == pytest.approx(expected.high)
    assert headline["n"] == len(pairs) == 5 * len(s.subjects) and headline["clusters"] == len(s.subjects)
    assert (headline["unit"], headline["cluster"]) == ("subject_field", "subject")
    assert 0.05 < headline["value"] < headline["high"]
    old = proportion(sum(r["exact"] for r in probes), len(probes))  # the pre-issue-14 headline
    assert old.high <= 0.05 < headline["high"]
