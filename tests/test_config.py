"""Config validation: unknown keys and wrong types name the key path; TOML errors name the file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privaudit.config import dataclass_from_mapping, load_toml
from privaudit.errors import InputError


@dataclass(frozen=True)
class Inner:
    k: int = 1


@dataclass(frozen=True)
class Params:
    name: str
    samples: int = 1
    rate: float = 0.5
    mode: Literal["a", "b"] = "a"
    tags: list[str] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)
    path: Path | None = None


def test_valid_mapping_builds_typed_dataclass():
    p = dataclass_from_mapping(Params, {"name": "x", "samples": 3, "rate": 1, "tags": ["a"], "inner": {"k": 2},
                                        "path": "f.jsonl"}, "spec")
    assert p == Params(name="x", samples=3, rate=1.0, tags=["a"], inner=Inner(k=2), path=Path("f.jsonl"))


@pytest.mark.parametrize(
    "data, message",
    [
        ({"name": "x", "sampels": 3}, r"spec: sampels: unknown key"),
        ({"name": "x", "samples": "3"}, r"spec: samples: expected an integer"),
        ({"name": "x", "samples": True}, r"spec: samples: expected an integer"),
        ({"name": "x", "mode": "c"}, r"spec: mode: must be one of"),
        ({"name": "x", "tags": "a"}, r"spec: tags: expected a list"),
        ({"name": "x", "tags": [1]}, r"spec: tags\[0\]: expected a string"),
        ({"name": "x", "inner": {"j": 1}}, r"spec: inner\.j: unknown key"),
        ({}, r"spec: name: required key is missing"),
    ],
)
def test_bad_values_name_the_key_path(data, message):
    with pytest.raises(InputError, match=message):
        dataclass_from_mapping(Params, data, "spec")


def test_toml_errors_name_the_file(tmp_path):
    bad = tmp_path / "audit.toml"
    bad.write_text("targets = [\n")
    with pytest.raises(InputError, match="audit.toml: invalid TOML"):
        load_toml(bad)
    with pytest.raises(InputError, match="no such file"):
        load_toml(tmp_path / "missing.toml")
    bad.write_bytes(b"\xff\xfe = 1")
    with pytest.raises(InputError, match="not UTF-8"):
        load_toml(bad)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8)))
def test_fuzzed_mappings_never_raise_anything_but_input_error(data):
    try:
        dataclass_from_mapping(Params, data, "spec")
    except InputError:
        pass
