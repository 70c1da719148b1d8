"""Personalization-bias attack: batching, resume, records, the significance flags, names, CLI.

The targets here are pure-Python deterministic generators (no model weights), so the tests can
assert exact behaviour: `ScriptedAssistant` is persona-blind by construction, and
`PersonaBiasedTarget` wraps it to refuse far more often for one persona.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from pathlib import Path
from typing import Sequence

import pytest
from click.testing import CliRunner

from privaudit.attacks.base import RunContext, get_attack
from privaudit.attacks.personalization_bias import (
    CONTROL,
    PersonalizationBiasAttack,
    load_choice_items,
    load_lexicon,
    load_name_probe,
    load_personas,
    load_safety_items,
    render_conversation,
)
from privaudit.engine.store import RunStore
from privaudit.errors import InputError
from privaudit.targets.base import GenerationConfig, register_target

FAIRNESS_MARKER = "Treat every user equally"
REFUSAL = "I'm sorry, but I can't help with that request."
PERSONA_PREFIX = re.compile(r"^I am [^.]+\. ")


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts (stable across processes, unlike hash())."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return int(digest[:12], 16) / 16**12


def _request(conversation: Sequence[dict]) -> str:
    """The user's request without any persona prefix (what a persona-blind model conditions on)."""
    user = [m["content"] for m in conversation if m["role"] == "user"][-1]
    return PERSONA_PREFIX.sub("", user)


class ScriptedAssistant:
    """A persona-blind deterministic chat generator over the shipped probe data.

    Unsafe requests are refused with an item-specific probability, benign ones rarely; questions
    are answered correctly with probability 0.7 in varied formats; name prompts get a dinner
    suggestion. Greedy outputs depend only on the request (persona-blind exactly); sampled outputs
    use a seeded draw per (seed, conversation, sample), so personas get independent noise but the
    same probabilities.
    """

    name = "scripted-assistant"
    capabilities = frozenset({"generate", "chat", "score"})

    def __init__(self) -> None:
        unsafe, benign = load_safety_items()
        self.unsafe = {i.text for i in unsafe}
        self.answers = {i.question: (i.answer, i.options) for i in load_choice_items()}
        self.chat_calls: list[list[list[dict]]] = []

    def fingerprint(self) -> str:
        return "scripted-assistant-v1"

    def close(self) -> None:
        pass

    def draw(self, conversation: Sequence[dict], cfg: GenerationConfig, sample: int) -> float:
        if cfg.do_sample:
            return _unit(cfg.seed, [dict(m) for m in conversation], sample)
        return _unit(_request(conversation))

    def reply(self, conversation: Sequence[dict], cfg: GenerationConfig, sample: int) -> str:
        request = _request(conversation)
        u = self.draw(conversation, cfg, sample)
        question = request.split("\n")[0]
        if question in self.answers:
            answer, options = self.answers[question]
            letters = "ABCD"[: len(options)]
            if u < 0.7:
                choice = answer
            else:
                choice = [c for c in letters if c != answer][int(u * 1000) % (len(letters) - 1)]
            formats = ("The answer is ({c}).", "{c}) {o}", "I think it's {o}.")
            return formats[int(u * 997) % 3].format(c=choice, o=options[letters.index(choice)])
        if request in self.unsafe:
            p_refuse = 0.25 + 0.5 * _unit("p", request)
            return REFUSAL if u < p_refuse else "Sure. Here is a general overview of that topic."
        if "?" in request and ("cook" in request or "breakfast" in request or "music" in request):
            return "You could try a simple vegetable soup with fresh bread."
        return REFUSAL if u < 0.1 else "Sure! Here are a few practical steps you can follow."

    def chat(self, conversations, cfg: GenerationConfig) -> list[list[str]]:
        self.chat_calls.append([list(c) for c in conversations])
        return [[self.reply(c, cfg, j) for j in range(cfg.num_samples)] for c in conversations]

    def generate(self, prompts, cfg: GenerationConfig) -> list[list[str]]:
        return [[self.reply([{"role": "user", "content": p}], cfg, j) for j in range(cfg.num_samples)] for p in prompts]

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        # Persona-blind: the score ignores the system/persona part of the prompt entirely.
        return [-0.4 * len(c) - 2.0 * _unit(p.split("\n\n")[-1], c) for p, c in zip(prompts, continuations)]


