"""The attribute-inference attack end to end: records, metrics, resume, baseline and anonymization."""

from __future__ import annotations

from pathlib import Path

import pytest

from privaudit.attacks.attribute_inference import (
    AttributeInference,
    build_messages,
    location_gazetteer,
    messages_as_text,
)
from privaudit.attacks.base import RunContext, get_attack
from privaudit.data.synthpai import ATTRIBUTES
from privaudit.engine.store import RunStore
from privaudit.errors import InputError
from privaudit.targets.base import load_target


def _run(target, out: Path, params: dict, batch_size: int = 4):
    attack = get_attack("attributes").from_config(params, "test")
    with RunStore(out) as store:
        ctx = RunContext(store=store, seed=0, batch_size=batch_size)
        return attack.run(target, ctx)


class _CountingTarget:
    """Forwards to a real target and counts generate calls and prompts (to check batching and resume)."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.capabilities = inner, inner.name, inner.capabilities
        self.calls: list[int] = []

    def generate(self, prompts, cfg):
        self.calls.append(len(prompts))
        return self.inner.generate(prompts, cfg)

    def chat(self, conversations, cfg):
        self.calls.append(len(conversations))
        return self.inner.chat(conversations, cfg)


def test_attack_is_registered_under_attributes() -> None:
    assert get_attack("attributes") is AttributeInference


def test_prompt_asks_for_reasoning_and_three_guesses_per_attribute() -> None:
    messages = build_messages(["I live in Berlin.", "My wife says hi."], ["age", "city_country"])
    user = messages[-1]["content"]
    assert messages[0]["role"] == "system"
    assert "step-by-step" in user and "top 3 guesses" in user
    assert "Type: age" in user and "Type: city_country" in user and "Type: sex" not in user
    assert "- I live in Berlin." in user
    assert messages_as_text(messages).endswith("Answer:\n")


def test_params_reject_unknown_adversary_and_attribute() -> None:
    with pytest.raises(InputError, match="adversary"):
        get_attack("attributes").from_config({"adversary": "oracle"}, "t")
    with pytest.raises(InputError, match="attributes: unknown attribute 'zodiac'"):
        get_attack("attributes").from_config({"attributes": ["zodiac"]}, "t")


def test_tiny_target_writes_one_record_per_author_and_attribute_then_resumes(tiny_model_dir: Path,
                                                                              tmp_path: Path) -> None:
    target = _CountingTarget(load_target(f"hf:{tiny_model_dir}"))
    params = {"max_authors": 3, "attributes": ["age", "sex"], "max_comments": 1, "max_new_tokens": 4}
    result = _run(target, tmp_path / "run", params, batch_size=4)
    assert target.calls == [3]  # all authors in one batched call
    records = result.records
    assert len(records) == 3 * 2
    assert set(records["attribute"]) == {"age", "sex"}
    assert set(records["condition"]) == {"original"} and set(records["adversary"]) == {"target"}
    assert {"truth", "guesses", "top1", "top3", "response", "hardness"} <= set(records.columns)
    assert {"top1", "top3"} <= set(result.metrics)
    scorable = int(records["scorable"].sum())
    assert result.metrics["top1"].n == scorable
    assert all(0.0 <= e.low <= e.high <= 1.0 for e in result.metrics.values())

    again = _run(target, tmp_path / "run", params, batch_size=4)
    assert target.calls == [3]  # nothing recomputed
    assert len(again.records) == 6
    assert again.metrics["top1"] == result.metrics["top1"]


def test_baseline_adversary_reports_majority_and_anonymized_accuracy(tmp_path: Path) -> None:
    class NoModel:
        name, capabilities = "none", frozenset()

    result = _run(NoModel(), tmp_path / "run",
                  {"adversary": "baseline", "anonymize": True, "max_authors": 60,
                   "attributes": ["city_country", "occupation"]})
    metrics = result.metrics
    for name in ("top1", "top3", "majority_top1", "anonymized_top1", "anonymization_drop_top1",
                 "top1_city_country", "top1_country_city_country", "anonymized_top1_occupation"):
        assert name in metrics, name
    anon = result.records[result.records["condition"] == "anonymized"]
    # the gazetteer lets Presidio replace stated city names, so some comments changed ...
    assert anon["anonymized_comments"].sum() > 0
    # ... and stated cities were the baseline's strongest cue, so accuracy on location drops.
    assert metrics["anonymized_top1_city_country"].value <= metrics["top1_city_country"].value
    drop = metrics["anonymization_drop_top1"]
    assert drop.low <= drop.value <= drop.high


def test_gazetteer_holds_title_cased_city_and_country_names() -> None:
    names = location_gazetteer()
    assert "Berlin" in names and "Germany" in names and "New York" in names


@pytest.mark.slow
def test_builtin_smollm2_completes_on_four_authors(tmp_path: Path) -> None:
    target = load_target("builtin:smollm2-135m")
    result = _run(target, tmp_path / "run", {"max_authors": 4, "max_new_tokens": 256}, batch_size=4)
    assert len(result.records) == 4 * len(ATTRIBUTES)
    assert result.metrics["top1"].n == int(result.records["scorable"].sum()) > 0
    assert result.records["response"].str.len().gt(0).all()
