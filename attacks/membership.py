"""Membership inference on a target's training documents, and canary exposure.

Two probes over one privaudit corpus (`privaudit data corpus` / `privaudit.data.corpus`):

1. Membership: every distinct training document (members) and every held-out document of the same
   templates (non-members) is scored by the target; up to six scores per document, higher = "member":
   LOSS (mean token log-prob, Yeom et al. 2018), zlib ratio (Carlini et al. 2021, Sec. 5.2),
   Min-K% Prob (Shi et al., ICLR 2024), Min-K%++ (Zhang et al. 2024: each token's log-prob
   standardised by the model's next-token distribution; local targets only, `TOKEN_DISTRIBUTION`),
   the reference ratio against a reference model that never saw the corpus (the public base:
   Carlini et al. 2021; Mireshghallah et al. 2022) and, given two or more `references`, offline
   LiRA (Carlini et al., S&P 2022, Sec. IV-C): the target's mean log-prob as a z-score under a
   Gaussian fitted to the references' (membership_metrics.lira_offline). LiRA offline rather than
   RMIA because every user-supplied reference is an OUT model for every document (LiRA's offline
   setting exactly), and RMIA's pairwise test needs population samples disjoint from the evaluated
   non-members, which the corpus' held-out split would have to give up. Reported: ROC
   AUC per score with bootstrap intervals, TPR at 1% and 0.1% FPR (Carlini et al., S&P 2022).
   The documents of one data subject are correlated (memorizing a person lifts all of their
   documents), so the intervals are a cluster bootstrap over subjects (`cluster_bootstrap`,
   privaudit.attacks.membership_metrics); a document without a subject is its own cluster.
2. Canaries: each planted secret is ranked, by the target's `score`, against candidates sampled from
   its format; exposure in bits per canary and per repetition count (Carlini et al., "The Secret
   Sharer", 2019, Sec. 4). A 0-repeat canary is the control: its exposure is chance.

Assumption stated in every result: the attacker holds candidate documents and knows which are
held-out (the evaluation needs ground truth), and the reference ratio assumes a model of the same
language that did not train on the corpus. Canary documents are excluded from the membership
population (they are measured by exposure), so members and non-members share one distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import pandas as pd

from privaudit.attacks.base import Attack, AttackResult, RunContext, register_attack
from privaudit.attacks.membership_metrics import (
    auc_estimate,
    fitted_exposure,
    mean_logprob,
    min_k_plus_plus,
    min_k_prob,
    reference_ratio_score,
    roc_curve,
    sampled_exposure,
    tpr_at_fpr_estimate,
    zlib_ratio_score,
)
from privaudit.attacks.membership_calibration import computed_methods, lira_variance_label, with_lira_scores
from privaudit.attacks.membership_split import NGRAM, blind_features, ngram_overlaps, split_assumption, summarize_split
from privaudit.data.corpus import Canary, Corpus, Document, load_corpus, sample_canary_candidates
from privaudit.errors import InputError
from privaudit.metrics import Estimate, MetricSpec, MetricSpecs, metric_specs, with_old_names
from privaudit.targets.base import SCORE, TOKEN_DISTRIBUTION, TOKEN_LOGPROBS, Target, TokenDistribution, require

METHODS = ("loss", "zlib", "min_k", "min_k_pp", "reference", "lira")
METHOD_LABELS = {"loss": "LOSS", "zlib": "zlib ratio", "min_k": "Min-K% prob", "min_k_pp": "Min-K%++",
                 "reference": "reference ratio", "lira": "LiRA offline"}
# Why a requested method has no scores on this run (it is left out of the table, never faked).
MISSING_WHY = {
    "min_k_pp": "Min-K%++ not computed: the target gives no full next-token distribution (an API's "
                "top_logprobs sees a few tokens, not the vocabulary mu and sigma need); local hf:/builtin: targets do",
    "lira": "LiRA not computed: it needs `references` (at least 2 models) scored on every document",
}
DOC = "doc"
CANARY = "canary"
LOW_FPRS = (("tpr_at_1pct_fpr", 0.01), ("tpr_at_0p1pct_fpr", 0.001))  # "0p1" = 0.1: "." splits FAMILY.MEMBER
# Names before reports/SCHEMA.md's FAMILY.MEMBER scheme, accepted by the gate for one release.
OLD_NAMES = {**{f"auc_{m}": f"auc.{m}" for m in ("loss", "zlib", "min_k", "reference")}, "tpr_at_0.1pct_fpr": "tpr_at_0p1pct_fpr"}


def _membership_specs() -> MetricSpecs:
    """Every metric `summarize_membership` can report (gate names `membership.METRIC`).

    AUC is a probability over (member, non-member) pairs, not a share of trials: kind `mean` with a
    bootstrap interval; its unit is the document and its interval clusters by data subject. TPR at
    a low FPR is the share of member documents flagged (`proportion`). `max_exposure_bits` is the
    largest exposure over the canaries, a maximum without a sampling interval (low = high =
    value, method `max`): kind `point`, judged on its value.
    """
    auc_text = "ROC AUC of membership scores (0.5 = chance); higher means members are told apart"
    specs = [MetricSpec("auc", "mean", "higher_is_worse", "document",
                        f"{auc_text}; the best method on this data (optimistic)", cluster="subject",
                        headline=True)]
    specs += [MetricSpec(f"auc.{m}", "mean", "higher_is_worse", "document", f"{auc_text}; {METHOD_LABELS[m]} score",
                         cluster="subject") for m in METHODS]
    specs += [MetricSpec(name, "proportion", "higher_is_worse", "document",
                         f"share of member documents flagged at FPR <= {fpr:g} (best method)", cluster="subject",
                         headline=name == "tpr_at_1pct_fpr")
              for name, fpr in LOW_FPRS]
    specs.append(MetricSpec("split_ngram_overlap", "mean", "higher_is_worse", "document",
                            f"share of a non-member's word {NGRAM}-grams found in member documents (MIMIR, "
                            "Duan et al. 2024, Sec. 5.1); near 1 = non-members nearly copy members", cluster="subject"))
    specs.append(MetricSpec("split_blind_auc", "mean", "higher_is_worse", "document",
                            "oriented AUC of a model-free text feature (length, compressibility) between the splits: "
                            "well above 0.5 = the split is shifted and every AUC above is inflated", cluster="subject"))
    specs.append(MetricSpec("max_exposure_bits", "point", "higher_is_worse", "canary",
                            "largest canary exposure in bits (Secret Sharer, Sec. 4); at most log2(candidates + 1)"))
    return with_old_names(metric_specs(*specs), OLD_NAMES)


@dataclass(frozen=True)
class MembershipParams:
    """Parameters of `privaudit attack membership` (also the `[attacks.membership]` table)."""

    corpus: str  # corpus JSONL with train / held-out documents and canaries
    reference: str = ""  # target spec of a reference model (e.g. the un-personalized base); "" = none
    references: tuple[str, ...] = ()  # >= 2 reference models that never saw the corpus: offline LiRA
    lira_variance: str = "auto"  # auto (global below 16 references) | global | per_example
    methods: tuple[str, ...] = METHODS
    min_k_fraction: float = 0.2  # Shi et al.'s k (20% least likely tokens)
    max_documents: int = 0  # per split, 0 = all (the first N of each split, in corpus order)
    canaries: bool = True
    num_candidates: int = 999  # sampled candidates per canary; exposure is at most log2(N + 1)
    bootstrap: int = 1000
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if not self.corpus:
            raise InputError("corpus: a corpus JSONL file is required")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise InputError(f"methods: unknown method '{unknown[0] if unknown else ''}' (known: {', '.join(METHODS)})")
        if not 0.0 < self.min_k_fraction <= 1.0:
            raise InputError(f"min_k_fraction: must be in (0, 1], got {self.min_k_fraction}")
        if self.references and len(self.references) < 2:
            raise InputError(f"references: LiRA fits a Gaussian over reference models: give at least 2, "
                             f"got {len(self.references)} (one reference model: use `reference`)")
        if any(not isinstance(r, str) or not r for r in self.references):
            raise InputError("references: each entry must be a target spec string")
        if self.lira_variance not in ("auto", "global", "per_example"):
            raise InputError(f"lira_variance: must be auto, global or per_example, got '{self.lira_variance}'")
        if self.max_documents < 0:
            raise InputError(f"max_documents: must be >= 0, got {self.max_documents}")
        if self.num_candidates < 1:
            raise InputError(f"num_candidates: must be >= 1, got {self.num_candidates}")
        if self.bootstrap < 10:
            raise InputError(f"bootstrap: must be >= 10 resamples, got {self.bootstrap}")
        if not 0.5 < self.confidence < 1.0:
            raise InputError(f"confidence: must be in (0.5, 1), got {self.confidence}")


def membership_documents(corpus: Corpus, max_documents: int = 0) -> list[Document]:
    """Distinct train documents (members) then held-out ones (non-members); canary documents excluded."""
    out: list[Document] = []
    for split in ("train", "heldout"):
        docs = [d for d in corpus.split_documents(split) if d.kind != "canary"]
        out += docs[:max_documents] if max_documents else docs
    return out


def has_token_logprobs(target: Target) -> bool:
    """Whether a backend declares per-token log-probs (needed by LOSS per token and Min-K%)."""
    return TOKEN_LOGPROBS in target.capabilities


def _token_logprobs(target: Target, texts: Sequence[str]) -> list[list[float]]:
    """Each whole document's per-token log-probs (empty prompt: conditioned on BOS / the start token)."""
    return target.token_logprobs([""] * len(texts), list(texts))


