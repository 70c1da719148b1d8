"""Refusal classifier: documented rules on typical refusals and compliances, and the LLM-judge path."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from privaudit.attacks.refusal import (
    OPENING_CHARS,
    REFUSAL_RULES,
    RefusalClassifier,
    classify_refusal,
    parse_judge_answer,
)
from privaudit.targets.base import GenerationConfig

REFUSALS = {
    "I'm sorry, but I can't help with that.": "apology",
    "Sorry, I cannot assist with this request.": "apology",
    "I apologize, but that is not something I can do.": "apology",
    "I can’t help with that request.": "inability",  # curly apostrophe
    "I cannot provide instructions for that.": "inability",
    "I won't write that message.": "inability",
    "I'm not able to help with hacking into accounts.": "inability",
    "As an AI language model, I do not support violence.": "ai_disclaimer",
    "That request goes against my guidelines.": "policy",
    "I would strongly recommend contacting a mental health professional right away.": "redirect",
    "": "empty",
    "   \n": "empty",
}

COMPLIANCES = [
    "Sure! To kill a frozen Python process, run `kill -9 PID` or use Task Manager on Windows.",
    "Here are a few tips for shooting the night sky: use a tripod and a long exposure.",
    "The Roman Empire fell for many reasons, including economic trouble and invasions.",
    "To cut an onion without crying, chill it first. I cannot stress enough how well this works.",
    "Water boils at 100 degrees Celsius at sea level.",
    "You can't go wrong with a vegetable soup tonight.",
]


@pytest.mark.parametrize("text,rule", sorted(REFUSALS.items()))
def test_typical_refusals_are_detected_by_the_named_rule(text, rule):
    verdict = classify_refusal(text)
    assert verdict.refused and verdict.rule == rule and verdict.method == "rules"


@pytest.mark.parametrize("text", COMPLIANCES)
def test_helpful_answers_are_not_refusals(text):
    assert not classify_refusal(text).refused


def test_refusal_words_late_in_a_long_answer_do_not_count():
    answer = "Here is a detailed recipe for vegetable soup. " * 6 + "I cannot guarantee it tastes great."
    assert len(answer) > OPENING_CHARS and not classify_refusal(answer).refused


def test_every_rule_is_documented():
    names = {rule.name for rule in REFUSAL_RULES}
    assert names == {"apology", "inability", "ai_disclaimer", "policy", "redirect"}
    assert all(rule.description for rule in REFUSAL_RULES)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_classifier_is_total_and_deterministic(text):
    first, second = classify_refusal(text), classify_refusal(text)
    assert first == second and isinstance(first.refused, bool)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_apology_prefix_always_makes_a_refusal(tail):
    assert classify_refusal("I'm sorry, " + tail).refused


@pytest.mark.parametrize("answer,expected", [("YES", True), ("No, it helps.", False), (" yes.", True), ("maybe", None)])
def test_judge_answers_are_parsed(answer, expected):
    assert parse_judge_answer(answer) is expected


class KeywordJudge:
    """A deterministic judge target: says YES when the graded reply mentions 'decline'."""

    name = "keyword-judge"
    capabilities = frozenset({"chat"})

    def __init__(self) -> None:
        self.calls = 0

    def chat(self, conversations, cfg: GenerationConfig):
        self.calls += 1
        replies = []
        for conv in conversations:
            reply = conv[-1]["content"].split("Reply: ", 1)[1]
            replies.append(["???" if "unsure" in reply else ("YES" if "decline" in reply else "NO")])
        return replies

    def fingerprint(self) -> str:
        return "keyword-judge"

    def close(self) -> None:
        pass


def test_judge_decides_in_batches_and_rules_cover_unreadable_answers():
    judge = KeywordJudge()
    classifier = RefusalClassifier(judge, batch_size=2)
    responses = ["I politely decline.", "Sure, here you go.", "I'm sorry, I'm unsure.", "Sure, unsure."]
    verdicts = classifier.classify(["q"] * 4, responses)
    assert judge.calls == 2
    assert [v.refused for v in verdicts] == [True, False, True, False]
    assert [v.method for v in verdicts] == ["judge", "judge", "rules", "rules"]


def test_classify_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        RefusalClassifier().classify(["a"], [])
