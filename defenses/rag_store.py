"""RAG personalization as a compared variant: the store built from the training corpus, optionally scrubbed.

Registered as defense "rag", so `privaudit compare` puts retrieval beside fine-tuning on the same
attacks (Salemi & Zamani 2024 compare RAG and PEFT personalization on utility; this adds privacy):

    [defenses.rag]                                    # per-user store over the base model
    [defenses.rag_shared]    defense = "rag"  partition = "shared"
    [defenses.rag_scrubbed]  defense = "rag"  scrub = true          # Presidio over the store
    [defenses."rag+finetune"] defense = "rag" wraps = "none"        # retrieval over the fine-tuned model

The store holds the corpus' training documents (scrubbed by `scrub.scrub_texts` when asked, the
same Presidio setup as the scrub defense). Utility: token perplexity of held-out *personal* text
given the passages retrieved for it as its own subject (query: the document's first words), the
likelihood form of Salemi & Zamani's utility. The corpus' held-out documents belong to held-out
subjects, whom a per-user store knows nothing about, so RAG is measured on a split *within* each
training subject's documents instead (`own_heldout_split`): the subject's last training document
is held out of a utility store that holds the rest, and `base_heldout_perplexity` is the generator
on the same documents with nothing retrieved (what retrieval buys). The audited store keeps every
training document. A wrapped fine-tuned model has trained on those documents, so its figure is not
held out (the record's notes say so). No training, so `steps` is 0.
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
UTILITY_STORE_FILE = "utility_store.jsonl"  # the store minus each subject's held-out document
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


def store_documents(corpus: Corpus, subjects: tuple, params: RagParams) -> tuple[list[Document], object | None]:
    """The training documents (scrubbed by Presidio when asked) and the scrub report."""
    docs = corpus.split_documents("train")
    if not params.scrub:
        return docs, None
    from privaudit.defenses.scrub import ScrubConfig, scrub_texts

    result = scrub_texts([d.text for d in docs], subjects, ScrubConfig(known_fields=params.known_fields))
    docs = [Document(d.id, d.subject_id, d.kind, text, d.split, d.repeats, ()) for d, text in zip(docs, result.texts)]
    return docs, result.report


def write_documents(docs: list[Document], path: Path) -> str:
    Corpus(tuple(docs), meta={"source": "rag store"}).write(path)
    return str(path.resolve())


def write_store(corpus: Corpus, subjects: tuple, path: Path, params: RagParams) -> tuple[str, object | None]:
    """The training documents as a store file (scrubbed when asked); returns the path and the scrub report."""
    docs, report = store_documents(corpus, subjects, params)
    return write_documents(docs, path), report


def own_heldout_split(corpus: Corpus) -> tuple[set[str], list[Document]]:
    """Each training subject's last training document (subjects with at least 2), and their ids.

    The held-out text is the subject's own, unscrubbed (what the user would write next); the
    utility store is the store without these documents.
    """
    by_subject: dict[str, list[Document]] = {}
    for d in corpus.split_documents("train"):
        if d.subject_id:
            by_subject.setdefault(d.subject_id, []).append(d)
    held = [docs[-1] for docs in by_subject.values() if len(docs) >= 2]
    return {d.id for d in held}, held


def retrieval_perplexity(target, documents: list[Document], *, retrieve: bool = True) -> float:
    """exp(-sum log p / tokens) of each document given the passages retrieved for it as its subject
    (`retrieve=False`: the same prompt template with no passages, the generator alone)."""
    inner = target.inner
    total, tokens = 0.0, 0
    prompts, texts = [], []
    for d in documents:
        query = " ".join(d.text.split()[:QUERY_WORDS])
        view = target.for_user(d.subject_id or "")
        prompts.append(view.augment("", view.retrieve([query])[0] if retrieve else []))
        texts.append(d.text)
    scores = inner.score(prompts, texts)
    for text, s in zip(texts, scores):
        total += s
        tokens += max(1, len(inner.tokenizer(text, add_special_tokens=False).input_ids))
    return math.exp(-total / tokens) if tokens else float("nan")


def utility(docs: list[Document], corpus: Corpus, out_dir: Path, params: RagParams,
            inner: str) -> tuple[float, float | None, int]:
    """(perplexity with retrieval, without, documents) on each training subject's own held-out document."""
    from privaudit.targets.base import load_target

    held_ids, held = own_heldout_split(corpus)
    if not held:
        return float("nan"), None, 0
    store = write_documents([d for d in docs if d.id not in held_ids], out_dir / UTILITY_STORE_FILE)
    target = load_target(f"rag:{store}:top_k={params.top_k}:partition={params.partition}:inner={inner}")
    try:
        return retrieval_perplexity(target, held), retrieval_perplexity(target, held, retrieve=False), len(held)
    finally:
        target.close()


@register_defense
class RagDefense(Defense):
    """Retrieval over the training documents instead of (or on top of) training on them."""

    name = "rag"
    Params = RagParams

    def wrapped_variant(self) -> str | None:
        return self.params.wraps or None

    def apply(self, ctx: DefenseContext) -> DefendedModel:
        p = self.params
        start = time.perf_counter()
        if p.wraps and ctx.inner is None:
            raise InputError(f"defenses.rag.wraps: variant '{p.wraps}' was not built")
        inner = ctx.inner.target_spec if p.wraps and ctx.inner is not None else (
            ctx.base if ":" in ctx.base else f"hf:{ctx.base}")
        docs, report = store_documents(ctx.corpus, ctx.subjects, p)
        store = write_documents(docs, Path(ctx.out_dir) / STORE_FILE)
        if ":" in store:
            raise InputError(f"{store}: a rag store path may not contain ':'")
        spec = f"rag:{store}:top_k={p.top_k}:partition={p.partition}:inner={inner}"
        ppl, base_ppl, held = utility(docs, ctx.corpus, Path(ctx.out_dir), p, inner)
        training = TrainingReport(steps=0, seconds=round(time.perf_counter() - start, 3), train_loss=float("nan"),
                                  heldout_perplexity=ppl, base_heldout_perplexity=base_ppl, mode="rag")
        notes = (f"retrieval ({p.partition}, top_k={p.top_k}) over {len(docs)} "
                 f"training documents{' scrubbed by Presidio' if p.scrub else ''}; generator {inner}",
                 f"utility: perplexity of {held} training subjects' own last document, held out of a utility "
                 "store that holds the rest, given the passages retrieved for it as its subject (base: the "
                 "generator with nothing retrieved); not the held-out subjects' documents fine-tuned variants "
                 "are measured on"
                 + ("; the wrapped model was trained on these documents, so they are not held out from it"
                    if p.wraps else ""))
        record = DefendedModel(name=self.name, target_spec=spec, out_dir=Path(ctx.out_dir), training=training,
                               scrub=report, notes=notes)
        record.save()
        return record
