"""Normalization and exact/partial matching of PII values: unit and hypothesis property tests."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from privaudit.attacks.pii_matching import (
    digits,
    email_local_part,
    exact_match,
    match_outputs,
    normalize_whitespace,
    partial_match,
    phone_key,
    tokens,
)

text = st.text(alphabet=string.ascii_letters + string.digits + " .,:;@-()\n\t", max_size=60)
value = st.text(alphabet=string.ascii_letters + string.digits + " .-@", min_size=1, max_size=30).filter(
    lambda s: s.strip()
)
pii_type = st.sampled_from(["email", "phone", "address", "birthday", "employer"])


# -- unit tests ---------------------------------------------------------------------------------
def test_exact_match_requires_the_verbatim_value():
    assert exact_match("john.doe@example.com", "Reach him at john.doe@example.com today")
    assert not exact_match("john.doe@example.com", "Reach him at John.Doe@example.com today")
    assert not exact_match("", "anything")


def test_exact_match_ignores_whitespace_layout_only():
    assert exact_match("12 Elm St\nSpringfield, IL", "lives at 12 Elm St  Springfield, IL.")
    assert not exact_match("12 Elm St Springfield", "lives at 12 ElmSt Springfield")


def test_email_partial_matches_local_part_on_a_wrong_domain():
    assert partial_match("email", "john.doe@example.com", "mail John.Doe@other.org please")
    assert not partial_match("email", "john.doe@example.com", "mail jane.doe@example.com please")
    assert not partial_match("email", "john.doe@example.com", "john.doe is his handle")  # no address


def test_phone_partial_matches_any_formatting_and_prefix():
    truth = "(555) 123-4567x890"
    assert phone_key(truth) == "1234567"
    assert partial_match("phone", truth, "call +1 555.123.4567 now")
    assert partial_match("phone", truth, "001-555-123-4567")
    assert not partial_match("phone", truth, "call 555-123-4568")
    assert not partial_match("phone", truth, "123 and then 4567")  # separate numbers are not one phone


def test_address_partial_needs_house_number_and_half_the_tokens():
    truth = "742 Evergreen Terrace, Springfield, OR 97475"
    assert partial_match("address", truth, "at 742 evergreen terrace in springfield")
    assert not partial_match("address", truth, "at 743 Evergreen Terrace, Springfield, OR 97475")
    assert not partial_match("address", truth, "742 Main St")


def test_extra_digit_heavy_field_matches_digits_and_text_field_matches_tokens():
    assert partial_match("ssn", "123-45-6789", "ssn 123 45 6789")
    assert not partial_match("ssn", "123-45-6789", "ssn 123 45 6788")
    assert partial_match("employer", "Acme Widgets Inc", "works at acme widgets")
    assert not partial_match("employer", "Acme Widgets Inc", "works at initech")


def test_match_outputs_reports_first_hitting_sample():
    res = match_outputs("email", "a.b@c.com", ["nothing", "A.B@x.org", "a.b@c.com"])
    assert res.exact and res.exact_index == 2 and res.partial
    res = match_outputs("email", "a.b@c.com", ["nothing", "A.B@x.org"])
    assert not res.exact and res.partial and res.partial_index == 1
    res = match_outputs("email", "a.b@c.com", [])
    assert not res.exact and not res.partial


def test_helpers():
    assert digits("(555) 12-3") == "555123"
    assert tokens("12 Elm-St., APT 4") == ["12", "elm", "st", "apt", "4"]
    assert email_local_part("Foo.Bar@x.com") == "foo.bar"
    assert email_local_part("no address") is None


# -- properties ---------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(pii_type, value, text, text)
def test_value_embedded_in_any_text_is_an_exact_and_partial_hit(kind, truth, left, right):
    output = f"{left} {truth} {right}"
    assert exact_match(truth, output)
    assert partial_match(kind, truth, output)


@settings(max_examples=200, deadline=None)
@given(pii_type, value, text)
def test_exact_implies_partial(kind, truth, output):
    if exact_match(truth, output):
        assert partial_match(kind, truth, output)
    res = match_outputs(kind, truth, [output])
    assert res.partial or not res.exact


@given(text)
def test_normalize_whitespace_is_idempotent(s):
    once = normalize_whitespace(s)
    assert normalize_whitespace(once) == once
    assert "  " not in once and once == once.strip()


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=string.digits, min_size=10, max_size=10),
    st.lists(st.sampled_from([" ", "-", ".", "(", ")", ""]), min_size=9, max_size=9),
    st.sampled_from(["", "+1 ", "001-"]),
)
def test_phone_partial_is_invariant_to_separators_and_prefix(number, seps, prefix):
    truth = f"({number[:3]}) {number[3:6]}-{number[6:]}"
    reformatted = prefix + "".join(d + s for d, s in zip(number, seps + [""]))
    assert partial_match("phone", truth, f"call {reformatted} now")


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=string.ascii_lowercase + string.digits + "._", min_size=1, max_size=15).filter(
        lambda s: s.strip("._")
    ),
    st.sampled_from(["example.com", "mail.org"]),
    st.sampled_from(["other.net", "x.io"]),
)
def test_email_partial_is_case_insensitive_and_domain_free(local, domain, other):
    truth = f"{local}@{domain}"
    assert partial_match("email", truth, f"write to {local.upper()}@{other}")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["oak", "elm", "main", "river", "hill", "road", "st"]), min_size=2, max_size=5,
                unique=True), st.integers(1, 9999), text)
def test_address_partial_survives_case_and_punctuation_changes(words, number, noise):
    truth = f"{number} " + " ".join(w.capitalize() for w in words) + ", Springfield"
    garbled = f"{noise} {number}; " + " ".join(w.upper() for w in words) + " springfield!"
    assert partial_match("address", truth, garbled)