class PersonaBiasedTarget:
    """Wraps a generator and refuses most requests from users who say "I am {persona_text}.".

    Deliberately sensitive to the fairness instruction: when the system prompt contains
    "Treat every user equally" (the start of privaudit's default fairness prompt) it behaves exactly
    like the wrapped persona-blind generator. It thus simulates a model that obeys that instruction
    perfectly; tests using it show that the defense delivers the instruction and that the gap metrics
    respond, not that real models obey it.
    """

    capabilities = frozenset({"generate", "chat", "score"})

    def __init__(self, inner: ScriptedAssistant, persona_text: str = "a Muslim", extra_refusal: float = 0.9) -> None:
        self.inner = inner
        self.persona_text = persona_text
        self.extra_refusal = extra_refusal
        self.name = f"biased[{persona_text}]"

    def fingerprint(self) -> str:
        return f"biased:{self.persona_text}:{self.extra_refusal}"

    def close(self) -> None:
        pass

    def _targets_persona(self, conversation: Sequence[dict]) -> bool:
        text = " ".join(m["content"] for m in conversation)
        return f"I am {self.persona_text}." in text and FAIRNESS_MARKER not in text

    def chat(self, conversations, cfg: GenerationConfig) -> list[list[str]]:
        outputs = self.inner.chat(conversations, cfg)
        for conv, replies in zip(conversations, outputs):
            if self._targets_persona(conv):
                for j in range(len(replies)):
                    if _unit("bias", cfg.seed, [dict(m) for m in conv], j) < self.extra_refusal:
                        replies[j] = REFUSAL
        return outputs

    def generate(self, prompts, cfg):
        return self.inner.generate(prompts, cfg)

    def score(self, prompts, continuations):
        return self.inner.score(prompts, continuations)


class NameAwareAssistant(ScriptedAssistant):
    """Suggests a dish of the culture it associates with the user's name (a presumptuous model)."""

    DISHES = {"chinese": "dim sum", "indian": "biryani", "japanese": "ramen", "mexican": "tacos",
              "nigerian": "jollof rice", "italian": "risotto", "arab": "falafel", "korean": "bibimbap"}

    def __init__(self) -> None:
        super().__init__()
        self.culture_of = {n: c for c, names in load_name_probe().names.items() for n in names}

    def reply(self, conversation, cfg, sample):
        request = _request(conversation)
        for user_name, culture in self.culture_of.items():
            if user_name in request:
                return f"How about making some {self.DISHES[culture]} tonight?"
        return "How about a simple vegetable soup tonight?"


PERSONAS = ["religion_muslim", "religion_christian", "gender_woman", "age_senior", "nationality_indian",
            "occupation_doctor"]


def _run(tmp_path: Path, target, seed: int = 0, batch_size: int = 16, **params):
    attack = PersonalizationBiasAttack.from_config(params, "test")
    with RunStore(tmp_path / f"run-{seed}") as store:
        ctx = RunContext(store=store, seed=seed, batch_size=batch_size)
        return attack.run(target, ctx)


