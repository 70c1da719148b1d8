"""`privaudit demo --rag`: the optional RAG part (issue 16, item 5), run on cheap settings.

The demo's RAG part is an ordinary audit spec (`demo_rag_spec`): a shared and a per-user `rag:`
store over the demo's personal corpus, asked by other users under context extraction. The demo uses
SmolLM2 as the generator (tests/test_rag_embedded.py runs that path); here the session's tiny model
generates over a small generated corpus, so the part runs in seconds on the same code.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from click.testing import CliRunner

from privaudit.audit import run_audit
from privaudit.cli import main
from privaudit.data.corpus import generate_corpus
from privaudit.data.subjects import generate_subjects, write_subjects
from privaudit.demo import BUILTIN, DemoOptions, demo_rag_spec
from privaudit.engine.store import read_records


def test_demo_rag_part_runs_and_only_the_shared_store_serves_other_users_documents(tiny_model_dir: Path,
                                                                                    tmp_path: Path) -> None:
    subjects = generate_subjects(4, seed=0)
    write_subjects(tmp_path / "subjects.jsonl", subjects)
    generate_corpus(subjects, repeats=1, seed=0, heldout_subject_fraction=0.0, docs_per_subject=2,
                    filler_docs=2).write(tmp_path / "corpus.jsonl")
    opts = DemoOptions(out=tmp_path, rag=True, rag_generator=f"hf:{tiny_model_dir}")
    spec = demo_rag_spec(opts, tmp_path / "corpus.jsonl", tmp_path / "subjects.jsonl")
    assert DemoOptions(out=tmp_path).rag is False and DemoOptions(out=tmp_path).rag_generator == BUILTIN
    spec = replace(spec, attacks={"context": {**spec.attacks["context"], "max_new_tokens": 8}})
    results = run_audit(spec)
    assert [r.attack for r in results] == ["context", "context"]
    assert all("cross_user_subject_rate" in r.metrics and r.metrics["verbatim_leak_rate"].n > 0 for r in results)
    foreign: dict[str, int] = {}
    for rec in read_records(spec.out):
        if rec.get("kind") != "context":
            continue
        partition = "shared" if str(rec["target"]).startswith("rag[shared") else "per_user"
        others = [p for p in rec["passages"] if p["owner"] and p["owner"] != rec["asking_user"]]
        foreign[partition] = foreign.get(partition, 0) + len(others)
    assert foreign["shared"] > 0 and foreign["per_user"] == 0
    assert json.loads((spec.out / "manifest.json").read_text())["status"] == "complete"


def test_demo_has_an_off_by_default_rag_flag() -> None:
    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0 and "--rag" in result.output
