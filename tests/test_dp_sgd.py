"""DP-SGD with Opacus: the accountant's epsilon is reported and within target; bad layers fail clearly."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from privaudit.data.corpus import generate_corpus
from privaudit.data.subjects import generate_subjects
from privaudit.defenses.dp_sgd import (
    UNIT_SEPARATOR, DPConfig, check_dp_layers, default_delta, epsilon_from_history, privacy_units, train_dp_sgd,
)
from privaudit.errors import InputError

TRAIN = [f"Note {i}: the meeting with client number {i} moved to room {i % 5}. Regards, the office." for i in range(24)]
HELDOUT = ["Note 99: the meeting with client number 99 moved to room 4. Regards, the office."]


@pytest.mark.parametrize("mode", ["hooks", "ghost"])
def test_reported_epsilon_is_the_accountants_and_within_target(tiny_model_dir: Path, tmp_path: Path, mode: str) -> None:
    cfg = DPConfig(target_epsilon=3.0, epochs=2, batch_size=8, max_length=32, grad_sample_mode=mode, seed=0)
    record = train_dp_sgd(tiny_model_dir, TRAIN, HELDOUT, cfg, tmp_path / mode)
    p = record.privacy
    assert p is not None and p.grad_sample_mode == mode
    assert 0 < p.epsilon <= 3.0 + 1e-6
    assert p.steps == record.training.steps == 2 * 3  # 24 docs, expected batch 8 -> 3 steps an epoch
    assert p.sample_rate == pytest.approx(8 / 24)
    assert p.delta == default_delta(24)
    assert p.epsilon == pytest.approx(epsilon_from_history(p.accountant, p.noise_multiplier, p.sample_rate,
                                                           p.steps, p.delta), rel=1e-6)


def test_noise_multiplier_mode_spends_more_with_less_noise(tiny_model_dir: Path, tmp_path: Path) -> None:
    eps = []
    for sigma in (2.0, 0.7):
        cfg = DPConfig(noise_multiplier=sigma, epochs=1, batch_size=8, max_length=32, accountant="rdp")
        eps.append(train_dp_sgd(tiny_model_dir, TRAIN, HELDOUT, cfg, tmp_path / str(sigma)).privacy.epsilon)
    assert eps[0] < eps[1]


def test_unsupported_layer_fails_with_one_line_naming_it() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    with pytest.raises(InputError, match=r"layer '1' \(BatchNorm1d\) is not supported by Opacus.*fix_layers"):
        check_dp_layers(model)
    fixed, notes = check_dp_layers(model, fix_layers=True)
    assert any("BatchNorm1d -> GroupNorm" in n for n in notes)


def test_config_needs_exactly_one_of_epsilon_and_noise() -> None:
    with pytest.raises(InputError, match="exactly one"):
        DPConfig()
    with pytest.raises(InputError, match="exactly one"):
        DPConfig(target_epsilon=1.0, noise_multiplier=1.0)


def _corpus():
    return generate_corpus(generate_subjects(6, seed=3), repeats=3, seed=3, heldout_subject_fraction=0.34,
                           docs_per_subject=2, canaries=[2], filler_docs=4)


def test_document_units_are_every_training_copy() -> None:
    corpus = _corpus()
    units = privacy_units(corpus, "document")
    assert list(units.values()) == corpus.train_texts()
    assert len(set(units)) == len(units)


def test_subject_units_hold_each_subjects_distinct_documents_once() -> None:
    corpus = _corpus()
    units = privacy_units(corpus, "subject")
    train_docs = corpus.split_documents("train")
    for sid in corpus.train_subject_ids():
        texts = [d.text for d in train_docs if d.subject_id == sid]
        assert units[sid] == UNIT_SEPARATOR.join(texts)
    unowned = [d for d in train_docs if d.subject_id is None]
    assert unowned and all(units[d.id] == d.text for d in unowned)  # filler and canaries: one each
    assert len(units) == len(corpus.train_subject_ids()) + len(unowned)
    assert not set(units) & set(corpus.heldout_subject_ids())


def test_subject_level_training_reports_its_unit_and_refuses_truncation(tiny_model_dir: Path, tmp_path: Path) -> None:
    units = {"alice": UNIT_SEPARATOR.join(TRAIN[:3]), "bob": UNIT_SEPARATOR.join(TRAIN[3:6]),
             **{f"doc-{i}": t for i, t in enumerate(TRAIN[6:])}}
    cfg = DPConfig(target_epsilon=3.0, epochs=1, batch_size=5, max_length=192, privacy_unit="subject")
    record = train_dp_sgd(tiny_model_dir, units, HELDOUT, cfg, tmp_path / "user")
    assert record.privacy.privacy_unit == "subject" and record.privacy.epsilon <= 3.0 + 1e-6
    # Opacus samples at rate 1 / batches per epoch: one example per unit, not per document
    assert len(units) == 20 and record.privacy.sample_rate == pytest.approx(1 / math.ceil(20 / 5))  # not 24 docs
    assert any("one data subject" in n for n in record.notes)
    short = DPConfig(target_epsilon=3.0, epochs=1, batch_size=8, max_length=40, privacy_unit="subject")
    with pytest.raises(InputError, match=r"privacy unit 'alice' needs \d+ tokens, over max_length 40"):
        train_dp_sgd(tiny_model_dir, units, HELDOUT, short, tmp_path / "short")
    with pytest.raises(InputError, match="privacy_unit must be one of document, subject"):
        DPConfig(target_epsilon=1.0, privacy_unit="row")


def test_defend_cli_trains_user_level_dp_from_the_config_and_rejects_an_unknown_unit(tiny_model_dir: Path,
                                                                                      tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from privaudit.cli import main
    from privaudit.data.subjects import write_subjects

    subjects = generate_subjects(6, seed=3)
    write_subjects(tmp_path / "subjects.jsonl", subjects)
    corpus = generate_corpus(subjects, repeats=3, seed=3, heldout_subject_fraction=0.34, docs_per_subject=2,
                             filler_docs=4)
    corpus.write(tmp_path / "corpus.jsonl")
    common = ["defend", "dp_sgd", "--base", f"hf:{tiny_model_dir}", "--corpus", str(tmp_path / "corpus.jsonl"),
              "--subjects", str(tmp_path / "subjects.jsonl")]
    (tmp_path / "dp.toml").write_text('target_epsilon = 4.0\nepochs = 1\nbatch_size = 4\nmax_length = 512\n'
                                      'privacy_unit = "subject"\n')
    ok = CliRunner().invoke(main, [*common, "--out", str(tmp_path / "v"), "--config", str(tmp_path / "dp.toml")])
    assert ok.exit_code == 0, ok.output
    assert "privacy unit: subject" in ok.output
    privacy = json.loads((tmp_path / "v" / "defended.json").read_text())["privacy"]
    units = privacy_units(corpus, "subject")
    assert privacy["privacy_unit"] == "subject" and privacy["epsilon"] <= 4.0 + 1e-6
    assert privacy["sample_rate"] == pytest.approx(1 / math.ceil(len(units) / 4))
    (tmp_path / "bad.toml").write_text('target_epsilon = 4.0\nprivacy_unit = "row"\n')
    bad = CliRunner().invoke(main, [*common, "--out", str(tmp_path / "b"), "--config", str(tmp_path / "bad.toml")])
    assert bad.exit_code == 2 and "privacy_unit: must be one of 'document', 'subject', got 'row'" in bad.output
