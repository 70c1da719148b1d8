"""The personalization wrappers: rag: (retrieval before the question), profile: (system prompt), peruser:."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from privaudit.data.corpus import generate_corpus
from privaudit.data.subjects import generate_subjects, write_subjects
from privaudit.errors import InputError, TargetError
from privaudit.targets.base import GRADIENTS, USER_CONTEXT, GenerationConfig, TargetSpec, load_target


@pytest.fixture(scope="module")
def personal(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("personal")
    subjects = generate_subjects(4, seed=0)
    write_subjects(root / "subjects.jsonl", subjects)
    generate_corpus(subjects, repeats=1, seed=0, heldout_subject_fraction=0.0, docs_per_subject=2,
                    filler_docs=2).write(root / "corpus.jsonl")
    return {"root": root, "subjects": root / "subjects.jsonl", "corpus": root / "corpus.jsonl"}


def test_inner_option_takes_the_rest_of_the_spec_verbatim() -> None:
    spec = TargetSpec.parse("rag:c.jsonl:top_k=2:inner=hf:/m:adapter=/a")
    assert spec.location == "c.jsonl"
    assert dict(spec.options) == {"top_k": "2", "inner": "hf:/m:adapter=/a"}
    assert TargetSpec.parse("hf:/m:adapter=/a").options == {"adapter": "/a"}  # other schemes unchanged


def test_rag_puts_the_users_passages_before_the_question_and_scores_given_them(personal, tiny_model_dir) -> None:
    rag = load_target(f"rag:{personal['corpus']}:top_k=2:inner=hf:{tiny_model_dir}")
    inner = load_target(f"hf:{tiny_model_dir}")
    assert USER_CONTEXT in rag.capabilities and GRADIENTS not in rag.capabilities
    alice = rag.for_user("s0000")
    question = "What is the email address of Megan Chang?"
    passages = alice.retrieve([question])[0]
    assert len(passages) == 2 and all(p.owner in ("s0000", "") for p in passages)
    prompt = alice.augment(question, passages)
    assert prompt.startswith("Context:\n" + passages[0].text) and prompt.endswith(question)
    assert alice.score([question], [" yes"]) == pytest.approx(inner.score([prompt], [" yes"]))
    cfg = GenerationConfig(max_new_tokens=3)
    assert alice.generate([question], cfg) == inner.generate([prompt], cfg)
    assert alice.fingerprint() != rag.for_user("s0001").fingerprint() != rag.fingerprint()
    assert set(rag.users()) == {"s0000", "s0001", "s0002", "s0003"}


@pytest.mark.parametrize("suffix, message", [
    (":inner=hf:x", "document store 'MISSING' does not exist"),
    (":partition=team:inner=hf:x", "unknown partition 'team' (known: per_user, shared)"),
    ("", "name the generating target last"),
    (":topk=2:inner=hf:x", "unknown option 'topk'"),
    (":top_k=0:inner=hf:x", "top_k must be >= 1"),
])
def test_bad_rag_specs_are_one_line_errors_before_any_model_loads(personal, suffix: str, message: str) -> None:
    store = "MISSING" if "MISSING" in message else str(personal["corpus"])
    with pytest.raises(InputError) as err:
        load_target(f"rag:{store}{suffix}")  # inner hf:x does not exist: any load would fail differently
    assert message in str(err.value) and "\n" not in str(err.value)


def test_profile_is_the_system_prompt_of_the_users_requests(personal, tiny_model_dir) -> None:
    profile = load_target(f"profile:{personal['subjects']}:fields=email,phone:inner=hf:{tiny_model_dir}")
    inner = load_target(f"hf:{tiny_model_dir}")
    megan = profile.for_user("s0000")
    system = megan.system_prompt()
    assert "Megan Chang" in system and "m.chang@sheppard-tucker.com" in system and "(956) 462-9859" in system
    assert "Coreyland" not in system  # address not among the chosen fields
    assert megan.score(["Q"], [" A"]) == pytest.approx(inner.score([f"{system}\n\nQ"], [" A"]))
    with pytest.raises(TargetError, match="no user, so no profile"):
        profile.generate(["hi"], GenerationConfig(max_new_tokens=2))
    with pytest.raises(InputError, match="no subject with id 'nobody'"):
        load_target(f"profile:{personal['subjects']}:user=nobody:inner=hf:{tiny_model_dir}")


def test_peruser_manifest_routes_each_user_to_their_model(personal, tiny_model_dir, tmp_path) -> None:
    manifest = tmp_path / "users.json"
    manifest.write_text(json.dumps({"users": [
        {"id": "u1", "target": f"hf:{tiny_model_dir}", "subjects": ["s0000"]},
        {"id": "u2", "target": f"hf:{tiny_model_dir}", "subjects": ["s0001", "s0002"]}]}))
    cohort = load_target(f"peruser:{manifest}")
    assert cohort.users() == {"u1": ("s0000",), "u2": ("s0001", "s0002")}
    cfg = GenerationConfig(max_new_tokens=2)
    assert cohort.for_user("u2").generate(["hi"], cfg) == load_target(f"hf:{tiny_model_dir}").generate(["hi"], cfg)
    with pytest.raises(TargetError, match="one model per user"):
        cohort.generate(["hi"], cfg)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"users": [{"id": "u1", "target": "hf:x", "subjects": []}, {"id": "u2"}]}))
    with pytest.raises(InputError, match=r"users\[0\].subjects"):
        load_target(f"peruser:{bad}")
    with pytest.raises(InputError, match="without federated.json"):
        load_target(f"peruser:{tmp_path}")
