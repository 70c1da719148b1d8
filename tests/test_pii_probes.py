"""ProPILE probe construction: packaged templates, association levels, user templates, bad input."""

from __future__ import annotations

import json

import pytest

from privaudit.attacks.pii_probes import build_probes, load_templates
from privaudit.data.subjects import DataSubject
from privaudit.errors import InputError

ALICE = DataSubject(id="s1", name="Alice Moss", email="alice.moss@example.com", phone="(212) 555-0142",
                    address="12 Elm St, Springfield", extra={"employer": "Acme Corp"})
BOB = DataSubject(id="s2", name="Bob Ray", email="bob.ray@example.org")


def test_packaged_templates_cover_every_level_for_the_standard_fields():
    templates = load_templates()
    for field in ("email", "phone", "address"):
        assert {t.level for t in templates.for_field(field)} == {1, 2, 3}


def test_probes_never_reveal_the_target_value_and_end_before_it():
    probes = build_probes([ALICE], load_templates())
    assert probes
    for p in probes:
        assert p.truth not in p.prompt
        assert p.pii_type not in p.known
        assert p.continuation == " " + p.truth
        assert not p.prompt.endswith(" ")


def test_levels_reveal_name_plus_zero_one_or_two_fields():
    probes = build_probes([ALICE], load_templates(), pii_types=["email"])
    by_level = {lv: [p for p in probes if p.level == lv] for lv in (1, 2, 3)}
    assert all(by_level.values())
    for lv, ps in by_level.items():
        for p in ps:
            assert set(p.known) >= {"name"} and len(p.known) == lv
            for value in p.known.values():
                assert value in p.prompt
    assert {p.association for p in probes} == {"twin", "triplet", "quadruplet"}


def test_subject_without_other_fields_gets_only_name_probes():
    probes = build_probes([BOB], load_templates())
    assert probes and {p.level for p in probes} == {1}
    assert {p.pii_type for p in probes} == {"email"}


def test_extra_fields_use_the_generic_templates():
    probes = build_probes([ALICE], load_templates(), pii_types=["employer"])
    assert probes and all(p.template_id.startswith("any-") for p in probes)
    assert any("employer" in p.prompt for p in probes)


def test_filters_restrict_types_levels_and_templates():
    probes = build_probes([ALICE, BOB], load_templates(), pii_types=["phone"], levels=[2])
    assert probes and all(p.pii_type == "phone" and p.level == 2 for p in probes)
    one = build_probes([ALICE], load_templates(), template_ids=["email-twin-1"])
    assert [p.key for p in one] == ["s1|email|email-twin-1"]


def test_probe_keys_are_unique_and_order_is_deterministic():
    a = build_probes([ALICE, BOB], load_templates())
    b = build_probes([ALICE, BOB], load_templates())
    assert [p.key for p in a] == [p.key for p in b]
    assert len({p.key for p in a}) == len(a)


def test_user_templates_extend_and_override(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"templates": [
        {"id": "email-twin-1", "target": "email", "known": ["name"], "text": "Mail for {name}:"},
        {"id": "mine", "target": "phone", "known": ["name"], "text": "Ring {name} on"},
    ]}))
    templates = load_templates(path)
    ids = {t.id: t for t in templates.templates}
    assert ids["email-twin-1"].text == "Mail for {name}:"
    assert "mine" in ids and "phone-twin-1" in ids


@pytest.mark.parametrize("item, message", [
    ({"id": "x", "target": "email", "known": ["name"], "text": "{name} {phone}"}, "placeholder '{phone}'"),
    ({"id": "x", "target": "email", "known": ["name", "email"], "text": "{name}"}, "reveals the target"),
    ({"id": "x", "target": "email", "known": [], "text": "{name}"}, "field 'known'"),
    ({"id": "", "target": "email", "known": ["name"], "text": "{name}"}, "field 'id'"),
])
def test_bad_user_templates_name_file_index_and_field(tmp_path, item, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"templates": [item]}))
    with pytest.raises(InputError) as err:
        load_templates(path)
    assert str(path) in str(err.value) and "templates[0]" in str(err.value) and message in str(err.value)


def test_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "templates": [\n')
    with pytest.raises(InputError, match=r"bad\.json:\d+: invalid JSON"):
        load_templates(path)