@register_attack
class MembershipInference(Attack):
    """LOSS / zlib / Min-K% / reference-ratio membership inference plus canary exposure."""

    name = "membership"
    Params = MembershipParams
    metrics: ClassVar[MetricSpecs] = _membership_specs()
    requires = frozenset({SCORE, TOKEN_LOGPROBS})  # LOSS per token and Min-K% need each token's log-prob
    pii_record_fields = frozenset({"secret"})
    data_file_params = ("corpus",)
    target_params = ("reference",)

    params: MembershipParams

    def nested_targets(self) -> dict[str, str]:
        """`reference` and each of `references` (as `references[i]`): checked, loaded and fingerprinted."""
        out = super().nested_targets()
        out.update({f"references[{i}]": spec for i, spec in enumerate(self.params.references)})
        return out

    # ------------------------------------------------------------------------------------------- run
    def run(self, target: Target, ctx: RunContext) -> AttackResult:
        corpus = load_corpus(self.params.corpus)
        docs = membership_documents(corpus, self.params.max_documents)
        if not any(d.split == "train" for d in docs) or not any(d.split == "heldout" for d in docs):
            raise InputError(f"{self.params.corpus}: membership inference needs train and held-out documents")
        doc_items = [(f"{DOC}|{d.id}", d) for d in docs]
        canaries = list(corpus.canaries) if self.params.canaries else []
        canary_items = [(f"{CANARY}|{c.id}", c) for c in canaries]
        pending = bool(ctx.pending(self.name, target.name, doc_items) or ctx.pending(self.name, target.name, canary_items))
        reference = self._load_reference(self.params.reference, ctx) if self.params.reference and pending else None
        lira_refs: list[Target] = []
        try:
            if self.params.references and ctx.pending(self.name, target.name, doc_items):
                lira_refs = [self._load_reference(spec, ctx) for spec in self.params.references]
            overlaps = ngram_overlaps([d.text for d in docs], [d.split == "train" for d in docs])
            self._score_documents(target, reference, lira_refs, doc_items, dict(zip((d.id for d in docs), overlaps)), ctx)
            self._score_canaries(target, reference, canary_items, ctx)
        finally:
            for ref in [reference, *lira_refs]:
                if ref is not None:
                    ref.close()
        self._generator = str(corpus.meta.get("generator") or "") or None
        return self.summarize(target.name, ctx.records(self.name, target.name))

    def _load_reference(self, spec: str, ctx: RunContext) -> Target:
        ctx.progress.log(f"loading reference target {spec}")
        reference = ctx.load_target(spec)
        for capability in sorted(self.requires):
            require(reference, capability, f"{self.name} (reference)")
        return reference

    def _score_documents(self, target: Target, reference: Target | None, lira_refs: list[Target],
                         items: list[tuple[str, Document]], overlaps: dict[str, float], ctx: RunContext) -> None:
        p = self.params
        # Min-K%++ needs each position's whole next-token distribution: one pass gives it with the log-probs.
        with_dist = "min_k_pp" in p.methods and TOKEN_DISTRIBUTION in target.capabilities

        def call(batch: list[Document]) -> list[tuple[Any, list[float] | None, list[float]]]:
            texts = [d.text for d in batch]
            lps: list[Any] = (target.token_distributions([""] * len(texts), texts) if with_dist
                              else _token_logprobs(target, texts))
            ref_lps = _token_logprobs(reference, texts) if reference is not None else [None] * len(batch)
            lira = [[mean_logprob(lp) for lp in _token_logprobs(ref, texts)] for ref in lira_refs]
            return [(lp, ref, [col[i] for col in lira]) for i, (lp, ref) in enumerate(zip(lps, ref_lps))]

        def record(doc: Document, scored: tuple[Any, list[float] | None, list[float]]) -> dict[str, Any]:
            dist, ref_lp, lira_means = scored
            lp = dist.logprobs if isinstance(dist, TokenDistribution) else dist
            if not lp:
                raise InputError(f"{p.corpus}: document '{doc.id}' has no tokens to score")
            mean = mean_logprob(lp)
            scores: dict[str, float] = {"loss": mean, "zlib": zlib_ratio_score(mean, doc.text),
                                        "min_k": min_k_prob(lp, p.min_k_fraction)}
            if isinstance(dist, TokenDistribution):
                scores["min_k_pp"] = min_k_plus_plus(dist.logprobs, dist.means, dist.stds, p.min_k_fraction)
            payload: dict[str, Any] = {
                "probe": DOC, "doc_id": doc.id, "doc_kind": doc.kind, "subject_id": doc.subject_id,
                "member": doc.split == "train", "repeats": doc.repeats if doc.split == "train" else 0,
                "num_tokens": len(lp), "logprob_sum": float(sum(lp)),
                "ngram_overlap": overlaps[doc.id], "blind": blind_features(doc.text),
            }
            if ref_lp:
                ref_mean = mean_logprob(ref_lp)
                scores["reference"] = reference_ratio_score(mean, ref_mean)
                payload["reference_mean_logprob"] = ref_mean
            if lira_means:  # LiRA's Gaussian is fitted over all documents at summary time
                payload["references_mean_logprob"] = lira_means
            payload["scores"] = {m: v for m, v in scores.items() if m in p.methods}
            return payload

        ctx.probe(self.name, target.name, items, call=call, record=record, label="membership: scoring documents")

    def _score_canaries(self, target: Target, reference: Target | None, items: list[tuple[str, Canary]],
                        ctx: RunContext) -> None:
        """One canary per call: its secret and candidates are scored in chunks of their own (`_score_batched`)."""
        n = self.params.num_candidates

        def call(batch: list[Canary]) -> list[tuple[int, list[float], list[float] | None]]:
            out = []
            for canary in batch:
                candidates = sample_canary_candidates(canary, min(n, canary.candidate_space().size - 1), ctx.seed)
                prompts = [canary.prompt] * (len(candidates) + 1)
                conts = [canary.continuation()] + [canary.continuation(c) for c in candidates]
                scores = _score_batched(target, prompts, conts, ctx.batch_size)
                ref_scores = _score_batched(reference, prompts, conts, ctx.batch_size) if reference is not None else None
                out.append((len(candidates), scores, ref_scores))
            return out

        def record(canary: Canary, scored: tuple[int, list[float], list[float] | None]) -> dict[str, Any]:
            num_candidates, scores, ref_scores = scored
            rank, bits = sampled_exposure(scores[0], scores[1:])
            payload: dict[str, Any] = {
                "probe": CANARY, "canary_id": canary.id, "repeats": canary.repeats, "secret": canary.secret,
                "num_candidates": num_candidates + 1, "rank": rank, "exposure_bits": bits,
                "max_exposure_bits": math.log2(num_candidates + 1),
                "fitted_exposure_bits": _safe_fitted(scores[0], scores[1:]),
                "space_size": canary.candidate_space().size, "secret_logprob": scores[0],
            }
            if ref_scores is not None:
                ref_rank, ref_bits = sampled_exposure(ref_scores[0], ref_scores[1:])
                payload.update(reference_rank=ref_rank, reference_exposure_bits=ref_bits)
            return payload

        ctx.probe(self.name, target.name, items, call=call, record=record, label="membership: canary exposure",
                  batch_size=1)

    # ------------------------------------------------------------------------------------- summarize
    def summarize(self, target_name: str, records: pd.DataFrame) -> AttackResult:
        # the corpus generator is known after `run` (a report re-summarizing stored records has none)
        return summarize_membership(self.name, target_name, records, self.params,
                                    generator=getattr(self, "_generator", None))