def test_persona_with_deliberate_extra_refusals_is_flagged_significant(tmp_path):
    target = PersonaBiasedTarget(ScriptedAssistant(), "a Muslim")
    result = _run(tmp_path, target, axes=["safety", "utility"], personas=PERSONAS)
    flagged = {row["persona"] for row in result.tables["significant_personas"]}
    assert flagged == {"religion_muslim"}
    assert result.metrics["num_significant_personas"].value == 1
    gap = result.metrics["max_refusal_gap"]
    assert gap.value > 0.3 and gap.low > 0  # interval excludes 0
    refusal_rows = [r for r in result.tables["persona_metrics"] if r["metric"] == "refusal_rate"]
    assert {r["persona"] for r in refusal_rows} == {CONTROL, *PERSONAS}
    muslim = next(r for r in refusal_rows if r["persona"] == "religion_muslim")
    assert muslim["significant"] and muslim["rate_low"] <= muslim["rate"] <= muslim["rate_high"]
    assert result.metrics["max_accuracy_gap"].value < -0.3  # refusing questions costs utility too
    assert result.metrics["pb_score"].value > 0.1


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_persona_blind_target_flags_no_persona_at_alpha(tmp_path, seed):
    result = _run(tmp_path, ScriptedAssistant(), seed=seed, axes=["safety", "utility"], personas=PERSONAS,
                  samples=2, max_items=24)
    assert result.metrics["num_significant_personas"].value == 0
    # Sampling noise is real (the test could fail): personas differ from the control somewhat.
    assert any(abs(r["gap"]) > 0 for r in result.tables["persona_metrics"] if r["persona"] != CONTROL)


def test_greedy_persona_blind_target_has_zero_gaps_and_pb_score(tmp_path):
    result = _run(tmp_path, ScriptedAssistant(), axes=["safety", "utility"], personas=PERSONAS[:3], max_items=10)
    assert result.metrics["max_refusal_gap"].value == 0
    assert result.metrics["pb_score"].value == pytest.approx(0.0)


def test_each_chat_call_batches_many_personas(tmp_path):
    inner = ScriptedAssistant()
    _run(tmp_path, inner, batch_size=8, axes=["safety"], personas=PERSONAS, max_items=5)
    conversations = (len(PERSONAS) + 1) * 10
    assert len(inner.chat_calls) == math.ceil(conversations / 8)
    for call in inner.chat_calls[:-1]:
        systems_and_users = {(c[0]["content"], c[-1]["content"]) for c in call}
        personas_in_call = {s for s, _ in systems_and_users}
        assert len(call) == 8 and len(personas_in_call) > 1


def test_one_record_per_persona_item_and_sample(tmp_path):
    result = _run(tmp_path, ScriptedAssistant(), axes=["safety", "utility"], personas=PERSONAS[:2],
                  samples=3, max_items=4)
    recs = result.records
    gen = recs[recs["kind"].isin(["unsafe", "benign", "generate"])]
    assert len(gen) == 3 * (4 + 4 + 4) * 3
    assert gen.groupby(["persona", "probe_item", "sample"]).size().max() == 1
    assert set(recs["sample"]) == {0, 1, 2}
    lik = recs[recs["kind"] == "likelihood"]
    assert len(lik) == 3 * 4  # scored once per (persona, item): scoring is deterministic
    assert "likelihood_accuracy" in {r["metric"] for r in result.tables["persona_metrics"]}


def test_rerun_resumes_without_recomputing_finished_probes(tmp_path):
    attack = PersonalizationBiasAttack.from_config({"axes": ["safety"], "personas": PERSONAS[:2], "max_items": 3}, "t")
    first = ScriptedAssistant()
    with RunStore(tmp_path / "run") as store:
        attack.run(first, RunContext(store=store))
    second = ScriptedAssistant()
    with RunStore(tmp_path / "run") as store:
        result = attack.run(second, RunContext(store=store))
    assert first.chat_calls and not second.chat_calls
    assert len(result.records) == 3 * 6


def test_persona_modes_render_identity_as_system_prompt_or_user_prefix():
    control, personas = load_personas()
    woman = next(p for p in personas if p.id == "gender_woman")
    system = render_conversation(woman, "Hi?", "system")
    assert system[0]["content"] == "You are a helpful assistant. I am a woman." and system[1]["content"] == "Hi?"
    prefix = render_conversation(woman, "Hi?", "prefix")
    assert prefix[0]["content"] == "You are a helpful assistant." and prefix[1]["content"] == "I am a woman. Hi?"
    assert render_conversation(control, "Hi?", "prefix")[1]["content"] == "Hi?"


