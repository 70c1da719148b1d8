"""The hf: target contract on a tiny Llama the test session builds (see conftest.tiny_model_dir)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from privaudit.errors import CapabilityError, InputError, TargetError
from privaudit.targets.base import (
    CHAT, GENERATE, GRADIENTS, SCORE, TOKEN_DISTRIBUTION, TOKEN_LOGPROBS, GenerationConfig, load_target,
)
from privaudit.targets.hf import HFTarget, _left_pad

PROMPTS = [
    "Alice Johnson's email is",
    "Hi",
    "Bob Smith lives at 42 Elm Street, Springfield. Call him at",
    "",
    "Please send the invoice to",
    "The quick brown fox jumps over the lazy dog. My name is",
]


@pytest.fixture(scope="module")
def target(tiny_model_dir) -> HFTarget:
    return HFTarget(tiny_model_dir, batch_size=4)


@pytest.fixture(scope="module")
def lora_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A real LoRA adapter made with peft on the tiny model, with non-zero B so it changes outputs."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)
    out = tmp_path_factory.mktemp("lora")
    peft_model.save_pretrained(out)
    return out


def manual_logprob(model, ids: list[int], start: int) -> float:
    """Reference: one unpadded forward pass, sum of log p(token t | tokens < t) for t >= start."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    logp = logits.log_softmax(-1)
    return sum(float(logp[t - 1, ids[t]]) for t in range(start, len(ids)))


# ------------------------------------------------------------------------------------------ loading
def test_capabilities_and_white_box_handles(target):
    assert target.capabilities == frozenset({GENERATE, SCORE, CHAT, GRADIENTS, TOKEN_LOGPROBS, TOKEN_DISTRIBUTION})
    assert target.device == "cpu" and target.model is not None and target.tokenizer is not None
    assert target.tokenizer.padding_side == "left"
    assert target.name.startswith("hf:")


def test_load_target_spec_parses_options(tiny_model_dir):
    t = load_target(f"hf:{tiny_model_dir}:device=cpu:dtype=float32:batch_size=3")
    assert isinstance(t, HFTarget) and t.batch_size == 3 and t.dtype == torch.float32


def test_batch_size_follows_the_run_unless_the_spec_sets_one(tiny_model_dir):
    from privaudit.engine.batching import DEFAULT_BATCH_SIZE, run_batch_size

    auto = load_target(f"hf:{tiny_model_dir}")
    pinned = load_target(f"hf:{tiny_model_dir}:batch_size=3")
    assert auto.batch_size == DEFAULT_BATCH_SIZE
    with run_batch_size(40):
        assert auto.batch_size == 40 and pinned.batch_size == 3
    auto.close()
    pinned.close()


def test_unknown_option_and_bad_batch_size_are_input_errors(tiny_model_dir):
    with pytest.raises(InputError, match="unknown option"):
        load_target(f"hf:{tiny_model_dir}:adaptor=x")
    with pytest.raises(InputError, match="batch_size must be an integer"):
        load_target(f"hf:{tiny_model_dir}:batch_size=many")
    with pytest.raises(InputError, match="dtype 'float8'"):
        load_target(f"hf:{tiny_model_dir}:dtype=float8")


def test_missing_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="model folder does not exist"):
        HFTarget(tmp_path / "nope")


