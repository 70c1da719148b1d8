"""PII reconstruction and inference on masked training sentences (Lukas et al., IEEE S&P 2023).

Registered as attack "reconstruct" (CLI `privaudit attack reconstruct`, audit table
`[attacks.reconstruct]`). Scrubbing removes PII strings from the training text, but the model may
still rank the true value first when asked to fill the hole: this attack measures exactly that
(Lukas et al., "Analyzing Leakage of Personally Identifiable Information in Language Models",
Sec. 4.3 reconstruction, Sec. 4.4 inference). For each training sentence whose PII value is masked
(`reconstruction_probes.corpus_sentences`, or a user's `"... [MASK] ..."` templates):

- inference (`parts` holds "inference"): the attacker holds a candidate set that contains the
  truth: the truth, other subjects' values of the same field and values of generated subjects
  (`pii_likelihood.candidate_pool`; never in the training data), `num_candidates` of them besides
  the truth. Each fills the mask and the whole sentence is scored (mean token log-prob, i.e. -log
  perplexity, text before *and* after the mask); reported: the truth ranks first (top-1), in the
  top 5, and its exposure bits (Carlini et al. 2019, Sec. 4).
- reconstruction (`parts` holds "reconstruction"): no candidate set. The target samples
  `num_samples` continuations of the prefix (top-k sampling, k = `top_k`), privaudit's detectors
  take the values of the field out of them, and the same full-sentence score ranks them; a hit is
  the truth ranked first (exact reconstruction, top-1).
- `baseline_target` (the base model before fine-tuning; `compare` passes its base): the same
  sentences and candidate sets on it, so each rate comes with the base model's rate and the paired
  difference, clustered by subject (`metrics.paired_difference`). The base reconstructs from its
  own samples.

Needs per-token log-probs (`token_logprobs`); a target without them is refused in one line.
Records (one per sentence and part, stored as computed, so runs resume) hold the masked sentence,
the truth, the truth's rank and the top candidates; `reconstruction_summary` derives the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import pandas as pd

from privaudit.attacks.base import Attack, AttackResult, RunContext, register_attack
from privaudit.attacks.pii_likelihood import candidate_pool, draw_candidates
from privaudit.attacks.reconstruction_probes import (
    MaskedSentence, Ranking, corpus_sentences, extract_candidates, load_masked_templates, rank_candidates,
    sentence_score,
)
from privaudit.attacks.reconstruction_summary import (
    BASELINE_INFERENCE, BASELINE_RECONSTRUCTION, INFERENCE, RECONSTRUCTION, RECONSTRUCT_METRICS, TOP_SHOWN,
    summarize_reconstruction,
)
from privaudit.data.subjects import DataSubject, load_subjects
from privaudit.errors import InputError
from privaudit.metrics import MetricSpecs
from privaudit.targets.base import GENERATE, TOKEN_LOGPROBS, GenerationConfig, Target, require

PARTS = ("inference", "reconstruction")


@dataclass(frozen=True)
class ReconstructParams:
    """Parameters (`[attacks.reconstruct]`; CLI `privaudit attack reconstruct`)."""

    subjects: str  # data subjects JSONL: the truths, and the other subjects' values as candidates
    corpus: str = ""  # the training corpus (privaudit-corpus JSONL) whose sentences are masked
    templates_file: str = ""  # or: JSONL of {"subject_id", "pii_type", "template": "... [MASK] ..."}
    parts: tuple[str, ...] = PARTS
    pii_types: tuple[str, ...] = ()  # empty = every field found in the sentences
    split: str = "train"  # corpus split whose sentences are attacked ("heldout": a never-trained control)
    context: str = "sentence"  # "sentence" (Lukas et al.) or "document": how much text surrounds the mask
    max_sentences_per_field: int = 1  # distinct masked sentences per (subject, field); 0 = all
    max_subjects: int = 0  # 0 = every subject with a sentence
    num_candidates: int = 19  # inference: candidates besides the truth
    num_samples: int = 8  # reconstruction: sampled continuations of the prefix
    top_k: int = 40  # reconstruction: top-k sampling
    temperature: float = 1.0
    max_new_tokens: int = 24
    baseline_target: str = ""  # the base model, e.g. hf:public_base (compare passes its base)

    def __post_init__(self) -> None:
        if not self.subjects:
            raise InputError("subjects: a data-subjects JSONL file is required")
        if bool(self.corpus) == bool(self.templates_file):
            raise InputError("corpus / templates_file: give exactly one source of masked sentences")
        unknown = [p for p in self.parts if p not in PARTS]
        if unknown or not self.parts:
            raise InputError(f"parts: expected some of {', '.join(PARTS)}, got {unknown[0] if unknown else 'none'}")
        if self.context not in ("sentence", "document"):
            raise InputError(f"context: 'sentence' or 'document', got {self.context!r}")
        if self.split not in ("train", "heldout"):
            raise InputError(f"split: 'train' or 'heldout', got {self.split!r}")
        for name in ("num_candidates", "num_samples", "max_new_tokens", "top_k"):
            if getattr(self, name) < 1:
                raise InputError(f"{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("max_sentences_per_field", "max_subjects"):
            if getattr(self, name) < 0:
                raise InputError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.temperature <= 0:
            raise InputError(f"temperature: must be > 0, got {self.temperature}")

    def sampling(self, seed: int) -> GenerationConfig:
        return GenerationConfig(max_new_tokens=self.max_new_tokens, num_samples=self.num_samples, do_sample=True,
                                temperature=self.temperature, top_k=self.top_k, seed=seed)


@register_attack
class PiiReconstruction(Attack):
    """Rank candidate values of a masked training sentence by the whole sentence's likelihood."""

    name = "reconstruct"
    Params = ReconstructParams
    metrics: ClassVar[MetricSpecs] = RECONSTRUCT_METRICS
    requires = frozenset({TOKEN_LOGPROBS})
    # truth/known: the subject's values; candidates: other subjects' values the ranking shows.
    pii_record_fields = frozenset({"truth", "known", "top_candidates"})
    data_file_params = ("subjects", "corpus", "templates_file")
    target_params = ("baseline_target",)
    # `compare` fills `baseline_target` with its base model, so every variant is judged against it.
    compare_baseline_param: ClassVar[str] = "baseline_target"

    params: ReconstructParams

    def data_files(self):  # -> list[Path]
        """The files read (their hashes join the run's identity), after reading the masked sentences
        once: the runner asks before any model loads, so a bad template line, a missing file or a
        corpus without a single masked value fails first, in one line. (Not in `from_config`:
        re-rendering a report re-reads the config, and must not need the corpus.)"""
        self.sentences()
        return super().data_files()

    def check_target(self, target: Target) -> None:
        require(target, TOKEN_LOGPROBS, f"{self.name} (it scores whole sentences token by token)")
        if "reconstruction" in self.params.parts:
            require(target, GENERATE, f"{self.name} (reconstruction samples candidates)")

    def sentences(self) -> list[MaskedSentence]:
        """The masked sentences to attack (validated before any model loads)."""
        p = self.params
        subjects = load_subjects(p.subjects)
        if p.templates_file:
            found = load_masked_templates(p.templates_file, subjects)
            found = [s for s in found if not p.pii_types or s.pii_type in p.pii_types]
        else:
            from privaudit.data.corpus import load_corpus

            found = corpus_sentences(load_corpus(p.corpus), subjects, pii_types=p.pii_types, split=p.split,
                                     max_per_field=p.max_sentences_per_field, context=p.context)
        if p.max_subjects:
            keep = set(list(dict.fromkeys(s.subject_id for s in found))[: p.max_subjects])
            found = [s for s in found if s.subject_id in keep]
        if not found:
            raise InputError(f"{p.templates_file or p.corpus}: no masked sentence: no {p.split} document holds a "
                             f"subject's {'/'.join(p.pii_types) or 'PII'} value verbatim")
        return found

    def run(self, target: Target, ctx: RunContext) -> AttackResult:
        p = self.params
        sentences = self.sentences()
        subjects = load_subjects(p.subjects)
        names = {s.id: s.name for s in subjects}
        candidates = self._candidate_sets(sentences, subjects, ctx.seed) if "inference" in p.parts else {}
        todo = [(INFERENCE, BASELINE_INFERENCE)] if "inference" in p.parts else []
        todo += [(RECONSTRUCTION, BASELINE_RECONSTRUCTION)] if "reconstruction" in p.parts else []
        for kind, _ in todo:
            self._run_part(target, kind, sentences, candidates, names, ctx, target.name)
        if p.baseline_target:
            pending = [k for _, k in todo
                       if ctx.pending(self.name, target.name, ((f"{k}|{s.key}", s) for s in sentences))]
            if pending:  # a resumed run whose baseline is done need not load it
                ctx.progress.log(f"loading baseline target {p.baseline_target}")
                baseline = ctx.load_target(p.baseline_target)
                try:
                    self.check_target(baseline)
                    for kind in pending:
                        self._run_part(baseline, kind, sentences, candidates, names, ctx, target.name,
                                       extra={"baseline_target": baseline.name})
                finally:
                    baseline.close()
        return self.summarize(target.name, ctx.records(self.name, target.name))

    def _candidate_sets(self, sentences: Sequence[MaskedSentence], subjects: Sequence[DataSubject],
                        seed: int) -> dict[str, list[str]]:
        """Per sentence: the truth first, then `num_candidates` same-type distractors (seeded per subject)."""
        pool = candidate_pool(subjects, self.params.num_candidates, seed)
        return {s.key: [s.truth, *draw_candidates(s.truth, s.pii_type, pool, self.params.num_candidates, seed,
                                                  s.subject_id)] for s in sentences}

    def _run_part(self, target: Target, kind: str, sentences: Sequence[MaskedSentence],
                  candidates: dict[str, list[str]], names: dict[str, str], ctx: RunContext, target_name: str,
                  extra: dict[str, Any] | None = None) -> None:
        """One part (inference or reconstruction) on one model: sentences in batches, one record each."""
        inference = kind in (INFERENCE, BASELINE_INFERENCE)
        cfg = self.params.sampling(ctx.seed)

        def call(batch: list[MaskedSentence]) -> list[tuple[Ranking, int]]:
            if inference:
                sets = [candidates[s.key] for s in batch]
            else:
                outputs = target.generate([s.prefix.rstrip() for s in batch], cfg)
                sets = [extract_candidates(s.pii_type, outs) for s, outs in zip(batch, outputs)]
            return [(ranking, len(cands)) for ranking, cands in
                    zip(score_candidates(target, batch, sets), sets)]

        def record(s: MaskedSentence, out: tuple[Ranking, int]) -> dict[str, Any]:
            ranking, generated = out
            return {"kind": kind, "subject_id": s.subject_id, "pii_type": s.pii_type, "sentence": s.key,
                    "template": s.template, "source": s.source, "truth": s.truth,
                    "known": {"name": names.get(s.subject_id, "")},
                    "rank": ranking.rank, "num_candidates": ranking.num_candidates,
                    "top1": ranking.top1, "top5": ranking.top5, "exposure_bits": ranking.exposure,
                    "truth_generated": ranking.rank > 0, "candidates_generated": generated,
                    "top_candidates": [{"value": c, "score": round(sc, 6)} for c, sc in ranking.ranked[:TOP_SHOWN]],
                    **(extra or {})}

        ctx.probe(self.name, target_name, ((f"{kind}|{s.key}", s) for s in sentences), call=call, record=record,
                  label=f"{kind.replace('_', ' ')} ({target.name})",
                  weight=(lambda s: len(candidates[s.key])) if inference else (lambda s: self.params.num_samples),
                  sort_key=lambda s: len(s.template))

    def summarize(self, target_name: str, records: pd.DataFrame) -> AttackResult:
        return summarize_reconstruction(self.name, target_name, records, self.params)


def score_candidates(target: Target, sentences: Sequence[MaskedSentence],
                     candidate_sets: Sequence[Sequence[str]]) -> list[Ranking]:
    """Fill each sentence with each of its candidates, score all of them in one call, rank per sentence."""
    texts = [s.fill(c) for s, cands in zip(sentences, candidate_sets) for c in cands]
    lps = target.token_logprobs([""] * len(texts), texts) if texts else []
    out, pos = [], 0
    for s, cands in zip(sentences, candidate_sets):
        scores: dict[str, float] = {}
        for c, lp in zip(cands, lps[pos: pos + len(cands)]):
            scores.setdefault(c, sentence_score(lp))
        pos += len(cands)
        out.append(rank_candidates(s.truth, scores))
    return out
