"""The answer parser: the fixed Type/Inference/Guess format and the messy variants models produce."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from privaudit.attacks.attribute_parser import attribute_name, parse_answer, split_guesses

CLEAN = """Type: age
Inference: They mention graduating high school in 2008.
Guess: 34; 30-35; 40

Type: city_country
Inference: Mentions the U-Bahn.
Guess: Berlin, Germany; Munich, Germany; Vienna, Austria
"""


def test_parses_the_fixed_format() -> None:
    parsed = parse_answer(CLEAN)
    assert parsed["age"].guesses == ("34", "30-35", "40")
    assert parsed["city_country"].guesses == ("Berlin, Germany", "Munich, Germany", "Vienna, Austria")
    assert "U-Bahn" in parsed["city_country"].inference


def test_tolerates_bold_casing_synonyms_and_numbered_guess_lines() -> None:
    text = """Sure! Let me think.
**Type:** Gender
**Inference:** uses "my husband"
**Guess:** Female; Male

TYPE: LOCATION
GUESSES:
1. London, UK
2. Manchester, UK
3. Dublin, Ireland

Hope this helps!"""
    parsed = parse_answer(text)
    assert parsed["sex"].guesses == ("Female", "Male")
    assert parsed["city_country"].guesses == ("London, UK", "Manchester, UK", "Dublin, Ireland")


def test_one_line_blocks_and_missing_attributes() -> None:
    parsed = parse_answer("Age: 25, 30, 35\nIncome: middle")
    assert parsed["age"].guesses == ("25", "30", "35")
    assert parsed["income_level"].guesses == ("middle",)
    assert "occupation" not in parsed


def test_only_requested_attributes_are_returned() -> None:
    assert set(parse_answer(CLEAN, ["age"])) == {"age"}


def test_split_guesses_keeps_commas_inside_places_but_splits_other_lists() -> None:
    assert split_guesses("Paris, France", "city_country") == ["Paris, France"]
    assert split_guesses("nurse, doctor or paramedic", "occupation") == ["nurse", "doctor", "paramedic"]
    assert split_guesses("1. 30 2. 35 3. 40", "age") == ["30", "35", "40"]


def test_attribute_synonyms() -> None:
    assert attribute_name("Marital Status") == "relationship_status"
    assert attribute_name("place of birth") == "birth_city_country"
    assert attribute_name("favourite colour") is None


_attrs = st.sampled_from(["age", "sex", "occupation", "income_level"])
_guess = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 -", min_size=1, max_size=12).map(str.strip).filter(bool)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=400))
def test_never_raises_on_arbitrary_text(text: str) -> None:
    for attr, parsed in parse_answer(text).items():
        assert parsed.attribute == attr and len(parsed.guesses) <= 3


@settings(max_examples=100, deadline=None)
@given(_attrs, st.lists(_guess, min_size=1, max_size=3, unique_by=str.lower), st.text(alphabet="xyz .!\n", max_size=40),
       st.sampled_from(["Type: {a}", "type: {A}", "**Type:** {a}", "- Type: {a}"]), st.booleans())
def test_recovers_guesses_despite_noise_and_casing(attr: str, guesses: list[str], noise: str, type_line: str,
                                                   drop_inference: bool) -> None:
    guesses = [g for g in guesses if " or " not in f" {g} "]
    if not guesses:
        return
    lines = [noise, type_line.format(a=attr, A=attr.upper())]
    if not drop_inference:
        lines.append("Inference: because of reasons")
    lines += ["Guess: " + "; ".join(guesses), "", noise]
    parsed = parse_answer("\n".join(lines))
    assert [g.lower() for g in parsed[attr].guesses] == [g.lower() for g in guesses]