def test_name_probe_flags_cultures_a_presumptuous_model_assumes(tmp_path):
    result = _run(tmp_path, NameAwareAssistant(), axes=["names"], max_items=2, max_names_per_culture=3)
    assert result.metrics["culture_match_rate"].value == 1.0
    assert result.metrics["num_significant_name_cultures"].value == 8
    assert result.metrics["max_culture_presumption_gap"].low > 0
    blind = _run(tmp_path / "blind", ScriptedAssistant(), axes=["names"], max_items=2, max_names_per_culture=3)
    assert blind.metrics["culture_match_rate"].value == 0.0
    assert blind.metrics["num_significant_name_cultures"].value == 0


def test_lexicon_matches_whole_words_plurals_and_accents():
    lexicon = load_lexicon()
    assert lexicon.find("Romeo loved tacos on Día de los Muertos") == {"mexican": ["dia de los muertos", "tacos"]}
    assert lexicon.find("An evening of romance and sushi-free fun") == {}
    assert "korean" in lexicon.find("Lunar New Year") and "chinese" in lexicon.find("Lunar New Year")


def test_shipped_arithmetic_answer_keys_match_their_expressions():
    data = json.loads((Path(__file__).parents[1] / "attacks" / "data" / "utility_mcq.json").read_text())
    for item in data["items"]:
        if "expression" not in item:
            continue
        value = eval(item["expression"], {"__builtins__": {}})  # noqa: S307 - our own data file
        matches = [i for i, o in enumerate(item["options"]) if abs(eval(o, {"__builtins__": {}}) - value) < 1e-9]
        assert matches == ["ABCD".index(item["answer"])], item["id"]


def test_shipped_data_sizes_and_unique_ids():
    unsafe, benign = load_safety_items()
    items = load_choice_items()
    assert 30 <= len(unsafe) <= 60 and 30 <= len(benign) <= 60 and 40 <= len(items) <= 80
    ids = [i.id for i in [*unsafe, *benign]] + [i.id for i in items]
    assert len(ids) == len(set(ids))
    assert {i.answer for i in items} == set("ABCD")


def test_bad_personas_file_names_the_file_and_field(tmp_path):
    bad = tmp_path / "personas.json"
    bad.write_text(json.dumps({"personas": [{"id": "x"}]}))
    with pytest.raises(InputError, match=r"personas\.json: personas\[0\]: field 'text'"):
        load_personas(None, bad)
    broken = tmp_path / "broken.json"
    broken.write_text('{"personas": [\n  {"id": "x",}\n]}')
    with pytest.raises(InputError, match=r"broken\.json:2: invalid JSON"):
        load_personas(None, broken)


def test_extra_personas_file_adds_personas(tmp_path):
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"personas": [{"id": "veteran", "axis": "occupation", "text": "a military veteran"}]}))
    attack = PersonalizationBiasAttack.from_config({"personas_file": str(extra), "personas": ["veteran"]}, "t")
    assert [p.id for p in attack.selected_personas()] == [CONTROL, "veteran"]


def test_invalid_params_are_input_errors_naming_the_key():
    with pytest.raises(InputError, match="axes"):
        get_attack("bias").from_config({"axes": ["safety", "vibes"]}, "audit.toml: attacks.bias")
    with pytest.raises(InputError, match="persona_mode"):
        get_attack("bias").from_config({"persona_mode": "both"}, "audit.toml: attacks.bias")


def test_summary_is_derived_from_records_alone(tmp_path):
    target = PersonaBiasedTarget(ScriptedAssistant(), "a Muslim")
    result = _run(tmp_path, target, axes=["safety"], personas=PERSONAS[:3], max_items=12)
    attack = PersonalizationBiasAttack.from_config({"axes": ["safety"], "personas": PERSONAS[:3], "max_items": 12}, "t")
    again = attack.summarize(result.target, result.records)
    assert again.metrics == result.metrics and again.tables == result.tables


class SampleBlindAssistant(ScriptedAssistant):
    """Gives the same reply to every sample of a conversation: k samples carry one item's information."""

    def draw(self, conversation, cfg, sample):
        return _unit(_request(conversation))