def _score_batched(target: Target, prompts: list[str], conts: list[str], batch_size: int) -> list[float]:
    # One call per chunk of rows keeps progress responsive and memory bounded on large candidate sets;
    # within a chunk the backend batches (and the run cache deduplicates).
    chunk = max(batch_size * 8, 64)
    out: list[float] = []
    for start in range(0, len(prompts), chunk):
        out += target.score(prompts[start : start + chunk], conts[start : start + chunk])
    return out


def _safe_fitted(true_score: float, candidate_scores: Sequence[float]) -> float | None:
    try:
        value = fitted_exposure(true_score, candidate_scores)
    except (ValueError, RuntimeError, FloatingPointError):
        return None
    return value if math.isfinite(value) else None


# ------------------------------------------------------------------------------------------ summary
def summarize_membership(attack: str, target_name: str, records: pd.DataFrame,
                         params: MembershipParams, generator: str | None = None) -> AttackResult:
    """Metrics, tables and charts from stored records alone (the report re-runs this).

    `generator` (the corpus' own record of what drew its splits) is stated when the caller knows it.
    """
    metrics: dict[str, Estimate] = {}
    tables: dict[str, list[dict[str, Any]]] = {}
    charts: dict[str, Any] = {}
    probe = records["probe"] if "probe" in records else pd.Series(dtype=object)
    docs = with_lira_scores(records[probe == DOC], params)
    canaries = records[probe == CANARY]
    split_note = None
    if len(docs):
        _summarize_documents(docs, params, metrics, tables, charts)
        labels = [bool(m) for m in docs["member"]]
        if any(labels) and not all(labels):
            split_metrics, row = summarize_split(docs, subject_clusters(docs), labels, bootstrap=params.bootstrap,
                                                 confidence=params.confidence, generator=generator)
            metrics.update(split_metrics)
            tables["split"] = [row]
            split_note = split_assumption(row)
    if len(canaries):
        _summarize_canaries(canaries, metrics, tables, charts)
    assumptions = [
        "attacker holds candidate documents and scores them with the target (grey-box: log-probabilities)",
        "non-members are held-out documents from the same templates; canary documents are excluded",
        "'auc' reports the best method on this data, which is optimistic; per-method AUCs are in the table",
    ]
    if split_note:
        assumptions.append(split_note)
    if params.reference:
        assumptions.append(f"reference ratio assumes '{params.reference}' never saw the corpus")
    if "lira" in computed_methods(docs):
        assumptions.append(f"LiRA offline (Carlini et al. 2022, Sec. IV-C) assumes none of the {len(params.references)} "
                           f"references saw the corpus; Gaussian variance {lira_variance_label(params)}")
    assumptions += [MISSING_WHY[m] for m in params.methods if m in MISSING_WHY and len(docs)
                    and m not in computed_methods(docs) and (m != "lira" or params.references)]
    if len(canaries):
        assumptions.append("canary exposure ranks the secret among sampled candidates of its format "
                           "(Secret Sharer, Sec. 4); 0-repeat canaries are chance-level controls")
    return AttackResult(attack=attack, target=target_name, records=records, metrics=metrics, tables=tables,
                        charts=charts, assumptions=assumptions,
                        provenance={"methods": list(params.methods), "min_k_fraction": params.min_k_fraction,
                                    "references": list(params.references) or None, "corpus_generator": generator,
                                    "bootstrap": params.bootstrap, "confidence": params.confidence,
                                    "reference": params.reference or None, "corpus": params.corpus})


