"""The tiny model builder: loadable offline, seeded, a Llama with a working tokenizer and chat template."""

from __future__ import annotations

import pytest

from privaudit.errors import InputError
from privaudit.models.tiny import build_tiny_model, train_tokenizer


def test_tiny_model_folder_loads_with_auto_classes(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "llama"
    assert model.config.vocab_size == len(tok)
    assert tok.pad_token_id is not None and tok.eos_token_id is not None
    ids = tok("Bob Smith lives at 42 Elm Street").input_ids
    assert ids[0] == tok.bos_token_id
    assert tok.decode(ids, skip_special_tokens=True) == "Bob Smith lives at 42 Elm Street"


def test_tokenizer_round_trips_text_it_never_saw():
    tok = train_tokenizer(["abc abc abc"], vocab_size=300)
    text = "Zoë's café — 日本 ✓"
    assert tok.decode(tok(text).input_ids, skip_special_tokens=True) == text


def test_chat_template_opens_an_assistant_turn(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|assistant|>\n")
    assert "hi</s>" in text


def test_same_seed_gives_same_weights_and_other_seed_differs(tmp_path):
    import torch
    from safetensors.torch import load_file

    texts = ["one two three four", "five six seven"]
    a = load_file(build_tiny_model(texts, tmp_path / "a", seed=1, hidden_size=32, num_heads=2) / "model.safetensors")
    b = load_file(build_tiny_model(texts, tmp_path / "b", seed=1, hidden_size=32, num_heads=2) / "model.safetensors")
    c = load_file(build_tiny_model(texts, tmp_path / "c", seed=2, hidden_size=32, num_heads=2) / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_bad_shapes_and_empty_corpus_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="divisible"):
        build_tiny_model(["x y"], tmp_path / "m", hidden_size=30, num_heads=4)
    with pytest.raises(InputError, match="no training texts"):
        build_tiny_model([], tmp_path / "n")
