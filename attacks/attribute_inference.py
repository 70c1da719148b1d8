"""Personal attribute inference from an author's comments (SynthPAI / Beyond Memorization).

Staab et al., "Beyond Memorization: Violating Privacy via Inference with Large Language Models"
(ICLR 2024) show that an LLM reading someone's public comments infers age, location, income, etc.
far above chance; Yukhymenko et al. (SynthPAI, 2024) release synthetic profiles with labelled
attributes, hardness (1-5) and certainty, and the evaluation protocol scored in
`privaudit.attacks.attribute_scoring`. This attack asks an adversary for the top-3 guesses of every
attribute of every author and scores them with those rules.

Adversaries:
- ``target``: the audited target itself is the LLM adversary. One prompt per author asks for all
  attributes at once (as in both papers); prompts are generated in batches across authors.
- ``baseline``: TF-IDF + logistic regression cross-fitted over the labelled authors (each author is
  predicted by a model that never saw them), plus the majority class; the target is not queried.
  Both are scored with the same rules, so they are the reference an LLM's accuracy is read against.

Defense hook (``anonymize``): the comments are also run through Presidio (`privaudit.pii.anonymize`)
and the adversary is asked again; Beyond Memorization Sec. 6 reports that such text anonymization
leaves inference largely intact, because models infer from context rather than from named entities.
Without a spaCy NER model Presidio finds no places, so a gazetteer of the city and country names in
the label tables stands in for NER's LOCATION entities (``anonymize_gazetteer``).

Records: one per (condition, adversary, author, attribute), keyed so that a rerun resumes.
Metrics (gate names ``attributes.METRIC``, the ``FAMILY.MEMBER`` scheme of reports/SCHEMA.md):
``top1``, ``top3`` overall; per attribute ``top1.<attribute>``, ``top3.<attribute>``; per hardness
``top1.hardness<h>``, ``top3.hardness<h>``; secondary credit ``top1_country.<location attribute>``
(country-level) and ``top1_within_one.<ordinal attribute>`` (off by one category), never mixed
into top-k; with ``anonymize``: ``anonymized_top1``, ``anonymized_top3``,
``anonymized_top1.<attribute>`` and ``anonymization_drop_top1`` (paired difference); with the
baseline adversary also ``majority_top1``, ``majority_top3`` and per attribute. The names before
the scheme (``top1_age``, ``top1_hardness3``, ...) are declared as deprecated aliases (`OLD_NAMES`).

Unit of analysis: one record is one (author, attribute) guess, and one author's guesses are not
independent (the same comments, the same writing style, the same adversary's reading), so every
rate's interval is clustered by author (`clustered_proportion`, Wilson at the design-effect
effective sample size; Kish 1965). The anonymization drop compares the same (author, attribute)
guesses before and after anonymization: a paired difference with a cluster-robust interval over
authors (`paired_difference`), not Newcombe's unpaired one.
A threshold file that gates a family and one of its members quotes the keys
(``"attributes.top1" = ...`` next to ``"attributes.top1.age" = ...``): unquoted, TOML would read
``top1`` as both a value and a table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, ClassVar, Mapping, Sequence

import pandas as pd

from privaudit.attacks.attribute_metrics import (  # noqa: F401  (AUTHOR, GUESS_UNIT, OLD_NAMES: public here too)
    AUTHOR,
    GUESS_UNIT,
    OLD_NAMES,
    accuracy_metrics,
    attribute_metric_specs,
    SECONDARY_FAMILIES,
    breakdown_tables,
    guess_scores,
    paired_drop,
    reported_for_every_condition,
    subset,
    undecided_metrics,
)
from privaudit.attacks.attribute_parser import parse_answer
from privaudit.attacks.attribute_scoring import GuessScores, label_tables, score_guesses
from privaudit.attacks.attribute_judge import AttributeJudge
from privaudit.attacks.attribute_predictions import IDENTIFYING
from privaudit.attacks.synthpai_rules import LOCATION_ATTRIBUTES, Verdict, score_official
from privaudit.attacks.base import Attack, AttackResult, RunContext, register_attack
from privaudit.data.synthpai import ATTRIBUTES, AttributeLabel, Author, bundled_sample_path, load_authors
from privaudit.errors import InputError
from privaudit.metrics import Estimate, MetricSpecs
from privaudit.targets.base import CHAT, GENERATE, GenerationConfig, Target

ADVERSARIES = ("target", "baseline")
SCORINGS = ("synthpai", "privaudit")
ORIGINAL, ANONYMIZED = "original", "anonymized"
MAJORITY = "majority"


@dataclass(frozen=True)
class AttributeParams:
    """Parameters of the attribute-inference attack (config table ``[attacks.attributes]``)."""

    authors: str = ""  # JSONL of authors in any SynthPAI layout; empty = the bundled synthetic sample
    max_authors: int = 0  # 0 = all authors of the file
    attributes: tuple[str, ...] = ()  # empty = all eight SynthPAI attributes
    adversary: str = "target"  # "target" (the audited model is the LLM adversary) or "baseline"
    anonymize: bool = False  # also measure after Presidio anonymization of the comments
    anonymize_operator: str = "replace"
    anonymize_gazetteer: bool = True  # city/country names as known LOCATION values (NER stand-in)
    min_certainty: int = 3  # SynthPAI evaluates labels with certainty >= 3
    max_comments: int = 0  # per author, 0 = all (the first N comments are kept)
    batch_size: int = 0  # prompts per generation call; 0 = the run's --batch-size
    max_new_tokens: int = 384
    folds: int = 5  # cross-fitting folds of the baseline adversary
    # "synthpai": SynthPAI's official rules (attacks/synthpai_rules.py); "privaudit": the stricter
    # alias/category rules of attacks/attribute_scoring.py (a named departure, off by default).
    scoring: str = "synthpai"
    predictions: str = ""  # a SynthPAI-format file of stored guesses: score them, query no target
    model: str = ""  # whose predictions in that file (empty: the file's only model)
    judge: str = ""  # target spec of the LLM judge for guesses no rule decides (empty: they stay undecided)

    def __post_init__(self) -> None:
        if self.adversary not in ADVERSARIES:
            raise InputError(f"adversary: must be one of {', '.join(ADVERSARIES)}, got {self.adversary!r}")
        unknown = [a for a in self.attributes if a not in ATTRIBUTES]
        if unknown:
            raise InputError(f"attributes: unknown attribute '{unknown[0]}' (known: {', '.join(ATTRIBUTES)})")
        for name in ("max_authors", "max_comments", "batch_size"):
            if getattr(self, name) < 0:
                raise InputError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.max_new_tokens < 1:
            raise InputError(f"max_new_tokens: must be >= 1, got {self.max_new_tokens}")
        if not 1 <= self.min_certainty <= 5:
            raise InputError(f"min_certainty: must be between 1 and 5, got {self.min_certainty}")
        if self.folds < 2:
            raise InputError(f"folds: must be >= 2, got {self.folds}")
        if self.scoring not in SCORINGS:
            raise InputError(f"scoring: must be one of {', '.join(SCORINGS)}, got {self.scoring!r}")
        if self.predictions and self.scoring != "synthpai":
            raise InputError("scoring: stored predictions are scored with SynthPAI's rules ('synthpai')")
        if self.model and not self.predictions:
            raise InputError("model: only applies to stored predictions (set predictions)")
        if self.judge and (self.scoring != "synthpai" or self.adversary != "target"):
            raise InputError("judge: decides what SynthPAI's rules leave undecided (scoring = synthpai, adversary = target)")
        if self.predictions and (self.adversary != "target" or self.anonymize):
            raise InputError("predictions: stored guesses are scored as they are (no adversary, no anonymize)")
        if self.anonymize_operator not in ("replace", "mask", "hash"):
            raise InputError(f"anonymize_operator: must be replace, mask or hash, got {self.anonymize_operator!r}")

    @property
    def selected_attributes(self) -> tuple[str, ...]:
        wanted = set(self.attributes) or set(ATTRIBUTES)
        return tuple(a for a in ATTRIBUTES if a in wanted)


# -- prompts -------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def prompt_template() -> dict[str, Any]:
    """The packaged prompt (attacks/data/attribute_prompt.json)."""
    text = resources.files("privaudit.attacks").joinpath("data/attribute_prompt.json").read_text("utf-8")
    return json.loads(text)


def build_messages(comments: Sequence[str], attributes: Sequence[str]) -> list[dict[str, str]]:
    """System + user messages asking for step-by-step reasoning and top-3 guesses per attribute."""
    tpl = prompt_template()
    names = label_tables()["attributes"]
    user = tpl["user"].format(
        attributes=", ".join(names[a] for a in attributes),
        comments="\n".join(f"- {c}" for c in comments),
        hints="".join(tpl["hints"][a] + "\n" for a in attributes) + "\n",
        format="\n\n".join(tpl["format"].format(attribute=a) for a in attributes),
    )
    return [{"role": "system", "content": tpl["system"]}, {"role": "user", "content": user}]


def messages_as_text(messages: Sequence[Mapping[str, str]]) -> str:
    """The same prompt for completion-only targets (no chat template)."""
    return "\n\n".join(m["content"] for m in messages) + prompt_template()["plain_answer_prefix"]


def location_gazetteer() -> list[str]:
    """City and country names (title-cased) from the label tables: known LOCATION values for Presidio."""
    tables = label_tables()
    names = {*tables["city_countries"], *tables["countries"], *tables["city_aliases"]}
    return sorted({n.title() for n in names if len(n) > 2} | {n for n in tables["city_aliases"] if n.isupper()})


def anonymize_authors(authors: Sequence[Author], operator: str, gazetteer: bool) -> tuple[dict[str, tuple[str, ...]], dict[str, int]]:
    """Each author's comments after Presidio anonymization, and how many spans were replaced per author."""
    from privaudit.pii import anonymize

    flat = [c for a in authors for c in a.comments]
    known = {"LOCATION": location_gazetteer()} if gazetteer else None
    texts, _ = anonymize(flat, operator=operator, known_values=known)  # type: ignore[arg-type]
    out: dict[str, tuple[str, ...]] = {}
    changed: dict[str, int] = {}
    pos = 0
    for a in authors:
        n = len(a.comments)
        out[a.author_id] = tuple(texts[pos : pos + n])
        changed[a.author_id] = sum(x != y for x, y in zip(a.comments, texts[pos : pos + n]))
        pos += n
    return out, changed