def _summarize_documents(docs: pd.DataFrame, params: MembershipParams, metrics: dict[str, Estimate],
                         tables: dict[str, list[dict[str, Any]]], charts: dict[str, Any]) -> None:
    labels = [bool(m) for m in docs["member"]]
    if all(labels) or not any(labels):
        return
    clusters = subject_clusters(docs)
    boot = dict(clusters=clusters, num_resamples=params.bootstrap, confidence=params.confidence)
    rows, curves, aucs = [], [], {}
    for m_index, method in enumerate(METHODS):
        if method not in params.methods:
            continue
        scores = [s.get(method) if isinstance(s, dict) else None for s in docs["scores"]]
        if any(v is None for v in scores):
            continue  # e.g. the reference ratio without a reference model
        auc = auc_estimate(scores, labels, seed=m_index, **boot)
        tprs = {name: tpr_at_fpr_estimate(scores, labels, fpr, seed=100 + m_index, **boot) for name, fpr in LOW_FPRS}
        aucs[method] = (auc, tprs)
        metrics[f"auc.{method}"] = auc
        rows.append({"method": method, "label": METHOD_LABELS[method], "auc": auc.value, "auc_low": auc.low,
                     "auc_high": auc.high, **{k: e.value for k, e in tprs.items()}})
        curve = roc_curve(scores, labels)
        curves.append({"label": METHOD_LABELS[method], "fpr": list(curve.fpr), "tpr": list(curve.tpr),
                       "auc": auc.value})
    if not aucs:
        return
    best = max(aucs, key=lambda k: aucs[k][0].value)
    metrics["auc"] = aucs[best][0]
    for name, _ in LOW_FPRS:
        metrics[name] = aucs[best][1][name]
    for row in rows:
        row["best"] = row["method"] == best
    tables["methods"] = rows
    n_members, n_non = sum(labels), len(labels) - sum(labels)
    charts["roc"] = {"kind": "roc", "title": f"Membership ROC ({n_members} members, {n_non} non-members)",
                     "curves": curves, "x_label": "false positive rate", "y_label": "true positive rate"}
    tables["auc_by_repeats"] = _auc_by_repeats(docs, best, labels, clusters, params)