def test_every_reported_metric_is_declared_with_its_contract(tmp_path):
    target = PersonaBiasedTarget(ScriptedAssistant(), "a Muslim")
    result = _run(tmp_path, target, personas=PERSONAS[:3], max_items=6, max_names_per_culture=1)
    declared = PersonalizationBiasAttack.metrics
    assert set(result.metrics) == set(declared.patterns())  # all axes on a scoring target: every metric
    contract = result.contracted_metrics()  # raises for an undeclared metric
    for name in ("max_refusal_gap", "max_over_refusal_gap", "max_accuracy_gap", "max_likelihood_accuracy_gap",
                 "max_culture_presumption_gap"):
        assert (contract[name]["kind"], contract[name]["direction"], contract[name]["unit"]) == (
            "difference", "two_sided", "item")
    assert contract["control_refusal_rate"]["direction"] == "lower_is_worse"
    assert contract["control_over_refusal_rate"]["direction"] == "higher_is_worse"
    assert contract["control_accuracy"]["direction"] == "lower_is_worse"
    assert contract["culture_match_rate"]["direction"] == "higher_is_worse"
    assert contract["control_refusal_rate"]["cluster"] == "item"
    assert (contract["pb_score"]["kind"], contract["pb_score"]["direction"]) == ("mean", "higher_is_worse")
    assert contract["num_significant_personas"]["kind"] == "count"
    assert contract["num_significant_name_cultures"]["kind"] == "count"
    assert contract["max_refusal_gap"]["method"] == "cluster_robust_t"
    assert contract["max_refusal_gap"]["clusters"] == 6  # paired over the 6 unsafe items


def test_rates_and_gaps_get_their_interval_at_the_item_not_the_sample(tmp_path):
    one = _run(tmp_path / "k1", SampleBlindAssistant(), axes=["safety"], personas=PERSONAS[:2], max_items=20)
    four = _run(tmp_path / "k4", SampleBlindAssistant(), axes=["safety"], personas=PERSONAS[:2], max_items=20,
                samples=4)
    a, b = one.metrics["control_refusal_rate"], four.metrics["control_refusal_rate"]
    assert (a.n, a.clusters, b.n, b.clusters) == (20, 20, 80, 20)
    assert (b.value, b.low, b.high) == pytest.approx((a.value, a.low, a.high))  # 4 identical replies = 1 item
    ga, gb = one.metrics["max_refusal_gap"], four.metrics["max_refusal_gap"]
    assert (gb.value, gb.low, gb.high, gb.clusters) == pytest.approx((ga.value, ga.low, ga.high, 20))


def test_fairness_prompt_option_prefixes_every_conversation_and_removes_the_instruction_sensitive_gap(tmp_path):
    from privaudit.defenses.system_prompt import DEFAULT_FAIRNESS_INSTRUCTION

    params = dict(axes=["safety", "names"], personas=PERSONAS[:3], max_items=12, max_names_per_culture=1)
    bare = _run(tmp_path / "bare", PersonaBiasedTarget(ScriptedAssistant(), "a Muslim"), **params)
    fair = _run(tmp_path / "fair", PersonaBiasedTarget(ScriptedAssistant(), "a Muslim"), fairness_prompt=True, **params)
    assert bare.metrics["num_significant_personas"].value == 1
    assert fair.metrics["num_significant_personas"].value == 0
    assert abs(fair.metrics["max_refusal_gap"].value) < abs(bare.metrics["max_refusal_gap"].value)
    systems = fair.records["system"]
    assert systems.str.startswith(DEFAULT_FAIRNESS_INSTRUCTION + " You are a helpful assistant.").all()
    assert set(fair.records["persona"]) >= {CONTROL, *PERSONAS[:3]}  # the control gets it too
    assert not bare.records["system"].str.contains(DEFAULT_FAIRNESS_INSTRUCTION, regex=False).any()
    assert fair.provenance["fairness_prompt"] is True and any("fairness instruction" in a for a in fair.assumptions)
    custom = _run(tmp_path / "custom", PersonaBiasedTarget(ScriptedAssistant(), "a Muslim"), fairness_prompt=True,
                  fairness_instruction="Be even-handed.", **params)
    assert custom.records["system"].str.startswith("Be even-handed. You are a helpful assistant.").all()
    assert custom.metrics["num_significant_personas"].value == 1  # this target only obeys its own wording
    with pytest.raises(InputError, match="fairness_instruction"):
        PersonalizationBiasAttack.from_config({"fairness_instruction": "  "}, "t")


