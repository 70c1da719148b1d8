"""Context extraction and the cross-user matrix through `privaudit run`: records, partitions, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from privaudit.attacks.context_extraction import ContextParams, build_context_probes, load_prompts
from privaudit.cli import main
from privaudit.data.corpus import generate_corpus
from privaudit.data.subjects import generate_subjects, write_subjects
from privaudit.engine.store import RunStore


@pytest.fixture(scope="module")
def personal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ctx")
    subjects = generate_subjects(4, seed=0)
    write_subjects(root / "subjects.jsonl", subjects)
    generate_corpus(subjects, repeats=1, seed=0, heldout_subject_fraction=0.0, docs_per_subject=2,
                    filler_docs=2).write(root / "corpus.jsonl")
    return root


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]


def test_probes_ask_about_a_subject_as_another_user() -> None:
    subjects = generate_subjects(3, seed=0)
    probes = build_context_probes(subjects, load_prompts(), ContextParams(subjects="x", askers="other"), False)
    targeted = [p for p in probes if p.variant == "targeted"]
    assert targeted and all(p.asking_user != p.subject_id for p in targeted)
    assert all(subjects[0].name in p.question for p in targeted if p.subject_id == subjects[0].id)
    injected = [p for p in probes if p.variant == "injection"]
    assert all(p.injected is not None and subjects[0].name in p.injected.text
               for p in injected if p.subject_id == subjects[0].id)
    assert len({p.key for p in probes}) == len(probes)


def _audit(root: Path, partition: str, model: Path) -> Path:
    spec = root / f"audit_{partition}.toml"
    spec.write_text(f'''
targets = ["rag:{root / 'corpus.jsonl'}:top_k=2:partition={partition}:inner=hf:{model}"]
out = "{root / ('run_' + partition)}"
[attacks.context]
subjects = "{root / 'subjects.jsonl'}"
askers = "other"
variants = ["targeted", "injection"]
commands = ["repeat_context"]
max_new_tokens = 4
[attacks.cross_user]
subjects = "{root / 'subjects.jsonl'}"
pii_types = ["email"]
template_ids = ["email-twin-1"]
max_new_tokens = 4
''')
    return spec


@pytest.mark.parametrize("partition", ["per_user", "shared"])
def test_run_records_asking_user_and_only_partitioned_passages_then_resumes(personal, tiny_model_dir,
                                                                           partition: str) -> None:
    spec = _audit(personal, partition, tiny_model_dir)
    out = personal / f"run_{partition}"
    result = CliRunner().invoke(main, ["-q", "run", str(spec)])
    assert result.exit_code == 0, result.output
    records = _records(out)
    ctx = [r for r in records if r["attack"] == "context"]
    assert len(ctx) == 4 * (2 + 1)  # 4 subjects x (2 targeted infos + 1 injection)
    for r in ctx:
        owners = {p["owner"] for p in r["passages"]}
        if partition == "per_user":
            assert owners <= {r["asking_user"], ""}
        elif r["variant"] == "targeted":
            assert r["subject_id"] in owners  # the shared store serves the subject's documents to another user
    assert any(r["injected_retrieved"] for r in ctx if r["variant"] == "injection")
    cells = {(r["model_user"], r["data_user"]) for r in records if r["attack"] == "cross_user"}
    assert len(cells) == 16  # 4 users' views x 4 users' subjects
    summary = json.loads((out / "summary.json").read_text())
    attacks = {res["attack"]: res for res in summary["results"]}
    matrix = attacks["cross_user"]["charts"]["cross_user_matrix"]
    assert matrix["kind"] == "heatmap" and len(matrix["values"]) == 4 and len(matrix["values"][0]) == 4
    assert attacks["context"]["metrics"]["cross_user_subject_rate"]["unit"] == "subject"
    # Rerun: everything is stored, nothing is recomputed.
    before = len(records)
    again = CliRunner().invoke(main, ["-q", "run", str(spec)])
    assert again.exit_code == 0, again.output
    assert len(_records(out)) == before
    assert RunStore(out).read_manifest()["status"] == "complete"


def test_context_needs_a_per_user_target(personal, tiny_model_dir) -> None:
    result = CliRunner().invoke(main, ["-q", "attack", "context", "-t", f"hf:{tiny_model_dir}",
                                       "--subjects", str(personal / "subjects.jsonl"), "--out",
                                       str(personal / "plain")])
    assert result.exit_code == 3 and "user_context" in result.output