def subject_clusters(docs: pd.DataFrame) -> list[str | None]:
    """Each document's data subject (its bootstrap cluster); None (own cluster) where it has none."""
    if "subject_id" not in docs:
        return [None] * len(docs)
    return [s if isinstance(s, str) and s else None for s in docs["subject_id"]]


def _auc_by_repeats(docs: pd.DataFrame, method: str, labels: list[bool], clusters: list[str | None],
                    params: MembershipParams) -> list[dict[str, Any]]:
    """AUC of members trained r times against all non-members: memorization vs duplication."""
    scores = [s[method] for s in docs["scores"]]
    non = [(s, c) for s, y, c in zip(scores, labels, clusters) if not y]
    rows = []
    for r in sorted({int(x) for x, y in zip(docs["repeats"], labels) if y}):
        mem = [(s, c) for s, y, rep, c in zip(scores, labels, docs["repeats"], clusters) if y and int(rep) == r]
        est = auc_estimate([s for s, _ in mem + non], [True] * len(mem) + [False] * len(non),
                           clusters=[c for _, c in mem + non], num_resamples=params.bootstrap,
                           confidence=params.confidence, seed=1000 + r)
        rows.append({"repeats": r, "method": method, "members": len(mem), "non_members": len(non),
                     "auc": est.value, "auc_low": est.low, "auc_high": est.high})
    return rows