def test_cli_fairness_prompt_flag(tmp_path):
    from privaudit.cli import main

    out = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "--quiet", "attack", "bias", "--target", "scripted-bias:biased", "--out", str(out),
        "--axes", "safety", "--max-items", "16", "--personas", "religion_muslim,gender_woman", "--fairness-prompt",
    ])
    assert result.exit_code == 0, result.output
    bias = json.loads((out / "summary.json").read_text())["results"][0]
    assert bias["metrics"]["num_significant_personas"]["value"] == 0
    assert bias["provenance"]["fairness_prompt"] is True
    worded = CliRunner().invoke(main, [  # a wording alone turns the prompt on
        "--quiet", "attack", "bias", "--target", "scripted-bias:biased", "--out", str(tmp_path / "worded"),
        "--axes", "safety", "--max-items", "4", "--personas", "religion_muslim",
        "--fairness-instruction", "Treat every user equally, whoever they say they are.",
    ])
    assert worded.exit_code == 0, worded.output
    provenance = json.loads((tmp_path / "worded" / "summary.json").read_text())["results"][0]["provenance"]
    assert provenance["fairness_instruction"] == "Treat every user equally, whoever they say they are."


@register_target("scripted-bias")
def _scripted_factory(location: str, options):
    return PersonaBiasedTarget(ScriptedAssistant(), "a Muslim") if location == "biased" else ScriptedAssistant()


def test_cli_attack_bias_writes_summary_with_metrics(tmp_path):
    from privaudit.cli import main

    out = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "--quiet", "attack", "bias", "--target", "scripted-bias:biased", "--out", str(out),
        "--axes", "safety,utility", "--max-items", "16", "--persona-mode", "prefix",
        "--personas", "religion_muslim,gender_woman", "--seed", "3", "--batch-size", "12",
        "--verbose",  # every metric, not only the headline ones
    ])
    assert result.exit_code == 0, result.output
    assert "max_refusal_gap" in result.output and "pb_score" in result.output
    summary = json.loads((out / "summary.json").read_text())
    bias = summary["results"][0]
    assert bias["metrics"]["num_significant_personas"]["value"] == 1
    assert bias["charts"]["refusal_rate_gap"]["rows"][0]["label"] in {"gender_woman", "religion_muslim"}


def test_cli_rejects_unknown_axis(tmp_path):
    from privaudit.cli import main

    result = CliRunner().invoke(main, ["attack", "bias", "--target", "scripted-bias:blind", "--out",
                                       str(tmp_path / "o"), "--axes", "safety,vibes"])
    assert result.exit_code == 2 and "vibes" in result.output


@pytest.mark.slow
def test_builtin_smollm2_run_reports_per_persona_numbers_with_intervals(tmp_path):
    from privaudit.targets.base import load_target

    try:
        target = load_target("builtin:smollm2-135m")
    except InputError as exc:  # the builtin backend is not installed in this checkout
        pytest.skip(str(exc))
    try:
        result = _run(tmp_path, target, axes=["safety", "utility"], personas=["gender_woman", "religion_muslim"],
                      max_items=4, max_new_tokens=32, utility_max_new_tokens=16)
    finally:
        target.close()
    rows = [r for r in result.tables["persona_metrics"] if r["metric"] == "refusal_rate"]
    assert {r["persona"] for r in rows} == {CONTROL, "gender_woman", "religion_muslim"}
    for row in result.tables["persona_metrics"]:
        assert 0 <= row["rate_low"] <= row["rate"] <= row["rate_high"] <= 1 and row["n"] > 0
    for name in ("max_refusal_gap", "max_accuracy_gap", "pb_score", "num_significant_personas"):
        assert name in result.metrics
    assert all(isinstance(r, str) for r in result.records["response"].dropna())
