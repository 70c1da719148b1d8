"""The public Python API (privaudit/api.py, privaudit/__init__.py, privaudit/live.py).

`__all__` is pinned here, so removing a public name fails a test; `import privaudit` must not load
torch (checked in a fresh interpreter); a loaded model object audited in memory gives the metrics
`hf:PATH` gives for the same weights, with subjects passed as a list, a DataFrame or a path.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import privaudit

PUBLIC_NAMES = {
    "__version__", "audit", "load_target", "AuditResult", "Metric", "assert_privacy", "AuditSpec",
    "load_audit_spec", "run_audit", "audit_during_training", "TrainingAudit", "PrivacyAuditCallback", "Target",
    "GenerationConfig", "LiveModelTarget", "register_target", "Attack", "AttackResult", "RunContext",
    "register_attack", "get_attack", "available_attacks", "Defense", "register_defense", "get_defense",
    "available_defenses", "CompareSpec", "load_compare_spec", "run_comparison", "DataSubject",
    "generate_subjects", "load_subjects", "Corpus", "generate_corpus", "load_corpus", "build_personalized_setup",
    "PersonalizationRecipe", "GateOutcome", "write_reports", "PrivauditError", "InputError",
}


def test_every_public_name_is_listed_in_all_and_resolves() -> None:
    missing = PUBLIC_NAMES - set(privaudit.__all__)
    assert not missing, f"public names removed from privaudit.__all__: {sorted(missing)}"
    for name in privaudit.__all__:
        assert getattr(privaudit, name) is not None, name


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        privaudit.nope  # noqa: B018


def test_import_privaudit_and_its_pytest_plugin_load_no_torch() -> None:
    code = ("import sys, privaudit, privaudit.pytest_plugin; heavy = [m for m in ('torch', 'transformers', "
            "'pandas') if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)


PII = {"pii_types": ["email", "phone"], "max_new_tokens": 12}


def test_a_live_model_gives_the_metrics_of_its_checkpoint_and_keeps_its_train_mode(tiny_model, tiny_model_dir: Path,
                                                                                  tmp_path: Path) -> None:
    model, tokenizer = tiny_model
    subjects = privaudit.generate_subjects(4, seed=3)
    model.train()
    live = privaudit.audit(model, {"pii": {"subjects": subjects, **PII}}, tokenizer=tokenizer, out=tmp_path / "live")
    assert model.training and all(m.training for m in model.modules())  # restored after probing in eval mode
    frame = pd.DataFrame([s.to_json() for s in subjects])
    from_frame = privaudit.audit((model, tokenizer), {"pii": {"subjects": frame, **PII}}, out=tmp_path / "frame")
    path = tmp_path / "live" / "inputs" / "pii.subjects.jsonl"
    on_disk = privaudit.audit(f"hf:{tiny_model_dir}", {"pii": {"subjects": str(path), **PII}}, out=tmp_path / "disk")
    table = live.to_pandas()
    assert list(table.columns) == ["attack", "name", "target", "value", "low", "high", "n", "unit", "direction",
                                   "kind", "method", "step"]
    assert set(table["target"]) == {"model"}
    numbers = ["name", "value", "low", "high", "n"]
    pd.testing.assert_frame_equal(table[numbers], on_disk.to_pandas()[numbers])
    pd.testing.assert_frame_equal(table[numbers], from_frame.to_pandas()[numbers])
    rate = live.metric("pii.exact_match_rate")
    assert (rate.unit, rate.direction, rate.kind, rate.n) == ("subject_field", "higher_is_worse", "proportion", 8)
    records = live.to_pandas("records")
    assert len(records) > 0 and {"attack", "target", "prompt", "truth", "exact"} <= set(records.columns)
    assert (tmp_path / "live" / "report.html").is_file() and (tmp_path / "live" / "summary.json").is_file()


def test_an_in_memory_spec_dict_runs_like_a_toml(tiny_model_dir: Path, tmp_path: Path) -> None:
    subjects = tmp_path / "subjects.jsonl"
    from privaudit.data.subjects import write_subjects

    write_subjects(subjects, privaudit.generate_subjects(2, seed=1))
    spec = {"targets": [f"hf:{tiny_model_dir}"], "out": str(tmp_path / "run"),
            "attacks": {"pii": {"subjects": str(subjects), **PII}},
            "thresholds": {"pii.exact_match_rate": "<= 1.0"}}
    result = privaudit.audit(spec=spec)
    assert result.out == tmp_path / "run" and result.summary()["gate"]["status"] == "pass"
    written = result.write(tmp_path / "again", formats=["json", "markdown"])
    assert sorted(p.name for p in written.values()) == ["summary.json", "summary.md"]


def test_assert_privacy_fails_with_the_gates_one_line_message(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = privaudit.audit(f"hf:{tiny_model_dir}", {"pii": {"subjects": privaudit.generate_subjects(2, seed=1), **PII}},
                             out=tmp_path / "run")
    privaudit.assert_privacy(result, "pii.exact_match_rate <= 1.0")
    (check,) = result.check("pii.exact_match_rate <= 0.01").checks
    with pytest.raises(AssertionError) as failed:
        privaudit.assert_privacy(result, "pii.exact_match_rate <= 0.01")
    assert str(failed.value) == f"FAIL pii.exact_match_rate@hf:{tiny_model_dir}: {check.message}"
    assert "upper" in check.message and "\n" not in str(failed.value)


def test_bad_input_is_a_one_line_input_error_before_any_model_loads(tmp_path: Path) -> None:
    with pytest.raises(privaudit.InputError, match=r"attacks.pii.subjects: expected a path, a list of rows"):
        privaudit.audit("hf:/nonexistent", {"pii": {"subjects": 42}}, out=tmp_path / "run")
    with pytest.raises(privaudit.InputError, match="unknown target scheme 'nope'"):
        privaudit.audit("nope:x", {"pii": {"subjects": [privaudit.generate_subjects(1)[0]]}}, out=tmp_path / "run")
    with pytest.raises(privaudit.InputError, match="expected 'attack.metric <= number'"):
        privaudit.assert_privacy(None, "pii.exact_match_rate")  # type: ignore[arg-type]
    assert not (tmp_path / "run" / "results.jsonl").exists()


def test_privaudit_audit_is_callable_whichever_is_imported_first() -> None:
    code = ("import privaudit.audit, privaudit; assert callable(privaudit.audit) and privaudit.audit.AuditSpec; "
            "assert privaudit.audit.__call__.__qualname__ == '_AuditModule.__call__'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
