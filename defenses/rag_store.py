"""RAG personalization as a compared variant: the store built from the training corpus, optionally scrubbed.

Registered as defense "rag", so `privaudit compare` puts retrieval beside fine-tuning on the same
attacks (Salemi & Zamani 2024 compare RAG and PEFT personalization on utility; this adds privacy):

    [defenses.rag]                                    # per-user store over the base model
    [defenses.rag_shared]    defense = "rag"  partition = "shared"
    [defenses.rag_scrubbed]  defense = "rag"  scrub = true          # Presidio over the store
    [defenses."rag+finetune"] defense = "rag" wraps = "none"        # retrieval over the fine-tuned model

The store holds the corpus' training documents (scrubbed by `scrub.scrub_texts` when asked, the
same Presidio setup as the scrub defense). Utility, the one metric every variant shares: token
perplexity of the corpus' *held-out* documents (the same documents fine-tuned variants are measured
on), each scored by the generating model given the passages retrieved for it as its own subject
(query: the document's first words). No training, so `steps` is 0.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from privaudit.data.corpus_types import Corpus, Document
from privaudit.defenses.registry import DefendedModel, Defense, DefenseContext, TrainingReport, register_defense
from privaudit.errors import InputError
from privaudit.targets.retrieval import PARTITIONS

STORE_FILE = "store.jsonl"
QUERY_WORDS = 12


@dataclass(frozen=True)
class RagParams:
    """A RAG variant: partition, passages per request, Presidio over the store, the model it wraps."""

    partition: str = "per_user"
    top_k: int = 3
    scrub: bool = False
    known_fields: tuple[str, ...] = ()  # subject fields also removed as exact known values when scrubbing
    wraps: str = ""  # a compared variant whose model generates (e.g. "none" = the fine-tuned model)

    def __post_init__(self) -> None:
        if self.partition not in PARTITIONS:
            raise InputError(f"partition: unknown partition '{self.partition}' (known: {', '.join(PARTITIONS)})")
        if self.top_k < 1:
            raise InputError(f"top_k: must be >= 1, got {self.top_k}")


def write_store(corpus: Corpus, subjects: tuple, path: Path, params: RagParams) -> tuple[str, object | None]:
    """The training documents as a store file (scrubbed when asked); returns the path and the scrub report."""
    docs = corpus.split_documents("train")
    report = None
    if params.scrub:
        from privaudit.defenses.scrub import ScrubConfig, scrub_texts

        result = scrub_texts([d.text for d in docs], subjects, ScrubConfig(known_fields=params.known_fields))
        docs = [Document(d.id, d.subject_id, d.kind, text, d.split, d.repeats, ()) for d, text in zip(docs, result.texts)]
        report = result.report
    Corpus(tuple(docs), meta={"source": "rag store"}).write(path)
    return str(path.resolve()), report


def retrieval_perplexity(target, documents: list[Document]) -> float:
    """exp(-sum log p / tokens) of each document given the passages retrieved for it as its subject."""
    inner = target.inner
    total, tokens = 0.0, 0
    prompts, texts = [], []
    for d in documents:
        query = " ".join(d.text.split()[:QUERY_WORDS])
        view = target.for_user(d.subject_id or "")
        prompts.append(view.augment("", view.retrieve([query])[0]))
        texts.append(d.text)
    scores = inner.score(prompts, texts)
    for text, s in zip(texts, scores):
        total += s
        tokens += max(1, len(inner.tokenizer(text, add_special_tokens=False).input_ids))
    return math.exp(-total / tokens) if tokens else float("nan")


@register_defense
class RagDefense(Defense):
    """Retrieval over the training documents instead of (or on top of) training on them."""

    name = "rag"
    Params = RagParams

    def wrapped_variant(self) -> str | None:
        return self.params.wraps or None

    def apply(self, ctx: DefenseContext) -> DefendedModel:
        from privaudit.targets.base import load_target

        p = self.params
        start = time.perf_counter()
        if p.wraps and ctx.inner is None:
            raise InputError(f"defenses.rag.wraps: variant '{p.wraps}' was not built")
        inner = ctx.inner.target_spec if p.wraps and ctx.inner is not None else (
            ctx.base if ":" in ctx.base else f"hf:{ctx.base}")
        store, report = write_store(ctx.corpus, ctx.subjects, Path(ctx.out_dir) / STORE_FILE, p)
        if ":" in store:
            raise InputError(f"{store}: a rag store path may not contain ':'")
        spec = f"rag:{store}:top_k={p.top_k}:partition={p.partition}:inner={inner}"
        target = load_target(spec)
        try:
            heldout = ctx.corpus.split_documents("heldout")
            ppl = retrieval_perplexity(target, heldout) if heldout else float("nan")
        finally:
            target.close()
        training = TrainingReport(steps=0, seconds=round(time.perf_counter() - start, 3), train_loss=float("nan"),
                                  heldout_perplexity=ppl, mode="rag")
        notes = (f"retrieval ({p.partition}, top_k={p.top_k}) over {len(ctx.corpus.split_documents('train'))} "
                 f"training documents{' scrubbed by Presidio' if p.scrub else ''}; generator {inner}",
                 "utility: held-out documents' perplexity given the passages retrieved for them as their subject")
        record = DefendedModel(name=self.name, target_spec=spec, out_dir=Path(ctx.out_dir), training=training,
                               scrub=report, notes=notes)
        record.save()
        return record
