"""`privaudit compare` with the RAG variants beside fine-tuning (issue 16, item 4): one table, the same attacks.

On the session's tiny model (cheap settings): `none` (fine-tuned), `rag` (per-user store),
`rag_shared`, `rag_scrubbed` (Presidio over a shared store) and `rag+finetune` (retrieval over the
fine-tuned model) are built by the one variant path, PII probes run on every variant and context
extraction on the retrieval ones, and the trade-off (leakage against utility) is in the report.
The figures on the embedded setup are in README ("Personalization by retrieval, profile and per-user
models").
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import tomli_w
from click.testing import CliRunner

from privaudit.cli import main
from privaudit.data.corpus import generate_corpus
from privaudit.data.subjects import generate_subjects, write_subjects

RAG_VARIANTS = ["rag", "rag_shared", "rag_scrubbed", "rag+finetune"]


@pytest.mark.slow
def test_compare_puts_rag_variants_beside_finetuning_on_the_same_attacks(tiny_model_dir: Path, tmp_path: Path) -> None:
    subjects = generate_subjects(4, seed=0)
    write_subjects(tmp_path / "subjects.jsonl", subjects)
    generate_corpus(subjects, repeats=2, seed=0, heldout_subject_fraction=0.25, docs_per_subject=2,
                    filler_docs=2).write(tmp_path / "corpus.jsonl")
    spec = {
        "base": f"hf:{tiny_model_dir}", "corpus": str(tmp_path / "corpus.jsonl"),
        "subjects": str(tmp_path / "subjects.jsonl"), "out": str(tmp_path / "cmp"), "seed": 0,
        "defenses": {"none": {"epochs": 1, "batch_size": 8, "max_length": 64},
                     "rag": {"top_k": 2},
                     "rag_shared": {"defense": "rag", "partition": "shared", "top_k": 2},
                     "rag_scrubbed": {"defense": "rag", "partition": "shared", "scrub": True, "top_k": 2},
                     "rag+finetune": {"defense": "rag", "wraps": "none", "top_k": 2}},
        "attacks": {"pii": {"pii_types": ["email"], "max_new_tokens": 8},
                    "context": {"targets": RAG_VARIANTS, "max_subjects": 2, "variants": ["targeted"],
                                "commands": ["repeat_context"], "askers": "other", "max_new_tokens": 8}},
    }
    path = tmp_path / "compare.toml"
    path.write_text(tomli_w.dumps(spec), encoding="utf-8")
    result = CliRunner().invoke(main, ["-q", "compare", "--config", str(path)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "cmp" / "comparison.csv").set_index("variant")
    assert list(table.index) == ["none", *RAG_VARIANTS]
    assert table["pii.exact_match_rate"].notna().all()  # PII probes on every variant
    assert table.loc[RAG_VARIANTS, "context.verbatim_leak_rate"].notna().all()
    assert pd.isna(table.loc["none", "context.verbatim_leak_rate"])  # a plain model has no context to extract
    # utility for every variant; RAG's with its no-retrieval base on the same (own held-out) documents
    assert table["heldout_perplexity"].notna().all()
    assert table.loc[RAG_VARIANTS, "base_heldout_perplexity"].notna().all()
    assert table.loc["rag_scrubbed", "scrub_spans_removed"] > 0 and pd.isna(table.loc["rag", "scrub_spans_removed"])
    assert "inner=hf:" in table.loc["rag+finetune", "target"] and "variants/none" in table.loc["rag+finetune", "target"]
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    compare = next(r for r in summary["results"] if r["attack"] == "compare")
    points = compare["charts"]["tradeoff_context_verbatim_leak_rate"]["points"]
    assert {p["label"] for p in points} == set(RAG_VARIANTS)
    assert all(p["y_low"] is not None and p["y_high"] is not None for p in points)
    assert {f"context.cross_user_subject_rate.{v}" for v in RAG_VARIANTS} <= set(compare["metrics"])
    assert any("rag variants: utility" in a for a in compare["assumptions"])
    html = (tmp_path / "cmp" / "report.html").read_text(encoding="utf-8")
    assert "rag_scrubbed" in html and "Privacy vs utility: context extraction" in html
