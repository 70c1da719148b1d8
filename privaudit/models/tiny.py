"""Build a tiny random-init causal LM with its own byte-level BPE tokenizer, in seconds, offline.

Why: tests, the demo and the defense experiments need a model that (after fine-tuning) memorizes
planted PII and that trains on 2 CPU cores. No hub download is allowed, so the tokenizer is trained
with `tokenizers` on the project's own texts and the model is a small `LlamaConfig` (Llama rather
than GPT-2 because Opacus' per-sample gradients break on GPT-2's broadcast position embeddings;
see DESIGN.md). The saved folder loads as `hf:FOLDER` like any user checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from privaudit.errors import InputError

PAD_TOKEN = "<pad>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
UNK_TOKEN = "<unk>"

# A minimal chat format: each turn is '<|role|>\ncontent</s>\n'; the generation prompt opens an
# assistant turn. Enough for `Target.chat` to work on the tiny model (it will not follow it well).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)


def train_tokenizer(texts: Sequence[str], vocab_size: int = 1024):
    """Train a byte-level BPE tokenizer on `texts`; every string is encodable (byte alphabet).

    The post-processor prepends BOS so the first real token is predicted from a context, which makes
    teacher-forced scores of short prompts meaningful.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if not texts:
        raise InputError("tiny model: no training texts given for the tokenizer")
    specials = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN, "<|system|>", "<|user|>", "<|assistant|>"]
    tok = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    bos_id = tok.token_to_id(BOS_TOKEN)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A $B", special_tokens=[(BOS_TOKEN, bos_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        padding_side="left",
        model_max_length=1 << 30,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(
    texts: Sequence[str],
    out_dir: Path,
    *,
    seed: int = 0,
    vocab_size: int = 1024,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    max_position: int = 256,
) -> Path:
    """Train a tokenizer on `texts`, create a seeded random-init Llama, save both to `out_dir`.

    Returns `out_dir`, which `hf:out_dir` loads. Same texts and seed give identical weights.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden_size % num_heads:
        raise InputError(f"tiny model: hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 4,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,  # Opacus handles untied embeddings without shared-parameter care
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
