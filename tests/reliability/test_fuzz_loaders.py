"""Property-based fuzzing of every loader a user's file reaches (issue 10, item 1).

The property: whatever the bytes, a loader returns a value or raises `InputError` (a one-line,
exit-2 message); any other exception is a traceback in front of a user, i.e. a bug. Inputs mix
pure noise with schema-shaped documents (real key names, wrong-typed or odd values), because
noise alone rarely gets past the first JSON/TOML parse.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privaudit.audit import AuditSpec, check_target_specs, load_audit_spec
from privaudit.config import dataclass_from_mapping, load_toml
from privaudit.data.corpus import load_corpus
from privaudit.data.jsonl import read_jsonl
from privaudit.data.subjects import load_subjects
from privaudit.data.synthpai import load_authors
from privaudit.errors import InputError

# CI-sized by default; PRIVAUDIT_FUZZ_EXAMPLES=2000 for a deep run.
FUZZ = settings(max_examples=int(os.environ.get("PRIVAUDIT_FUZZ_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies ------------------------------------------------------------------------------------
SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30))
JSON_VALUES = st.recursive(SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                           max_leaves=12)

SUBJECT_KEYS = ["id", "name", "email", "phone", "address", "birthdate", "employer"]
CORPUS_KEYS = ["record", "id", "kind", "split", "text", "subject_id", "repeats", "mentions", "format",
               "prefix", "secret", "version"]
CORPUS_VALUES = {
    "record": st.sampled_from(["meta", "document", "canary", "other"]),
    "kind": st.sampled_from(["email", "chat", "note", "canary", "filler", "letter"]),
    "split": st.sampled_from(["train", "heldout", "test"]),
    "format": st.sampled_from(["privaudit-corpus", "#### ####", "##", "nohash"]),
    "secret": st.sampled_from(["1234 5678", "12", "ab"]),
    "repeats": st.integers(-2, 4),
}
SYNTHPAI_KEYS = ["author", "username", "id", "comments", "text", "labels", "reviews", "profile",
                 "age", "sex", "city_country", "income_level", "certainty", "hardness", "estimate"]


def shaped_objects(keys: list[str], special: dict[str, st.SearchStrategy] | None = None) -> st.SearchStrategy:
    """JSON objects whose keys are mostly the loader's own field names, with any kind of value."""
    special = special or {}

    def value_for(key: str) -> st.SearchStrategy:
        return (special[key] | JSON_VALUES) if key in special else JSON_VALUES

    key_st = st.sampled_from(keys) | st.text(max_size=10)
    return st.lists(key_st, max_size=8).flatmap(
        lambda ks: st.fixed_dictionaries({k: value_for(k) for k in ks}))


