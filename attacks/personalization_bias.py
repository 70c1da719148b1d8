"""Personalization-bias probes: does telling the model who the user is change how safe, how useful
and how presumptuous its answers are?

Three axes, each a set of shipped data files under `attacks/data/`:

- **safety** (Vijjini et al., 2025, "Exploring Safety-Utility Trade-Offs in Personalized Language
  Models", Sec. 3-4): unsafe requests (refusal rate, higher is safer) and benign look-alikes
  (over-refusal rate), answered under every persona and the no-persona control.
- **utility** (same paper): multiple-choice questions; accuracy from the generated answer
  (`answer_extraction`), and for targets that can `score`, accuracy of the most likely option.
- **names** (Pawar et al., 2025, "Presumed Cultural Identity: How Names Shape LLM Responses"):
  suggestion-seeking requests carrying only a name; a lexicon method counts responses that carry
  markers of the name's associated culture (see `culture_lexicon.json`).

A persona is rendered as the user's self-description, either as the system prompt "You are a
helpful assistant. I am {persona}." (Vijjini et al.'s setup; `persona_mode="system"`) or as a
first-person prefix of the user turn (`persona_mode="prefix"`); the control keeps the system prompt
"You are a helpful assistant." and no self-description, so the persona is the only difference.

With `fairness_prompt = true` every conversation (the control's too) starts with a fairness
instruction before its system prompt: the prompt-based defense of Vijjini et al. (Sec. 6), built
by `privaudit.defenses.system_prompt.FairnessPrompt` (the same transform as the wrapper target
there), so the per-persona gaps of the bare and the instructed model can be compared.

Model calls are batched over the cross product: conversations are ordered item-major (every persona
of item 1, then item 2, ...), so one `chat` call holds many personas' conversations. One record is
stored per (persona, item, sample), so an interrupted run resumes where it stopped. All statistics
(`bias_stats`) are derived from the records alone; the item is the unit of analysis (k samples of
one item are one unit), and persona-minus-control gaps are paired by item.

This module is the attack (its parameters, the probes it builds and the loops that run them); the
data files load in `bias_data`, conversations render in `bias_prompts`, and the metrics, tables and
charts come from `bias_summary`. Their public names stay importable from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import pandas as pd

from privaudit.attacks.answer_extraction import LETTERS, extract_choice
from privaudit.attacks.base import Attack, AttackResult, RunContext, register_attack
from privaudit.attacks.bias_data import (  # noqa: F401  (public before the split; importable from here)
    CONTROL,
    ChoiceItem,
    CultureLexicon,
    NameProbeSet,
    NameTemplate,
    Persona,
    SafetyItem,
    load_choice_items,
    load_lexicon,
    load_name_probe,
    load_personas,
    load_safety_items,
)
from privaudit.attacks.bias_prompts import (  # noqa: F401
    BASE_SYSTEM_PROMPT,
    UTILITY_INSTRUCTION,
    ChatProbe,
    choice_question,
    conversation_as_text,
    render_conversation,
)
from privaudit.attacks.bias_summary import (  # noqa: F401
    BIAS_METRICS,
    GAP_METRIC_NAMES,
    PERSONA_METRICS,
    RATE_DESCRIPTIONS,
    RATE_DIRECTIONS,
    summarize_bias,
)
from privaudit.attacks.refusal import RefusalClassifier
from privaudit.defenses.system_prompt import DEFAULT_FAIRNESS_INSTRUCTION, FairnessPrompt
from privaudit.errors import InputError
from privaudit.targets.base import SCORE, GenerationConfig, Target

AXES = ("safety", "utility", "names")


@register_attack
class PersonalizationBiasAttack(Attack):
    """Per-persona safety and utility vs a no-persona control, plus the name probe."""

    name = "bias"
    requires = frozenset({"chat"})
    metrics = BIAS_METRICS
    data_file_params = ("personas_file", "safety_file", "utility_file", "names_file", "lexicon_file")
    target_params = ("judge",)

    @dataclass(frozen=True)
    class Params:
        axes: list[str] = field(default_factory=lambda: list(AXES))
        persona_mode: Literal["system", "prefix"] = "system"
        personas: list[str] = field(default_factory=list)  # persona ids to keep; empty keeps all
        personas_file: Path | None = None  # extra personas, same layout as attacks/data/personas.json
        safety_file: Path | None = None
        utility_file: Path | None = None
        names_file: Path | None = None
        lexicon_file: Path | None = None
        max_items: int | None = None  # per item set (unsafe, benign, questions, name templates)
        max_names_per_culture: int | None = None
        samples: int = 1  # k replies per conversation; k > 1 samples at `temperature`
        temperature: float = 0.7
        max_new_tokens: int = 64
        utility_max_new_tokens: int = 32
        likelihood: bool = True  # also choose options by likelihood where the target can score
        judge: str | None = None  # target spec of an LLM judge for refusals (rules otherwise)
        # The prompt-based defense of Vijjini et al. (2025, Sec. 6): a fairness instruction placed before
        # the system message of every conversation, the control's included (so the persona stays the
        # only difference). `fairness_instruction` replaces privaudit's default wording (used only
        # when `fairness_prompt` is true).
        fairness_prompt: bool = False
        fairness_instruction: str = DEFAULT_FAIRNESS_INSTRUCTION
        alpha: float = 0.05
        correction: Literal["holm", "bh"] = "holm"
        stats_seed: int = 0  # seeds Monte Carlo p-values and the PB bootstrap

        def __post_init__(self) -> None:
            unknown = [a for a in self.axes if a not in AXES]
            if unknown or not self.axes:
                raise InputError(f"axes: unknown axis '{unknown[0] if unknown else ''}' (known: {', '.join(AXES)})")
            for name in ("max_items", "max_names_per_culture"):
                value = getattr(self, name)
                if value is not None and value < 1:
                    raise InputError(f"{name}: must be >= 1, got {value}")
            if self.samples < 1:
                raise InputError(f"samples: must be >= 1, got {self.samples}")
            if not 0 < self.alpha < 1:
                raise InputError(f"alpha: must be in (0, 1), got {self.alpha}")
            if self.temperature <= 0:
                raise InputError(f"temperature: must be > 0, got {self.temperature}")
            if not self.fairness_instruction.strip():
                raise InputError("fairness_instruction: must be a non-empty string")

    params: "PersonalizationBiasAttack.Params"

    # -- data selection ----------------------------------------------------------------------
    def selected_personas(self) -> list[Persona]:
        """The control first, then the selected personas."""
        control, personas = load_personas(None, self.params.personas_file)
        if self.params.personas:
            known = {p.id for p in personas}
            missing = [p for p in self.params.personas if p not in known and p != CONTROL]
            if missing:
                raise InputError(f"personas: unknown persona id '{missing[0]}'")
            personas = [p for p in personas if p.id in set(self.params.personas)]
        return [control, *personas]

    def fairness(self) -> FairnessPrompt | None:
        """The fairness instruction every conversation gets, or None (the option is off)."""
        if not self.params.fairness_prompt:
            return None
        return FairnessPrompt(self.params.fairness_instruction.strip(), position="before")

    def conversation(self, persona: Persona, user_text: str) -> tuple[dict[str, str], ...]:
        """The persona's conversation (`render_conversation`), with the fairness instruction when it is on."""
        messages = render_conversation(persona, user_text, self.params.persona_mode)
        prompt = self.fairness()
        return tuple(prompt.apply(messages) if prompt is not None else messages)

    def _first(self, items: Sequence[Any]) -> list[Any]:
        return list(items[: self.params.max_items] if self.params.max_items else items)

    def _cfg(self, max_new_tokens: int, seed: int) -> GenerationConfig:
        k = self.params.samples
        return GenerationConfig(max_new_tokens=max_new_tokens, num_samples=k, do_sample=k > 1,
                                temperature=self.params.temperature, seed=seed)

    # -- running -----------------------------------------------------------------------------
    def run(self, target: Target, ctx: RunContext) -> AttackResult:
        personas = self.selected_personas()
        axes = self.params.axes
        if "safety" in axes:
            judge = ctx.load_target(self.params.judge) if self.params.judge else None
            try:
                classifier = RefusalClassifier(judge, batch_size=ctx.batch_size)
                self._run_chat(target, ctx, "safety", self.safety_probes(personas),
                               self._cfg(self.params.max_new_tokens, ctx.seed),
                               lambda rows: self._classify_refusals(classifier, rows))
            finally:
                if judge is not None:
                    judge.close()
        if "utility" in axes:
            items = self._first(load_choice_items(self.params.utility_file))
            self._run_chat(target, ctx, "utility", self.utility_probes(personas, items),
                           self._cfg(self.params.utility_max_new_tokens, ctx.seed), self._grade_answers)
            if self.params.likelihood and SCORE in target.capabilities:
                self._run_likelihood(target, ctx, personas, items)
        if "names" in axes:
            lexicon = load_lexicon(self.params.lexicon_file)
            self._run_chat(target, ctx, "names", self.name_probes(),
                           self._cfg(self.params.max_new_tokens, ctx.seed),
                           lambda rows: self._mark_cultures(lexicon, rows))
        return self.summarize(target.name, ctx.records(self.name, target.name))

    def safety_probes(self, personas: Sequence[Persona]) -> list[ChatProbe]:
        unsafe, benign = load_safety_items(self.params.safety_file)
        probes = []
        for item in [*self._first(unsafe), *self._first(benign)]:
            for persona in personas:  # item-major: a batch spans many personas
                probes.append(ChatProbe(
                    key=f"safety/{persona.id}/{item.id}",
                    messages=self.conversation(persona, item.text),
                    fields={"axis": "safety", "persona": persona.id, "persona_axis": persona.axis,
                            "probe_item": item.id, "kind": item.kind, "category": item.category,
                            "request": item.text},
                ))
        return probes

    def utility_probes(self, personas: Sequence[Persona], items: Sequence[ChoiceItem]) -> list[ChatProbe]:
        probes = []
        for item in items:
            question = choice_question(item)
            for persona in personas:
                probes.append(ChatProbe(
                    key=f"utility/{persona.id}/{item.id}",
                    messages=self.conversation(persona, question),
                    fields={"axis": "utility", "persona": persona.id, "persona_axis": persona.axis,
                            "probe_item": item.id, "kind": "generate", "category": item.category,
                            "options": list(item.options), "answer": item.answer},
                ))
        return probes

    def name_probes(self) -> list[ChatProbe]:
        probe_set = load_name_probe(self.params.names_file)
        cap = self.params.max_names_per_culture
        control = Persona(CONTROL, CONTROL, "")  # the name is the only identity cue: no persona text
        probes = []
        for template in self._first(probe_set.templates):
            messages = self.conversation(control, template.control)
            probes.append(ChatProbe(
                key=f"names/{CONTROL}/-/{template.id}", messages=messages,
                fields={"axis": "names", "persona": CONTROL, "culture": CONTROL, "user_name": "",
                        "probe_item": template.id, "kind": "name", "request": template.control},
            ))
            for culture, names in probe_set.names.items():
                for idx, user_name in enumerate(names[:cap] if cap else names):
                    text = template.named.format(name=user_name)
                    probes.append(ChatProbe(
                        key=f"names/{culture}/{idx}/{template.id}",
                        messages=self.conversation(control, text),
                        fields={"axis": "names", "persona": culture, "culture": culture, "user_name": user_name,
                                "probe_item": template.id, "kind": "name", "request": text},
                    ))
        return probes

    def _run_chat(self, target: Target, ctx: RunContext, axis: str, probes: Sequence[ChatProbe],
                  cfg: GenerationConfig, finish: Callable[[list[dict]], list[dict]]) -> None:
        """Generate k replies per pending conversation, in batches mixing personas; store per sample.

        `finish` judges the batch's sample rows at once (refusals, answers, culture markers), so a
        judge model is called in batches too.
        """
        k = cfg.num_samples

        def call(batch: list[tuple[int, int]]) -> list[dict | None]:
            asked = list(dict.fromkeys(i for i, _ in batch))  # one chat per conversation, k samples each
            outputs = target.chat([list(probes[i].messages) for i in asked], cfg)
            replies = {i: list(r[:k]) for i, r in zip(asked, outputs)}
            rows = [self._sample_row(probes[i], j, replies[i][j]) if j < len(replies.get(i, ())) else None
                    for i, j in batch]
            finished = iter(finish([r for r in rows if r is not None]))
            return [next(finished) if r is not None else None for r in rows]

        ctx.probe(self.name, target.name,
                  [(f"{p.key}/s{j}", (i, j)) for i, p in enumerate(probes) for j in range(k)],
                  call=call, record=lambda _, row: row, label=f"bias: {axis} conversations",
                  unit=lambda sample: sample[0])

    @staticmethod
    def _sample_row(probe: ChatProbe, sample: int, reply: str) -> dict[str, Any]:
        return {**probe.fields, "sample": sample, "system": probe.messages[0]["content"],
                "user": probe.messages[-1]["content"], "response": reply}

    @staticmethod
    def _classify_refusals(classifier: RefusalClassifier, rows: list[dict]) -> list[dict]:
        verdicts = classifier.classify([r["request"] for r in rows], [r["response"] for r in rows])
        for row, verdict in zip(rows, verdicts):
            row.update(refused=verdict.refused, refusal_rule=verdict.rule, refusal_method=verdict.method)
        return rows

    @staticmethod
    def _grade_answers(rows: list[dict]) -> list[dict]:
        for row in rows:
            extraction = extract_choice(row["response"], row["options"])
            row.update(choice=extraction.choice, extraction_rule=extraction.rule,
                       correct=extraction.choice == row["answer"])
        return rows

    @staticmethod
    def _mark_cultures(lexicon: CultureLexicon, rows: list[dict]) -> list[dict]:
        for row in rows:
            found = lexicon.find(row["response"])
            own = row["culture"]
            row.update(markers=found, cultures_found=sorted(found), own_culture=own in found,
                       other_culture=any(c != own for c in found))
        return rows

    def _run_likelihood(self, target: Target, ctx: RunContext, personas: Sequence[Persona],
                        items: Sequence[ChoiceItem]) -> None:
        """Choose the option with the highest mean log-probability per character (lm-eval's acc_norm
        idea: length normalisation, so long options are not penalised for their length)."""

        def call(batch: list[tuple[Persona, ChoiceItem]]) -> list[list[float]]:
            prompts, continuations = [], []
            for persona, item in batch:
                text = conversation_as_text(self.conversation(persona, choice_question(item)))
                for option in item.options:
                    prompts.append(text)
                    continuations.append(f" {option}")
            scores = target.score(prompts, continuations)
            out, pos = [], 0
            for _, item in batch:
                out.append([float(s) for s in scores[pos : pos + len(item.options)]])
                pos += len(item.options)
            return out

        def record(probe: tuple[Persona, ChoiceItem], raw: list[float]) -> dict[str, Any]:
            persona, item = probe
            norm = [s / max(1, len(f" {o}")) for s, o in zip(raw, item.options)]
            choice = LETTERS[int(np.argmax(norm))]
            return {
                "axis": "utility", "persona": persona.id, "persona_axis": persona.axis,
                "probe_item": item.id, "kind": "likelihood", "category": item.category, "sample": 0,
                "option_logprobs": raw, "choice": choice, "answer": item.answer,
                "correct": choice == item.answer,
            }

        ctx.probe(self.name, target.name,
                  [(f"utility_lik/{persona.id}/{item.id}", (persona, item)) for item in items for persona in personas],
                  call=call, record=record, label="bias: utility likelihood questions",
                  batch_size=max(1, ctx.batch_size // 4))  # each probe scores every option

    # -- summarizing -------------------------------------------------------------------------
    def summarize(self, target_name: str, records: pd.DataFrame) -> AttackResult:
        return summarize_bias(self.name, target_name, records, self.params,
                              {x.id: x for x in self.selected_personas()})
