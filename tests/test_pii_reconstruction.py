"""The reconstruct attack: ranking on a real character model, the CLI on a tiny real LM, refusal, compare."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from privaudit.attacks.base import RunContext, get_attack
from privaudit.attacks.reconstruction_probes import MASK, sentence_score
from privaudit.cli import main
from privaudit.data.corpus import generate_corpus
from privaudit.data.subjects import generate_subjects, write_subjects
from privaudit.engine.store import RunStore


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Six subjects, a small corpus mentioning them, and masked e-mail templates for three of them."""
    root = tmp_path_factory.mktemp("reconstruct")
    subjects = generate_subjects(6, seed=3)
    write_subjects(root / "subjects.jsonl", subjects)
    generate_corpus(subjects, repeats=1, seed=3, heldout_subject_fraction=0.0, docs_per_subject=2,
                    filler_docs=2).write(root / "corpus.jsonl")
    rows = [{"subject_id": s.id, "pii_type": "email", "template": f"You can write to {s.name} at {MASK} any time."}
            for s in subjects[:3]]
    (root / "masked.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return {"root": root, "subjects": root / "subjects.jsonl", "corpus": root / "corpus.jsonl",
            "templates": root / "masked.jsonl", "list": subjects}


def test_inference_ranks_each_candidate_by_the_whole_filled_sentence(people, tmp_path: Path) -> None:
    """On a real (character bigram) LM that read the true sentences, the records' ranks equal a direct
    computation: 1 + the candidates whose filled-in sentence scores at least the truth's."""
    from reliability.char_target import CharBigramTarget

    truths = {s.id: s.email for s in people["list"][:3]}
    text = " ".join(f"You can write to {s.name} at {s.email} any time." for s in people["list"][:3])
    target = CharBigramTarget(corpus=text * 3)
    attack = get_attack("reconstruct").from_config(
        {"subjects": str(people["subjects"]), "templates_file": str(people["templates"]), "parts": ["inference"],
         "num_candidates": 7}, "test")
    with RunStore(tmp_path / "run") as store:
        result = attack.run(target, RunContext(store=store, seed=0))
    records = result.records
    assert len(records) == 3 and set(records["kind"]) == {"inference"}
    candidates = attack._candidate_sets(attack.sentences(), people["list"], 0)
    for _, rec in records.iterrows():
        assert rec["truth"] == truths[rec["subject_id"]] and rec["num_candidates"] == 8
        [key] = [k for k in candidates if k.startswith(f"{rec['subject_id']}|email|")]
        direct = {v: sentence_score(target.token_logprobs([""], [rec["template"].replace(MASK, v)])[0])
                  for v in candidates[key]}
        assert len(direct) == 8 and rec["truth"] in direct
        assert rec["rank"] == 1 + sum(1 for v, sc in direct.items() if v != rec["truth"] and sc >= direct[rec["truth"]])
        shown = {c["value"]: c["score"] for c in rec["top_candidates"]}
        assert shown == pytest.approx(dict(sorted(direct.items(), key=lambda kv: -kv[1])[:5]), abs=1e-5)
    assert result.metrics["inference_top1_rate"].value == pytest.approx(float(records["top1"].mean()))
    assert result.metrics["inference_top1_rate"].clusters == 3
    assert math.isfinite(result.metrics["inference_exposure_bits.email"].value)
    assert set(result.to_summary()["metrics"]) >= {"inference_top1_rate", "inference_top5_rate.email"}