# -- the attack ----------------------------------------------------------------------------------
# Free-form labels that can point at a person (a home town, a job title) are masked in reports.
# Categorical labels (sex, age, income level, education, relationship status) are not: they are a
# small shared vocabulary ("low", "male", "34"), and masking them would blank the same words in every
# metric name, key and table of the report while protecting nobody.
IDENTIFYING_ATTRIBUTES = IDENTIFYING  # attacks/attribute_predictions.py: the same set for stored predictions


def _scores(attribute: str, label: AttributeLabel, guesses: Sequence[str], scoring: str,
            verdicts: Sequence[Verdict] | None = None) -> GuessScores | None:
    """Scores of the first three guesses; None = the label cannot be scored. With "synthpai" a score
    may be None (undecided: SynthPAI would ask its judge) and only a location's country match
    (0.5) is partial credit; `verdicts` are the judge's where it was asked. "privaudit" is
    attribute_scoring's rules."""
    if scoring == "privaudit":
        return score_guesses(attribute, label.value, guesses)
    verdicts = list(verdicts if verdicts is not None else score_official(attribute, label, guesses))[:3]
    return GuessScores(scores=tuple(v.score for v in verdicts),  # type: ignore[misc]
                       partial=tuple(v.score == 0.5 and attribute in LOCATION_ATTRIBUTES for v in verdicts))