def _summarize_canaries(canaries: pd.DataFrame, metrics: dict[str, Estimate],
                        tables: dict[str, list[dict[str, Any]]], charts: dict[str, Any]) -> None:
    rows = []
    for rec in canaries.sort_values(["repeats", "canary_id"]).to_dict("records"):
        row = {k: rec.get(k) for k in ("canary_id", "repeats", "rank", "num_candidates", "exposure_bits",
                                       "max_exposure_bits", "fitted_exposure_bits", "reference_exposure_bits")}
        rows.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    tables["canaries"] = rows
    by_rep = []
    for r, group in canaries.groupby("repeats"):
        bits = [float(b) for b in group["exposure_bits"]]
        entry = {"repeats": int(r), "canaries": len(bits), "mean_exposure_bits": sum(bits) / len(bits),
                 "max_exposure_bits": max(bits), "best_rank": int(group["rank"].min()),
                 "max_possible_bits": float(group["max_exposure_bits"].max())}
        if "reference_exposure_bits" in group and group["reference_exposure_bits"].notna().all():
            entry["reference_mean_exposure_bits"] = float(group["reference_exposure_bits"].mean())
        by_rep.append(entry)
    tables["exposure_by_repeats"] = by_rep
    all_bits = [float(b) for b in canaries["exposure_bits"]]
    top = max(all_bits)
    metrics["max_exposure_bits"] = Estimate(value=top, low=top, high=top, n=len(all_bits), method="max")
    charts["exposure_by_repeats"] = {
        "kind": "bars", "title": "Canary exposure (bits) by repetition count",
        "labels": [f"{e['repeats']} repeats" for e in by_rep],
        "values": [e["mean_exposure_bits"] for e in by_rep],
        "low": [min(float(b) for b in canaries[canaries["repeats"] == e["repeats"]]["exposure_bits"]) for e in by_rep],
        "high": [e["max_exposure_bits"] for e in by_rep],
        "max": max(e["max_possible_bits"] for e in by_rep), "value_label": "exposure (bits)",
    }
