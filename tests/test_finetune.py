"""The shared fine-tuning recipe: full and LoRA training lower held-out perplexity; records resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from privaudit.defenses.finetune import FinetuneConfig, finetune, load_causal_lm, perplexity
from privaudit.defenses.registry import get_defense, load_defended
from privaudit.errors import InputError

TRAIN = [
    "Dear team, the quarterly report is attached. Please review it before Friday. Best regards, Alice.",
    "Hello Bob, the meeting moved to Tuesday at ten. Please bring the budget notes. Thanks, Carol.",
    "Hi all, the office will be closed on Monday. Please plan your work accordingly. Regards, Dave.",
    "Dear Erin, thank you for the invoice. We will pay it before the end of the month. Best, Frank.",
] * 2
HELDOUT = [
    "Dear team, the monthly report is attached. Please review it before Monday. Best regards, Grace.",
    "Hello Heidi, the call moved to Thursday at nine. Please bring the sales notes. Thanks, Ivan.",
]


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_finetune_lowers_heldout_perplexity_and_saves_a_loadable_target(tiny_model_dir: Path, tmp_path: Path, lora: bool) -> None:
    cfg = FinetuneConfig(epochs=6, batch_size=8, max_length=48, learning_rate=1e-2 if lora else 3e-3, lora=lora,
                         lora_targets=("q_proj", "v_proj", "o_proj"), seed=0)
    record = finetune(tiny_model_dir, TRAIN, HELDOUT, cfg, tmp_path / "variant")
    t = record.training
    assert t is not None and t.steps == 6 and t.mode == ("lora" if lora else "full")
    assert t.heldout_perplexity < t.base_heldout_perplexity
    if lora:
        assert record.target_spec.endswith(f"adapter={(tmp_path / 'variant' / 'adapter').resolve()}")
        assert t.trainable_parameters < 50_000
    else:
        model, tok = load_causal_lm(tmp_path / "variant")
        assert perplexity(model, tok, HELDOUT, max_length=48) == pytest.approx(t.heldout_perplexity, rel=1e-4)
    assert load_defended(tmp_path / "variant") == record


def test_perplexity_is_exp_of_mean_token_nll_and_nan_without_texts(tiny_model_dir: Path) -> None:
    model, tok = load_causal_lm(tiny_model_dir)
    ppl = perplexity(model, tok, HELDOUT)
    vocab = model.config.vocab_size
    assert 1.0 < ppl < 10 * vocab  # a random-init model sits near uniform over its vocabulary
    assert math.isnan(perplexity(model, tok, []))


def test_defense_none_validates_its_table_with_the_key_path(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"defenses.none.*epoch"):
        get_defense("none").from_config({"epoch": 3}, "defenses.none")
    with pytest.raises(InputError, match="learning_rate"):
        FinetuneConfig(learning_rate=0)


def test_missing_base_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no config.json"):
        load_causal_lm(tmp_path)


def test_lora_target_missing_from_model_is_named(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = FinetuneConfig(epochs=1, lora=True, lora_targets=("c_attn",))
    with pytest.raises(InputError, match="c_attn"):
        finetune(tiny_model_dir, TRAIN, HELDOUT, cfg, tmp_path)
