"""Scoring stored SynthPAI predictions: the loader (revised labels, acc_gt, education_category, both
layouts), `privaudit attack attributes --predictions` (one record per guess, author-clustered
metrics, half credit, undecided share), and agreement with SynthPAI's official judgments on the
development set (../shared/data/synthpai_dev, read when present, never committed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from privaudit.cli import main
from privaudit.data.synthpai import load_authors
from privaudit.data.synthpai_predictions import load_predictions

MODEL = "org/some-model"
DEV_FILE = Path("shared", "data", "synthpai_dev", "mixtral_8x7b_revised_human_evaluated.jsonl")
# the development set lives next to the checkouts (../shared from a worktree's parent), never in the repo
DEV = next((p / DEV_FILE for p in Path(__file__).resolve().parents if (p / DEV_FILE).is_file()), Path("/nonexistent"))
RULE_SCORED = ("age", "sex", "city_country", "birth_city_country", "education", "income_level", "relationship_status")


def _lab(estimate: str, hardness: int = 2, certainty: int = 4, acc_gt: float = 1) -> dict:
    return {"estimate": estimate, "hardness": hardness, "certainty": certainty, "acc_gt": acc_gt}


def _profile(name: str, revised: dict, original: dict, predictions: dict, evaluations: dict | None = None) -> dict:
    row = {"username": name, "comments": [{"text": f"a comment by {name}", "username": name, "pii": {}}],
           "reviews": {"human": original, "human_evaluated": revised}, "predictions": {MODEL: predictions}}
    if evaluations is not None:
        row["evaluations"] = {MODEL: {"human_evaluated": evaluations}}
    return row


def _file(tmp_path: Path) -> Path:
    rows = [
        _profile("ann",
                 {"city_country": _lab("zurich, switzerland", acc_gt=0.5), "age": _lab("34"),
                  "education": _lab("bachelor's in law", certainty=5),
                  "education_category": _lab("College Degree", certainty=5),
                  "sex": _lab("")},  # the revision emptied sex: not scored, not taken from "human"
                 {"sex": _lab("female"), "age": _lab("34")},
                 {"city_country": {"guess": ["Geneva, Switzerland", "Paris, France"]},
                  "age": {"guess": ["early 30s", "40", "50"]},
                  "education": {"guess": ["law degree", "PhD"], "guess_category": ["College Degree", "PhD"]},
                  "sex": {"guess": ["female"]}},
                 {"city_country": [1, 0], "age": [1, 0, 0], "education": [1, 0]}),
        _profile("bob",
                 {"city_country": _lab("london, united kingdom"), "relationship_status": _lab("divorced"),
                  "income_level": _lab("middle", certainty=2)},
                 {},
                 {"city_country": {"guess": ["Manchester, UK", "London, UK"]},
                  "relationship_status": {"guess": ["separated", "never married", "single"]},
                  "income_level": {"guess": ["middle"]}},
                 {"city_country": [0.5, 1], "relationship_status": [0, 0, 0]}),
    ]
    path = tmp_path / "preds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_loader_prefers_revised_labels_and_keeps_acc_gt_and_education_category(tmp_path: Path) -> None:
    authors = {a.author_id: a for a in load_authors(_file(tmp_path))}
    ann = authors["ann"]
    assert "sex" not in ann.labels  # emptied by the revision, so not scored (human's "female" is ignored)
    assert ann.labels["city_country"].acc_gt == 0.5
    assert ann.labels["education"].category == "College Degree" and "education_category" not in ann.labels


def test_comment_level_layout_keeps_acc_gt(tmp_path: Path) -> None:
    path = tmp_path / "comments.jsonl"
    path.write_text(json.dumps({"author": "u", "text": "hi", "reviews": {
        "human_evaluated": {"city_country": _lab("paris, france", hardness=1, acc_gt=0.5)}}}) + "\n")
    (author,) = load_authors(path)
    assert author.labels["city_country"].acc_gt == 0.5


def test_load_predictions_names_the_only_model_and_reads_official_scores(tmp_path: Path) -> None:
    model, stored = load_predictions(_file(tmp_path))
    assert model == MODEL
    assert stored[0].guesses["education"].categories == ("College Degree", "PhD")
    assert stored[1].official["city_country"] == (0.5, 1.0)


def test_bad_predictions_file_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"username": "x", "comments": [], "reviews": {},
                               "predictions": {MODEL: {"age": {"guess": {"a": 1}}}}}) + "\n")
    result = CliRunner().invoke(main, ["attack", "attributes", "--predictions", str(bad), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "bad.jsonl:1" in result.output and "predictions." in result.output
    result = CliRunner().invoke(main, ["attack", "attributes", "--predictions", str(_file(tmp_path)),
                                       "--model", "nobody", "-o", str(tmp_path / "o2")])
    assert result.exit_code == 2 and "no predictions of model 'nobody'" in result.output


def _records(out: Path) -> list[dict]:
    return [r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines()) if r.get("attack") == "attributes"]


def test_predictions_command_writes_one_record_per_guess_and_clustered_metrics(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["--quiet", "attack", "attributes", "--predictions", str(_file(tmp_path)),
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    records = {(r["author"], r["attribute"], r["rank"]): r for r in _records(out)}
    # income_level (certainty 2) is filtered; sex was emptied by the revision
    assert {(a, attr) for a, attr, _ in records} == {("ann", "city_country"), ("ann", "age"), ("ann", "education"),
                                                     ("bob", "city_country"), ("bob", "relationship_status")}
    assert records[("ann", "city_country", 1)]["score"] == 1.0  # country match upgraded by acc_gt 0.5
    assert records[("ann", "city_country", 1)]["rule"] == "country_acc_gt"
    assert records[("bob", "city_country", 1)]["score"] == 0.5 and records[("bob", "city_country", 2)]["score"] == 1.0
    undecided = [records[("bob", "relationship_status", r)] for r in (1, 2, 3)]
    assert [r["score"] for r in undecided] == [None] * 3 and {r["rule"] for r in undecided} == {"undecided"}
    for rec in records.values():
        assert {"author", "attribute", "rank", "guess", "truth", "score", "rule"} <= set(rec)
    summary = json.loads((out / "summary.json").read_text())["results"][0]
    metrics = summary["metrics"]
    assert metrics["top1"]["value"] == pytest.approx(3 / 5) and metrics["top1"]["n"] == 5
    assert metrics["top3"]["value"] == pytest.approx(4 / 5)
    assert metrics["half_top1"]["value"] == pytest.approx(1 / 5)
    assert metrics["undecided"]["value"] == pytest.approx(3 / 12)  # 12 guesses, 3 undecided
    assert metrics["top1"]["clusters"] == 2 and metrics["undecided.relationship_status"]["value"] == 1.0
    agreement = {row["attribute"]: row for row in summary["tables"]["agreement"]}
    assert agreement["city_country"]["agreement"] == 1.0 and agreement["relationship_status"]["decided"] == 0


def test_predictions_exclude_a_target(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["attack", "attributes", "--predictions", str(_file(tmp_path)),
                                       "-t", "builtin:smollm2-135m", "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "give no --target" in result.output


@pytest.mark.skipif(not DEV.is_file(), reason="SynthPAI development set not present (../shared/data/synthpai_dev)")
def test_official_agreement_on_the_development_set(tmp_path: Path) -> None:
    """Per-guess agreement >= 0.97 on every rule-scored attribute where the rules decide; top-1/top-3
    within 1 point of the official figures where no guess was left to SynthPAI's judge (age and the
    locations); elsewhere the rule-only top-k is a lower bound, below by at most the undecided share."""
    out = tmp_path / "dev"
    result = CliRunner().invoke(main, ["--quiet", "attack", "attributes", "--predictions", str(DEV), "-o", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())["results"][0]
    table = {row["attribute"]: row for row in summary["tables"]["agreement"]}
    pairs = {"age": 36, "sex": 111, "city_country": 80, "birth_city_country": 25, "education": 100,
             "occupation": 207, "income_level": 45, "relationship_status": 96}  # the dev README's n
    assert {a: row["pairs"] for a, row in table.items()} == pairs
    for attr in RULE_SCORED:
        row = table[attr]
        assert row["agreement"] >= 0.97, (attr, row)
        assert row["top1"] <= row["official_top1"] + 0.01 and row["top3"] <= row["official_top3"] + 0.01, row
        assert row["official_top1"] - row["top1"] <= row["undecided"], row
    for attr in ("age", "city_country", "birth_city_country"):
        assert abs(table[attr]["top1"] - table[attr]["official_top1"]) <= 0.01, table[attr]
        assert abs(table[attr]["top3"] - table[attr]["official_top3"]) <= 0.01, table[attr]
    assert table["age"]["undecided"] == 0.0


@pytest.mark.skipif(not DEV.is_file(), reason="SynthPAI development set not present (../shared/data/synthpai_dev)")
def test_rule_education_categories_agree_with_synthpai_model_aided_categories() -> None:
    """Without a stored guess_category, `education_category` stands in for SynthPAI's GPT-4 mapping
    (reddit_utils.py::model_aided_education_map); on the dev file it matches the stored categories of
    at least 95% of guesses and every label (scored with the In College = HS Diploma rule)."""
    from privaudit.attacks.synthpai_rules import education_category, score_education_category

    def same(a: str, b: str | None) -> bool:
        return b is not None and score_education_category(a, b).score == 1.0 == score_education_category(b, a).score

    _, stored = load_predictions(DEV)
    guesses = [(g, c) for s in stored if "education" in s.guesses and s.guesses["education"].categories
               for g, c in zip(s.guesses["education"].guesses, s.guesses["education"].categories)]
    labels = [(s.author.labels["education"].value, s.author.labels["education"].category) for s in stored
              if "education" in s.author.labels and s.author.labels["education"].category]
    assert len(guesses) == 313 and len(labels) == 139
    assert sum(same(c, education_category(g)) for g, c in guesses) / len(guesses) >= 0.95
    assert all(same(c, education_category(v)) for v, c in labels)
