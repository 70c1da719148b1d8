"""Issue 23: SmolLM2-135M personalized with LoRA, audited end to end against its base.

The cheap tests check the recipe's cache key and the audit spec; the slow ones audit the real
adapter (`real_setup`, trained once per machine) through `run_audit`, the engine `privaudit run`
calls, and require the personalization to leak more than the base with separated intervals.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from privaudit.personalized_real import SMALL_REAL_RECIPE, RealRecipe, real_cache_dir


def test_recipe_fingerprint_is_stable_and_covers_every_field() -> None:
    assert RealRecipe().fingerprint() == RealRecipe().fingerprint()
    assert replace(RealRecipe(), repeats=5).fingerprint() != RealRecipe().fingerprint()
    assert replace(RealRecipe(), lora_targets=("q_proj",)).fingerprint() != RealRecipe().fingerprint()
    assert SMALL_REAL_RECIPE.fingerprint() != RealRecipe().fingerprint()


def test_cache_dir_follows_privaudit_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PRIVAUDIT_CACHE_DIR", str(tmp_path))
    folder = real_cache_dir(SMALL_REAL_RECIPE)
    assert folder.parent == tmp_path / "real"
    assert folder.name == f"smollm2-135m-{SMALL_REAL_RECIPE.fingerprint()}"


def test_demo_help_offers_real() -> None:
    from click.testing import CliRunner

    from privaudit.cli import main

    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0 and "--real" in result.output


@pytest.mark.slow
def test_real_lora_audit_leaks_more_than_base(real_setup, tmp_path: Path) -> None:
    """The adapter leaks more than its base on the same probes; membership AUC's interval is above 0.5."""
    from privaudit.audit import run_audit
    from privaudit.demo_real import real_audit_spec

    # CI time: the email field at the twin level (name only: ProPILE Sec. 3.1's first association
    # level, 4 templates) for 6 subjects, 9 distractors per likelihood probe (chance 0.1); the
    # likelihood ranks were most of this test's time (20 candidates x 7 templates x 2 models)
    pii = {"likelihood": True, "pii_types": ["email"], "levels": [1], "num_candidates": 9,
           "max_new_tokens": 20, "soft_prompt": True, "soft_prompt_steps": 10}
    spec = real_audit_spec(real_setup, tmp_path / "run", pii=pii)
    results = {r.attack: r for r in run_audit(spec)}
    m = results["pii"].metrics
    top1, base_top1 = m["likelihood_top1_rate"], m["likelihood_top1_rate_baseline"]
    # Likelihood top-1 by point estimate only: on 6 subjects its subject-clustered intervals overlap
    # (seen: 17 vs 12 of the same 24 probes; the base ranks name-shaped emails first).
    assert top1.value > base_top1.value, (top1, base_top1)
    # verbatim, per (subject, field): the paired difference's interval (same probes on both models,
    # clustered by subject) excludes 0 (seen: 5/6 pairs vs 0/6, difference 0.83 [0.41, 1.0])
    diff = m["exact_match_rate_minus_baseline"]
    assert diff.low > 0.0, diff
    assert "soft_prompt_lift" in m  # reported, whatever it is (ProPILE Sec. 3.3)
    auc = results["membership"].metrics["auc"]
    assert auc.low > 0.5, auc


def _unbuilt_setup(tmp_path: Path):
    """The recipe's data and spec strings, without training (the specs only name the models)."""
    from privaudit.personalized import PersonalizedSetup, build_personal_data
    from privaudit.personalized_real import train_subjects_path

    subjects, subjects_path, corpus, corpus_path = build_personal_data(tmp_path / "setup", SMALL_REAL_RECIPE)
    from privaudit.data.subjects import write_subjects

    write_subjects(train_subjects_path(tmp_path / "setup"), [s for s in subjects if s.id in corpus.train_subject_ids()])
    base = tmp_path / "base"
    return PersonalizedSetup(root=tmp_path / "setup", recipe=SMALL_REAL_RECIPE, subjects=tuple(subjects),
                             subjects_path=subjects_path, corpus=corpus, corpus_path=corpus_path, base_dir=base,
                             finetuned_spec=f"hf:{base}:adapter={tmp_path / 'adapter'}")


