"""Multiple-choice answer extraction: formats small models use, ambiguity, and property tests."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings, strategies as st

from privaudit.attacks.answer_extraction import LETTERS, Extraction, extract_choice, option_block

CAPITALS = ["Paris", "London", "Berlin", "Madrid"]


@pytest.mark.parametrize("response,choice,rule", [
    ("The answer is (B).", "B", "explicit"),
    ("Answer: C", "C", "explicit"),
    ("The correct answer is: (c)", "C", "explicit"),
    ("I would choose D because Madrid is in Spain.", "D", "explicit"),
    ("Option A is wrong; the answer is B", "B", "explicit"),
    ("B) London", "B", "leading"),
    ("**D**", "D", "leading"),
    ("C. Berlin is the capital of Germany.", "C", "leading"),
    ("(A)", "A", "leading"),
    ("I think it's Paris.", "A", "option_text"),
    ("the answer is a city called Paris", "A", "option_text"),
    ("london", "B", "option_text"),
    ("Hmm, maybe B) is right", "B", "lone_letter"),
])
def test_common_answer_formats_are_extracted(response, choice, rule):
    assert extract_choice(response, CAPITALS) == Extraction(choice, rule)


@pytest.mark.parametrize("response", ["Paris or London?", "", "I don't know.", "A or B, hard to say: (A) (B)"])
def test_ambiguous_or_missing_answers_extract_nothing(response):
    assert extract_choice(response, CAPITALS).choice is None


def test_english_article_a_is_not_read_as_option_a():
    assert extract_choice("A good guess would be the capital of Germany.", CAPITALS).choice is None


def test_numeric_options_match_whole_numbers_only():
    options = ["11", "12", "120", "1.2"]
    assert extract_choice("The result is 12.", options).choice == "B"
    assert extract_choice("It is 120", options).choice == "C"
    assert extract_choice("1.2", options).choice == "D"


def test_option_block_labels_options_in_order():
    assert option_block(["x", "y"]) == "A) x\nB) y"


def test_too_many_options_is_an_error():
    with pytest.raises(ValueError):
        extract_choice("A", ["o"] * (len(LETTERS) + 1))


options_st = st.lists(st.text(alphabet="abcdefghij klmnop", min_size=3, max_size=12).map(str.strip), min_size=2,
                      max_size=6, unique=True).filter(lambda xs: all(len(x) >= 3 for x in xs))


@settings(max_examples=60, deadline=None)
@given(options_st, st.data())
def test_explicit_answer_statement_always_wins(options, data):
    letter = data.draw(st.sampled_from(LETTERS[: len(options)]))
    assert extract_choice(f"After thinking, the answer is ({letter}).", options).choice == letter


@settings(max_examples=60, deadline=None)
@given(options_st, st.text(max_size=120))
def test_extraction_never_returns_a_letter_outside_the_options(options, response):
    choice = extract_choice(response, options).choice
    assert choice is None or choice in LETTERS[: len(options)]


@settings(max_examples=60, deadline=None)
@given(options_st, st.data())
def test_restating_exactly_one_option_selects_it(options, data):
    i = data.draw(st.integers(0, len(options) - 1))
    assume(all(options[i] not in o and o not in options[i] for j, o in enumerate(options) if j != i))
    assert extract_choice(f"it is {options[i]}", options).choice == LETTERS[i]