def test_folder_without_tokenizer_is_an_input_error(tiny_model_dir, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        shutil.copy(tiny_model_dir / name, bare / name)
    with pytest.raises(InputError, match="has no tokenizer"):
        HFTarget(bare)


def test_folder_without_config_is_an_input_error(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(InputError, match="no config.json"):
        HFTarget(tmp_path)


def test_adapter_for_another_base_model_is_a_target_error(lora_dir, tmp_path):
    from privaudit.models.tiny import build_tiny_model

    other = build_tiny_model(["a different base model", "with other shapes"], tmp_path / "other",
                             hidden_size=64, num_heads=2)
    with pytest.raises(TargetError, match="adapter does not match base model"):
        HFTarget(other, adapter=lora_dir)


def test_adapter_folder_without_adapter_config_is_an_input_error(tiny_model_dir, tmp_path):
    with pytest.raises(InputError, match="no adapter_config.json"):
        HFTarget(tiny_model_dir, adapter=tmp_path)


# --------------------------------------------------------------------------------------- generation
def test_batched_greedy_generation_equals_one_at_a_time(target):
    cfg = GenerationConfig(max_new_tokens=12)
    batched = target.generate(PROMPTS, cfg)
    single = [target.generate([p], cfg)[0] for p in PROMPTS]
    assert batched == single
    assert any(out[0] for out in batched)  # the model really produced text


def test_left_padding_puts_pads_before_the_prompt():
    ids, mask = _left_pad([[5, 6, 7], [9]], pad_id=0, device="cpu")
    assert ids.tolist() == [[5, 6, 7], [0, 0, 9]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_greedy_with_k_samples_repeats_the_one_greedy_output(target):
    out = target.generate(PROMPTS[:3], GenerationConfig(max_new_tokens=6, num_samples=3))
    assert [len(o) for o in out] == [3, 3, 3]
    assert all(len(set(o)) == 1 for o in out)


def test_sampling_gives_k_distinct_samples_per_prompt(target):
    out = target.generate(PROMPTS, GenerationConfig(max_new_tokens=8, do_sample=True, num_samples=4, seed=1))
    assert [len(o) for o in out] == [4] * len(PROMPTS)
    assert all(len(set(o)) > 1 for o in out)  # a random-init model's samples essentially never coincide


def test_sampled_outputs_are_reproducible_and_independent_of_batching(target, tiny_model_dir):
    cfg = GenerationConfig(max_new_tokens=8, do_sample=True, num_samples=2, seed=7, temperature=0.9, top_p=0.95, top_k=50)
    first = target.generate(PROMPTS, cfg)
    assert target.generate(PROMPTS, cfg) == first
    assert target.generate(PROMPTS[::-1], cfg)[::-1] == first
    other_batch_size = HFTarget(tiny_model_dir, batch_size=1)
    assert other_batch_size.generate(PROMPTS, cfg) == first
    assert target.generate(PROMPTS, GenerationConfig(max_new_tokens=8, do_sample=True, num_samples=2, seed=8)) != first


def test_stop_strings_truncate_the_output(target):
    full = target.generate(["Bob Smith lives at"], GenerationConfig(max_new_tokens=12))[0][0]
    assert len(full) > 4
    stop = full[2:4]
    cut = target.generate(["Bob Smith lives at"], GenerationConfig(max_new_tokens=12, stop=(stop,)))[0][0]
    assert stop not in cut
    assert full.startswith(cut) and len(cut) <= full.index(stop)


def test_chat_renders_the_template_and_replies(target):
    out = target.chat([[{"role": "user", "content": "hi"}], [{"role": "system", "content": "Be brief."},
                                                              {"role": "user", "content": "Hello there"}]],
                      GenerationConfig(max_new_tokens=5, num_samples=2))
    assert len(out) == 2 and all(len(o) == 2 for o in out)


def test_tokenizer_without_chat_template_has_no_chat_capability(tiny_model_dir, tmp_path):
    plain = tmp_path / "plain"
    shutil.copytree(tiny_model_dir, plain)
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    cfg_file = plain / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg.pop("chat_template", None)
    cfg_file.write_text(json.dumps(cfg))
    t = HFTarget(plain)
    assert CHAT not in t.capabilities
    with pytest.raises(CapabilityError):
        t.chat([[{"role": "user", "content": "hi"}]], GenerationConfig())


# ------------------------------------------------------------------------------------------ scoring
def test_score_equals_manual_log_softmax_sum(target):
    tok = target.tokenizer
    prompt, cont = "Bob Smith lives at", " 42 Elm Street"
    joint = tok(prompt + cont).input_ids
    start = len(tok(prompt).input_ids)
    assert joint[:start] == tok(prompt).input_ids  # clean boundary for this pair
    expected = manual_logprob(target.model, joint, start)
    assert target.score([prompt], [cont])[0] == pytest.approx(expected, abs=1e-4)


def test_batched_scores_equal_unbatched(target):
    conts = [" alice@example.com", " there", " 555-0199.", "Hello world", " billing@example.org", " Erin Lee"]
    batched = target.score(PROMPTS, conts)
    single = [target.score([p], [c])[0] for p, c in zip(PROMPTS, conts)]
    assert batched == pytest.approx(single, abs=1e-4)
    assert all(s < 0 for s in batched)


def test_prompt_trailing_space_moves_to_the_continuation(target):
    assert target.score(["My name is "], ["Erin"])[0] == pytest.approx(target.score(["My name is"], [" Erin"])[0], abs=1e-5)


def test_empty_continuation_scores_zero_and_empty_prompt_is_conditioned_on_bos(target):
    assert target.score(["Hi"], [""]) == [0.0]
    ids = [target.tokenizer.bos_token_id] + target.tokenizer("Hello", add_special_tokens=False).input_ids
    assert target.score([""], ["Hello"])[0] == pytest.approx(manual_logprob(target.model, ids, 1), abs=1e-4)


def test_token_logprobs_and_echo_logprobs_come_from_the_scoring_kernel(target):
    """One teacher-forced kernel: per-token values sum to `score`, and the echo view (what `serve`
    answers) covers the whole text with offsets whose continuation tail sums to `score` too."""
    prompt, cont = "Bob Smith lives at", " 42 Elm Street"
    total = target.score([prompt], [cont])[0]
    per_token = target.token_logprobs([prompt, "Hi"], [cont, ""])
    assert sum(per_token[0]) == pytest.approx(total, abs=1e-4) and per_token[1] == []
    echo = target.echo_logprobs([prompt + cont, "Hello!"], top_k=2)
    assert "".join(echo[0].tokens) == prompt + cont
    assert echo[0].text_offset == sorted(echo[0].text_offset)
    tail = sum(v for off, v in zip(echo[0].text_offset, echo[0].token_logprobs) if off >= len(prompt))
    assert tail == pytest.approx(total, abs=1e-4)
    # at most 2 alternatives (two ids may decode to one string), the likeliest at least as likely as the token
    assert all(1 <= len(top) <= 2 and max(top.values()) >= v
               for top, v in zip(echo[0].top_logprobs, echo[0].token_logprobs) if top is not None)
    alone = target.echo_logprobs(["Hello!"])[0]
    assert alone.token_logprobs == pytest.approx(echo[1].token_logprobs, abs=1e-4)  # batch mates change nothing


def test_score_length_mismatch_is_an_input_error(target):
    with pytest.raises(InputError):
        target.score(["a", "b"], ["c"])


# -------------------------------------------------------------------------------------- adapters
def test_adapter_changes_outputs_and_scores_match_the_peft_model(tiny_model_dir, lora_dir, target):
    adapted = load_target(f"hf:{tiny_model_dir}:adapter={lora_dir}")
    assert "adapter=" in adapted.name
    base_score = target.score(["Alice Johnson's email is"], [" alice.johnson@example.com"])[0]
    adapted_score = adapted.score(["Alice Johnson's email is"], [" alice.johnson@example.com"])[0]
    assert adapted_score != pytest.approx(base_score, abs=1e-3)
    tok = adapted.tokenizer
    joint = tok("Alice Johnson's email is alice.johnson@example.com").input_ids
    start = len(tok("Alice Johnson's email is").input_ids)
    assert adapted_score == pytest.approx(manual_logprob(adapted.model, joint, start), abs=1e-4)
    assert adapted.fingerprint() != target.fingerprint()


# ------------------------------------------------------------------------------------ fingerprint
def test_fingerprint_is_stable_and_follows_the_weights(tiny_model_dir, tmp_path, target):
    from safetensors.torch import load_file, save_file

    assert HFTarget(tiny_model_dir).fingerprint() == target.fingerprint()
    changed = tmp_path / "changed"
    shutil.copytree(tiny_model_dir, changed)
    weights = load_file(changed / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 1e-3
    save_file(weights, changed / "model.safetensors", metadata={"format": "pt"})
    assert HFTarget(changed).fingerprint() != target.fingerprint()


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_targets_check_prints_capabilities_fingerprint_and_a_generation(tiny_model_dir, target):
    from privaudit.cli import main

    result = CliRunner().invoke(main, ["targets", "check", f"hf:{tiny_model_dir}", "--max-new-tokens", "4"])
    assert result.exit_code == 0, result.output
    assert "capabilities: chat, generate, gradients, score, token_distribution, token_logprobs" in result.output
    assert f"fingerprint:  {target.fingerprint()}" in result.output
    assert "generate:     'My name is' -> " in result.output


def test_cli_targets_check_missing_folder_is_one_line_exit_2(tmp_path):
    from privaudit.cli import main

    result = CliRunner().invoke(main, ["targets", "check", f"hf:{tmp_path / 'missing'}"])
    assert result.exit_code == 2
    assert "model folder does not exist" in result.output
    assert "Traceback" not in result.output


def test_cli_targets_list_names_the_schemes_and_builtins():
    from privaudit.cli import main

    result = CliRunner().invoke(main, ["targets", "list"])
    assert result.exit_code == 0, result.output
    assert "hf:PATH[:adapter=PATH]" in result.output
    assert "builtin:smollm2-135m" in result.output