def test_real_specs_use_the_base_as_baseline_and_reference(tmp_path: Path) -> None:
    from privaudit.compare import check_compare_spec
    from privaudit.demo_real import real_audit_spec, real_compare_spec

    setup = _unbuilt_setup(tmp_path)
    spec = real_audit_spec(setup, tmp_path / "run")
    assert spec.targets == [setup.finetuned_spec]
    assert spec.attacks["pii"]["baseline_target"] == setup.base_spec
    assert spec.attacks["membership"]["reference"] == setup.base_spec
    assert spec.attacks["pii"]["subjects"].endswith("train_subjects.jsonl")
    compare = real_compare_spec(setup, tmp_path / "compare")
    check_compare_spec(compare, "compare.toml")  # every defense table (LoRA keys included) is valid
    # the comparison probes the same (trained) subjects as the audit; the held-out ones cannot leak
    assert compare.attacks["pii"]["subjects"] == spec.attacks["pii"]["subjects"]
    assert compare.subjects == setup.subjects_path  # scrubbing and DP-SGD's units still see everyone
    dp = compare.defenses["dp_sgd_subject"]
    assert (dp["target_epsilon"], dp["privacy_unit"], dp["lora"]) == (8.0, "subject", True)
    fed = compare.defenses["federated"]
    assert (fed["personal_part"], fed["shared_part"]) == ("none", "lora")  # FedIT over the frozen base


@pytest.mark.slow
def test_dp_sgd_lora_trains_on_real_architecture(tmp_path: Path) -> None:
    """Opacus on SmolLM2 (tied input/output embeddings, LoRA on real projections): the embeddings
    are untied before DP training and noted, the accountant's epsilon matches its history, and the
    adapter loads back as `hf:BASE:adapter=DIR`."""
    from privaudit.defenses.dp_sgd import DPConfig, epsilon_from_history, train_dp_sgd
    from privaudit.personalized_real import base_model_dir
    from privaudit.targets.base import load_target

    units = {f"u{i}": f"Contact card\nName: Person {i}\nEmail: person{i}@example.com" for i in range(6)}
    cfg = DPConfig(noise_multiplier=1.0, epochs=1, batch_size=2, max_length=32, lora=True,
                   lora_targets=("q_proj", "v_proj", "up_proj"))
    record = train_dp_sgd(base_model_dir(SMALL_REAL_RECIPE), units, ["A note about nobody in particular."], cfg,
                          tmp_path / "dp")
    assert any("untied" in note for note in record.notes)
    p = record.privacy
    assert p.epsilon > 0 and abs(p.epsilon - epsilon_from_history(p.accountant, p.noise_multiplier, p.sample_rate,
                                                                  p.steps, p.delta)) < 1e-6
    target = load_target(record.target_spec)
    (score,) = target.score(["Contact card\nName: Person 1\nEmail:"], [" person1@example.com"])
    assert score < 0.0


def test_real_demo_writes_both_specs_into_a_new_folder_and_they_load(tmp_path: Path) -> None:
    """Regression: `demo --real --out NEW` failed with "audit.toml: No such file or directory" after
    training, because only the toy demo's setup created the folder."""
    from privaudit.audit import load_audit_spec
    from privaudit.compare import load_compare_spec
    from privaudit.demo import DemoOptions
    from privaudit.demo_real import write_real_specs

    setup = _unbuilt_setup(tmp_path)
    opts = DemoOptions(out=tmp_path / "not" / "yet" / "there")
    spec, spec_path, compare, compare_path = write_real_specs(setup, opts)
    assert load_audit_spec(spec_path).attacks.keys() == spec.attacks.keys()
    loaded = load_compare_spec(compare_path)
    assert loaded.defenses.keys() == compare.defenses.keys()
    assert Path(loaded.attacks["pii"]["subjects"]).name == "train_subjects.jsonl"