def _record(author: Author, attribute: str, condition: str, adversary: str, guesses: Sequence[str],
            min_certainty: int, scoring: str = "synthpai", verdicts: Sequence[Verdict] | None = None,
            **extra: Any) -> dict[str, Any]:
    label = author.labels.get(attribute)
    evaluated = label is not None and label.certainty >= min_certainty
    scores = _scores(attribute, label, guesses, scoring, verdicts) if evaluated and label else None
    return {
        "condition": condition, "adversary": adversary, "author": author.author_id, "attribute": attribute,
        "truth": label.value if label else None, "hardness": label.hardness if label else None,
        "identifying_truth": label.value if label and attribute in IDENTIFYING_ATTRIBUTES else None,
        "certainty": label.certainty if label else None, "guesses": list(guesses),
        "scorable": scores is not None,
        "scores": list(scores.scores) if scores else [],
        "undecided": sum(x is None for x in scores.scores) if scores else 0,
        "top1": bool(scores and scores.top1), "top3": bool(scores and scores.top3),
        "partial_top1": bool(scores and scores.partial_top1), "partial_top3": bool(scores and scores.partial_top3),
        **extra,
    }


@register_attack
class AttributeInference(Attack):
    """SynthPAI-protocol attribute inference by the target (LLM adversary) or a classical baseline."""

    name = "attributes"
    Params = AttributeParams
    metrics: ClassVar[MetricSpecs] = attribute_metric_specs()
    requires: ClassVar[frozenset[str]] = frozenset({GENERATE})
    pii_record_fields = frozenset({"identifying_truth"})  # see IDENTIFYING_ATTRIBUTES
    data_file_params = ("authors", "predictions")
    target_params = ("judge",)

    params: AttributeParams

    def load_authors(self) -> list[Author]:
        authors = load_authors(self.params.authors or None)
        if self.params.max_authors:
            authors = authors[: self.params.max_authors]
        return authors

    def check_target(self, target: Target) -> None:
        if self.params.adversary == "target" and not self.params.predictions:  # baseline, stored guesses: no queries
            super().check_target(target)

    def _comments(self, comments: Sequence[str]) -> tuple[str, ...]:
        return tuple(comments[: self.params.max_comments] if self.params.max_comments else comments)

    def run(self, target: Target, ctx: RunContext) -> AttackResult:
        if self.params.predictions:
            from privaudit.attacks.attribute_predictions import run_predictions

            run_predictions(self, target.name, ctx)
            return self.summarize(target.name, ctx.records(self.name, target.name))
        authors = self.load_authors()
        conditions = [ORIGINAL, ANONYMIZED] if self.params.anonymize else [ORIGINAL]
        anonymized: dict[str, tuple[str, ...]] = {}
        changed: dict[str, int] = {}
        for condition in conditions:
            if condition == ANONYMIZED and not anonymized:
                if not self._pending_authors(ctx, target.name, authors, condition):
                    continue
                with ctx.progress.task("attributes: anonymizing comments (Presidio)", total=None):
                    anonymized, changed = anonymize_authors(authors, self.params.anonymize_operator,
                                                            self.params.anonymize_gazetteer)
            texts = {a.author_id: self._comments(anonymized[a.author_id] if condition == ANONYMIZED else a.comments)
                     for a in authors}
            extra = (lambda aid: {"anonymized_comments": changed.get(aid, 0)}) if condition == ANONYMIZED \
                else (lambda aid: {})
            if self.params.adversary == "target":
                self._run_llm(target, ctx, authors, texts, condition, extra)
            else:
                self._run_baseline(ctx, target.name, authors, texts, condition, extra)
        return self.summarize(target.name, ctx.records(self.name, target.name))

    def _pending_authors(self, ctx: RunContext, target_name: str, authors: Sequence[Author],
                         condition: str) -> list[Author]:
        adversary = self.params.adversary
        keys = [(f"{condition}/{adversary}/{a.author_id}/{attr}", a)
                for a in authors for attr in self.params.selected_attributes]
        seen: dict[str, Author] = {}
        for _, a in ctx.pending(self.name, target_name, keys):
            seen.setdefault(a.author_id, a)
        return list(seen.values())

    def _run_llm(self, target: Target, ctx: RunContext, authors: Sequence[Author],
                 texts: Mapping[str, Sequence[str]], condition: str, extra: Any) -> None:
        """One prompt per pending author answers all its attributes; prompts of similar length batched
        together across authors. With a judge, the guesses SynthPAI's rules leave undecided are
        sent to it once per batch (attacks/attribute_judge.py)."""
        judge_target = ctx.load_target(self.params.judge) if self.params.judge else None
        try:
            self._ask_authors(target, ctx, authors, texts, condition, extra,
                              AttributeJudge(judge_target) if judge_target is not None else None)
        finally:
            if judge_target is not None:
                judge_target.close()

    def _judged(self, judge: AttributeJudge | None, author: Author, parsed: Mapping[str, Any]) -> dict[str, Any]:
        """attribute -> (verdicts, judge reply) for the author's evaluated labels, after the judge."""
        if judge is None:
            return {}
        pairs = []
        for attr, got in parsed.items():
            label = author.labels.get(attr)
            if label is not None and label.certainty >= self.params.min_certainty and got.guesses:
                pairs.append((attr, label, list(got.guesses), score_official(attr, label, got.guesses)))
        return {attr: out for (attr, *_), out in zip(pairs, judge.resolve(pairs))}

    def _ask_authors(self, target: Target, ctx: RunContext, authors: Sequence[Author],
                     texts: Mapping[str, Sequence[str]], condition: str, extra: Any,
                     judge: AttributeJudge | None) -> None:
        attrs = self.params.selected_attributes
        cfg = GenerationConfig(max_new_tokens=self.params.max_new_tokens, seed=ctx.seed)
        use_chat = CHAT in target.capabilities
        prompts: dict[str, list[dict[str, str]]] = {}

        def prompt(author: Author) -> list[dict[str, str]]:
            if author.author_id not in prompts:
                prompts[author.author_id] = build_messages(texts[author.author_id], attrs)
            return prompts[author.author_id]

        def call(batch: list[tuple[Author, str]]) -> list[tuple[str, Mapping[str, Any]]]:
            asked = list({a.author_id: a for a, _ in batch}.values())  # one prompt per author
            if use_chat:
                outputs = target.chat([prompt(a) for a in asked], cfg)
            else:
                outputs = target.generate([messages_as_text(prompt(a)) for a in asked], cfg)
            answers = {}
            for author, replies in zip(asked, outputs):
                answer = replies[0] if replies else ""
                parsed = parse_answer(answer, attrs)
                answers[author.author_id] = (answer, parsed, self._judged(judge, author, parsed))
            return [answers[a.author_id] for a, _ in batch]

        def record(item: tuple[Author, str], reply: tuple[str, Mapping[str, Any], Mapping[str, Any]]) -> dict[str, Any]:
            (author, attr), (answer, parsed, judged) = item, reply
            got = parsed.get(attr)
            verdicts, judge_reply = judged.get(attr, (None, ""))
            fields = {"judge_reply": judge_reply or None, "rules": [v.rule for v in verdicts[:3]]} if verdicts else {}
            return _record(author, attr, condition, "target", got.guesses if got else (),
                           self.params.min_certainty, self.params.scoring, verdicts=verdicts,
                           inference=got.inference if got else "", parsed=got is not None, response=answer,
                           **fields, **extra(author.author_id))

        ctx.probe(self.name, target.name,
                  [(f"{condition}/target/{a.author_id}/{attr}", (a, attr)) for a in authors for attr in attrs],
                  call=call, record=record, label=f"attributes: {condition} authors",
                  batch_size=self.params.batch_size or ctx.batch_size, unit=lambda it: it[0].author_id,
                  sort_key=lambda it: len(messages_as_text(prompt(it[0]))))

    def _run_baseline(self, ctx: RunContext, target_name: str, authors: Sequence[Author],
                      texts: Mapping[str, Sequence[str]], condition: str, extra: Any) -> None:
        """Cross-fitted TF-IDF + logistic regression and the majority class, per attribute (seeded)."""
        from privaudit.attacks.attribute_baseline import cross_fitted_predictions  # lazy: sklearn ~2 s to import

        joined = {aid: "\n".join(cs) for aid, cs in texts.items()}

        def call(batch: list[tuple[str, Author, str]]) -> list[Any]:
            attr = batch[0][0]  # one attribute per call (unit below): one cross-fitted model per attribute
            truths = {a.author_id: a.labels[attr].value for a in authors
                      if attr in a.labels and a.labels[attr].certainty >= self.params.min_certainty}
            preds = cross_fitted_predictions(attr, joined, truths, folds=self.params.folds, seed=ctx.seed)
            return [preds.get(author.author_id) for _, author, _ in batch]

        def record(item: tuple[str, Author, str], pred: Any) -> dict[str, Any]:
            attr, author, adversary = item
            guesses = (pred.guesses if adversary == "baseline" else pred.majority_guesses) if pred else ()
            return _record(author, attr, condition, adversary, guesses, self.params.min_certainty, self.params.scoring,
                           fold=pred.fold if pred else None, train_size=pred.train_size if pred else 0,
                           **extra(author.author_id))

        items = [(f"{condition}/{adversary}/{a.author_id}/{attr}", (attr, a, adversary))
                 for attr in self.params.selected_attributes for a in authors for adversary in ("baseline", MAJORITY)]
        ctx.probe(self.name, target_name, items, call=call, record=record, label=f"attributes: baseline {condition}",
                  batch_size=1, unit=lambda it: it[0])

    # -- summary -------------------------------------------------------------------------------
    def summarize(self, target_name: str, records: pd.DataFrame) -> AttackResult:
        if self.params.predictions:
            from privaudit.attacks.attribute_predictions import summarize_predictions

            return summarize_predictions(self.params, target_name, records)
        metrics: dict[str, Estimate] = {}
        tables: dict[str, list[dict[str, Any]]] = {"by_attribute": [], "by_hardness": []}
        primary = self.params.adversary
        if not records.empty and "scorable" in records:
            scored = records[records["scorable"].astype(bool)]
            wanted = set(self.params.selected_attributes)
            scored = scored[scored["attribute"].isin(wanted)]
            secondary = ("top1_country",) if self.params.scoring == "synthpai" else tuple(SECONDARY_FAMILIES)
            original = subset(scored, primary, ORIGINAL)
            metrics.update(accuracy_metrics(original, prefix="", secondary=secondary))
            if self.params.scoring == "synthpai":
                metrics.update(undecided_metrics(guess_scores(original)))
            if self.params.anonymize:
                anon = subset(scored, primary, ANONYMIZED)
                metrics.update({k: v for k, v in accuracy_metrics(anon, prefix="anonymized_").items()
                                if reported_for_every_condition(k)})
                if "top1" in metrics and "anonymized_top1" in metrics:
                    metrics["anonymization_drop_top1"] = paired_drop(subset(scored, primary, ORIGINAL), anon)
            if primary == "baseline":
                maj = accuracy_metrics(subset(scored, MAJORITY, ORIGINAL), prefix="majority_")
                metrics.update({k: v for k, v in maj.items() if reported_for_every_condition(k)})
            tables = breakdown_tables(scored)
        assumptions = [
            "the adversary reads the author's public comments only (no training-data access)",
            f"labels with certainty >= {self.params.min_certainty} are scored; rule-based scoring without an "
            "LLM judge (a lower bound on judge-assisted SynthPAI accuracy)",
            "SynthPAI's official scoring rules (guesses only its judge could decide are undecided, not correct)"
            if self.params.scoring == "synthpai" else
            "privaudit's stricter alias/category rules (scoring = privaudit), not SynthPAI's official ones",
        ]
        if primary == "baseline":
            assumptions.append("baseline: trained on the other labelled authors (cross-fitted); the target was not queried")
        return AttackResult(
            attack=self.name, target=target_name, records=records, metrics=metrics, tables=tables,
            assumptions=assumptions,
            provenance={"adversary": primary, "authors": self.params.authors or str(bundled_sample_path()),
                        "attributes": list(self.params.selected_attributes), "anonymize": self.params.anonymize},
        )