def test_cli_runs_both_parts_and_a_model_is_no_better_than_itself_as_baseline(people, tiny_model_dir, tmp_path) -> None:
    out = tmp_path / "run"
    spec = f"hf:{tiny_model_dir}"
    result = CliRunner().invoke(main, ["-q", "attack", "reconstruct", "-t", spec, "--subjects",
                                       str(people["subjects"]), "--corpus", str(people["corpus"]), "--baseline", spec,
                                       "--pii-type", "email", "--pii-type", "phone", "--candidates", "4",
                                       "--samples", "2", "--max-subjects", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    [res] = [r for r in summary["results"] if r["attack"] == "reconstruct"]
    m = res["metrics"]
    for name in ("inference_top1_rate_minus_baseline", "reconstruction_top1_rate_minus_baseline"):
        assert m[name]["value"] == 0.0 and m[name]["low"] < 0 < m[name]["high"], m[name]  # same model, same seed
    assert m["inference_top1_rate"]["value"] == m["inference_top1_rate_baseline"]["value"]
    from privaudit.attacks.reconstruction_probes import corpus_sentences
    from privaudit.data.corpus import load_corpus

    found = corpus_sentences(load_corpus(people["corpus"]), people["list"], pii_types=["email", "phone"])
    first = list(dict.fromkeys(s.subject_id for s in found))[:3]
    expected = [s for s in found if s.subject_id in first]
    assert m["inference_top1_rate"]["n"] == len(expected) >= 4  # one sentence per (subject, field) found
    assert m["inference_top1_rate"]["clusters"] == 3
    assert m["inference_top1_rate"]["headline"] and m["inference_top1_rate"]["unit"] == "sentence"
    assert {r["pii_type"] for r in res["tables"]["by_pii_type"]} == {"email", "phone"}
    assert "inference_top1_rate" in result.output
    # masked by default: no subject's true e-mail appears anywhere in the report's JSON
    text = (out / "summary.json").read_text()
    assert not any(s.email in text for s in people["list"] if s.id in first)


def test_targets_without_token_logprobs_are_refused_in_one_line(people, tiny_model_dir, tmp_path) -> None:
    spec = f"profile:{people['subjects']}:inner=hf:{tiny_model_dir}"
    result = CliRunner().invoke(main, ["-q", "attack", "reconstruct", "-t", spec, "--subjects", str(people["subjects"]),
                                       "--templates", str(people["templates"]), "--out", str(tmp_path / "r")])
    assert result.exit_code == 3, result.output
    assert "no 'token_logprobs' capability, which attack 'reconstruct" in result.output


def test_bad_input_fails_before_any_model_loads(people, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"subject_id": "nobody", "pii_type": "email", "template": MASK}) + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["-q", "attack", "reconstruct", "-t", "hf:/no/such/model", "--subjects",
                                       str(people["subjects"]), "--templates", str(bad), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "bad.jsonl:1: subject_id: no subject 'nobody'" in result.output, result.output
    both = CliRunner().invoke(main, ["-q", "attack", "reconstruct", "-t", "hf:/no/such/model", "--subjects",
                                     str(people["subjects"]), "--out", str(tmp_path / "r")])
    assert both.exit_code == 2 and "give exactly one source" in both.output, both.output


def test_evidence_shows_the_masked_sentence_and_the_ranked_candidates_with_the_truth_marked() -> None:
    import pandas as pd

    from privaudit.attacks.base import AttackResult
    from privaudit.reports.evidence import evidence_of

    rows = [{"kind": "inference", "subject_id": "s1", "pii_type": "email", "template": f"Mail Jane at {MASK}.",
             "source": "corpus:d1", "truth": "jane@x.org", "num_candidates": 20, "top1": True,
             "top_candidates": [{"value": "jane@x.org", "score": -1.0}, {"value": "bob@y.org", "score": -2.0}]},
            {"kind": "baseline_inference", "subject_id": "s2", "pii_type": "email", "template": f"Hi {MASK}.",
             "source": "corpus:d2", "truth": "bo@z.org", "num_candidates": 20, "top1": True, "top_candidates": []},
            {"kind": "inference", "subject_id": "s3", "pii_type": "phone", "template": f"Call {MASK}.",
             "source": "corpus:d3", "truth": "555-0101", "num_candidates": 20, "top1": False, "top_candidates": []}]
    [item] = evidence_of(AttackResult("reconstruct", "t", pd.DataFrame(rows), {}))  # audited top-1 hits only
    assert item["prompt"] == f"Mail Jane at {MASK}." and "ranked 1 of 20" in item["title"]
    assert [p["text"] for p in item["output"] if p["leak"]] == ["jane@x.org"]
    assert "bob@y.org" in [p["text"] for p in item["output"] if not p["leak"]]


def test_compare_gives_reconstruct_its_base_as_baseline_and_declares_its_rates(people) -> None:
    from privaudit.compare import CompareSpec, compare_metric_specs, default_attacks

    base = people["root"] / "base"  # a folder name only: nothing loads or trains here
    spec = CompareSpec(base=str(base), corpus=people["corpus"], subjects=people["subjects"],
                       attacks={"reconstruct": {"parts": ["inference"]}, "pii": {}})
    attacks = default_attacks(spec)
    assert attacks["reconstruct"]["baseline_target"] == f"hf:{base.resolve()}"
    assert attacks["reconstruct"]["corpus"] == str(Path(people["corpus"]).resolve())
    assert "baseline_target" not in attacks["pii"]  # pii's baseline stays the user's choice
    declared = compare_metric_specs(["scrub"])
    spec_of = declared.find("reconstruct.inference_top1_rate.scrub")
    assert spec_of is not None and spec_of.unit == "sentence" and spec_of.cluster == "subject"


@pytest.mark.slow
def test_compare_runs_reconstruction_on_the_scrub_variant_against_compares_base(memorized_setup, tmp_path) -> None:
    """compare passes its base as the baseline; the scrub variant's rate, the base's and the paired lift
    land in the comparison table and the compare result (cheap: one variant, one epoch, inference only)."""
    import pandas as pd
    import tomli_w

    spec = {"base": memorized_setup.base_spec, "corpus": str(memorized_setup.corpus_path),
            "subjects": str(memorized_setup.subjects_path), "out": str(tmp_path / "cmp"), "seed": 0,
            "defenses": {"scrub": {"epochs": 1, "max_length": 64, "seed": 0}},
            "attacks": {"reconstruct": {"parts": ["inference"], "pii_types": ["email", "employer"],
                                        "num_candidates": 9}}}
    path = tmp_path / "compare.toml"
    path.write_text(tomli_w.dumps(spec), encoding="utf-8")
    result = CliRunner().invoke(main, ["-q", "compare", "--config", str(path)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "cmp" / "comparison.csv").set_index("variant")
    row = table.loc["scrub"]
    for name in ("inference_top1_rate", "inference_top1_rate_baseline", "inference_top1_rate_minus_baseline"):
        assert 0 <= abs(row[f"reconstruct.{name}"]) <= 1 and row[f"reconstruct.{name}.low"] <= row[f"reconstruct.{name}"]
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    [res] = [r for r in summary["results"] if r["attack"] == "reconstruct"]
    m = res["metrics"]
    assert m["inference_top1_rate"]["n"] == m["inference_top1_rate_baseline"]["n"] == \
        m["inference_top1_rate_minus_baseline"]["n"] > 0  # every sentence paired with the base's answer
    assert res["provenance"]["target_spec"].endswith("variants/scrub")
    assert any("base model" in a for a in res["assumptions"])
    compare = [r for r in summary["results"] if r["attack"] == "compare"][0]
    assert compare["metrics"]["reconstruct.inference_top1_rate.scrub"]["value"] == m["inference_top1_rate"]["value"]
    assert "tradeoff_reconstruct_inference_top1_rate" in compare["charts"]