def jsonl_documents(objects: st.SearchStrategy) -> st.SearchStrategy[bytes]:
    """Files of schema-shaped lines, occasionally a noise line, blank line or truncated line."""
    line = st.one_of(
        objects.map(lambda o: json.dumps(o, ensure_ascii=False).encode("utf-8", "surrogatepass")),
        objects.map(lambda o: json.dumps(o)[: max(1, len(json.dumps(o)) // 2)].encode()),
        st.binary(max_size=40),
        st.just(b""),
        st.sampled_from([b"NaN", b"[]", b'"x"', b"\xef\xbb\xbf{}", b"{" * 50_000]),
    )
    weighted = st.one_of(objects.map(lambda o: json.dumps(o).encode()), objects.map(lambda o: json.dumps(o).encode()), line)
    return st.lists(weighted, max_size=6).map(lambda ls: b"\n".join(ls) + (b"\n" if ls else b""))


ANY_BYTES = st.binary(max_size=300)


@pytest.fixture(scope="module")
def scratch() -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def only_input_errors(load: Callable[[Path], Any], path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        result = load(path)
        if hasattr(result, "__next__"):
            list(result)
    except InputError as exc:
        assert str(exc).strip(), "an InputError without a message"


# --- JSONL data loaders ------------------------------------------------------------------------------
@FUZZ
@given(data=ANY_BYTES | jsonl_documents(shaped_objects(SUBJECT_KEYS)))
def test_read_jsonl_raises_only_input_errors(scratch: Path, data: bytes):
    only_input_errors(read_jsonl, scratch / "any.jsonl", data)


@FUZZ
@given(data=ANY_BYTES | jsonl_documents(shaped_objects(SUBJECT_KEYS)))
def test_load_subjects_raises_only_input_errors(scratch: Path, data: bytes):
    only_input_errors(load_subjects, scratch / "subjects.jsonl", data)


@FUZZ
@given(data=ANY_BYTES | jsonl_documents(shaped_objects(CORPUS_KEYS, CORPUS_VALUES)))
def test_load_corpus_raises_only_input_errors(scratch: Path, data: bytes):
    only_input_errors(load_corpus, scratch / "corpus.jsonl", data)


COMMENT = st.fixed_dictionaries({"text": JSON_VALUES | st.text(max_size=20)}) | st.text(max_size=20) | JSON_VALUES
SYNTHPAI_VALUES = {
    "comments": st.lists(COMMENT, max_size=3),
    "labels": st.dictionaries(st.sampled_from(["age", "sex", "city_country", "income_level", "x"]),
                              shaped_objects(["estimate", "certainty", "hardness", "value"]) | JSON_VALUES,
                              max_size=3),
    "reviews": st.dictionaries(st.text(max_size=6), st.dictionaries(st.sampled_from(["age", "sex", "x"]),
                               shaped_objects(["estimate", "certainty", "hardness"]), max_size=2), max_size=2),
}


@FUZZ
@given(data=ANY_BYTES | jsonl_documents(shaped_objects(SYNTHPAI_KEYS, SYNTHPAI_VALUES)))
def test_load_synthpai_authors_raises_only_input_errors(scratch: Path, data: bytes):
    only_input_errors(load_authors, scratch / "authors.jsonl", data)


# --- TOML config loaders ---------------------------------------------------------------------------
def toml_value(value: Any) -> str:
    """A TOML literal for a JSON-like value (None has no TOML form: an empty array stands in)."""
    if value is None:
        return "[]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "nan"
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes (mostly)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


TOP_KEYS = ["targets", "out", "seed", "batch_size", "cache", "show_pii", "thresholds", "bogus"]
ATTACK_NAMES = ["pii", "bias", "attributes", "membership", "nosuch"]
ATTACK_KEYS = ["subjects", "num_samples", "do_sample", "temperature", "max_new_tokens", "levels", "pii_types",
               "likelihood", "num_candidates", "top_p", "targets", "profiles", "personas", "max_subjects",
               "scan", "subject", "template_ids", "attack_model"]
TOP_VALUES = {
    "targets": st.lists(st.sampled_from(["hf:x", "builtin:smollm2-135m", "openai:http://h/v1#m", "nope"]), max_size=2),
    "seed": st.integers(-5, 5), "batch_size": st.integers(-1, 4),
}
ATTACK_VALUES = {"num_samples": st.integers(-1, 3), "levels": st.lists(st.integers(0, 4), max_size=3),
                 "temperature": st.floats(-1, 2, allow_nan=False), "top_p": st.floats(-1, 2, allow_nan=False),
                 "targets": st.lists(st.sampled_from(["hf:x", "other"]), max_size=2)}


@st.composite
def audit_documents(draw) -> str:
    top = draw(shaped_objects(TOP_KEYS, TOP_VALUES))
    lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in top.items()]
    for name in draw(st.lists(st.sampled_from(ATTACK_NAMES), max_size=2, unique=True)):
        lines.append(f"[attacks.{name}]")
        params = draw(shaped_objects(ATTACK_KEYS, ATTACK_VALUES))
        lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in params.items()]
    return "\n".join(lines) + "\n"


VALID_AUDIT = 'targets = ["hf:model"]\nseed = 3\n[attacks.pii]\nsubjects = "s.jsonl"\nnum_samples = 2\n'


@st.composite
def mutated_audit(draw) -> bytes:
    """The valid audit with a few random byte edits (deletions, insertions, replacements)."""
    data = bytearray(VALID_AUDIT.encode())
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = draw(st.binary(min_size=1, max_size=3))
        if op == "insert":
            data[pos:pos] = byte
        elif op == "delete":
            del data[pos:pos + len(byte)]
        else:
            data[pos:pos + len(byte)] = byte
    return bytes(data)


@FUZZ
@given(data=ANY_BYTES | mutated_audit())
def test_load_toml_raises_only_input_errors(scratch: Path, data: bytes):
    only_input_errors(load_toml, scratch / "any.toml", data)


@FUZZ
@given(doc=audit_documents())
def test_load_audit_spec_on_schema_shaped_documents_raises_only_input_errors(scratch: Path, doc: str):
    only_input_errors(load_audit_spec, scratch / "audit.toml", doc.encode("utf-8", "surrogatepass"))


@FUZZ
@given(data=mutated_audit())
def test_load_audit_spec_on_mutated_documents_raises_only_input_errors(scratch: Path, data: bytes):
    only_input_errors(load_audit_spec, scratch / "audit.toml", data)


@FUZZ
@given(mapping=shaped_objects(TOP_KEYS + ["attacks"], {**TOP_VALUES, "attacks": st.dictionaries(
    st.sampled_from(ATTACK_NAMES), shaped_objects(ATTACK_KEYS, ATTACK_VALUES), max_size=2)}))
def test_dataclass_from_mapping_raises_only_input_errors(mapping: dict):
    try:
        dataclass_from_mapping(AuditSpec, mapping, "fuzz.toml")
    except InputError:
        pass


@FUZZ
@given(specs=st.lists(st.text(max_size=40) | st.sampled_from(["hf:", "hf:x:adapter", "openai:", ":", "hf:x::a=b"]),
                      min_size=1, max_size=3))
def test_target_spec_check_raises_only_input_errors(specs: list[str]):
    try:
        check_target_specs(specs)
    except InputError:
        pass


def test_the_fuzzers_reach_past_parsing(scratch: Path):
    """Guard against vacuous fuzzing: the shaped strategies can produce loadable files."""
    path = scratch / "ok.jsonl"
    path.write_text('{"id": "a", "name": "Ann Lee"}\n')
    assert load_subjects(path)[0].name == "Ann Lee"
    audit = scratch / "ok.toml"
    audit.write_text(VALID_AUDIT)
    assert load_audit_spec(audit).attacks["pii"]["num_samples"] == 2
