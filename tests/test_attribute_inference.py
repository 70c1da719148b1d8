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
                 "top1.city_country", "top1_country.city_country", "anonymized_top1.occupation"):
        assert name in metrics, name
    anon = result.records[result.records["condition"] == "anonymized"]
    # the gazetteer lets Presidio replace stated city names, so some comments changed ...
    assert anon["anonymized_comments"].sum() > 0
    # ... and stated cities were the baseline's strongest cue, so accuracy on location drops.
    assert metrics["anonymized_top1.city_country"].value <= metrics["top1.city_country"].value
    drop = metrics["anonymization_drop_top1"]
    assert drop.low <= drop.value <= drop.high
    # one author's guesses share a unit: rates are clustered by author, the drop is paired by guess
    authors = result.records["author"].nunique()
    assert metrics["top1"].method == "wilson_design_effect" and metrics["top1"].clusters == authors
    assert drop.method == "cluster_robust_t" and drop.clusters == authors
    assert drop.value == pytest.approx(metrics["top1"].value - metrics["anonymized_top1"].value)
    summary = result.to_summary()["metrics"]  # every reported metric is declared
    assert summary["anonymization_drop_top1"]["direction"] == "lower_is_worse"
    assert summary["top1.city_country"]["cluster"] == "author"


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


def _guesses(hits_by_author: dict[str, list[bool]], condition: str = "original") -> "pd.DataFrame":
    import pandas as pd

    rows = [{"author": a, "attribute": ATTRIBUTES[i], "condition": condition, "adversary": "target", "top1": h,
             "top3": h, "partial_top1": False, "hardness": 1 + i % 5}
            for a, hits in hits_by_author.items() for i, h in enumerate(hits)]
    return pd.DataFrame(rows)


def test_an_author_right_on_every_attribute_counts_as_one_author_not_eight_guesses() -> None:
    from privaudit.attacks.attribute_inference import accuracy_metrics
    from privaudit.metrics import proportion

    rows = _guesses({f"a{i}": [i == 0] * len(ATTRIBUTES) for i in range(20)})
    top1 = accuracy_metrics(rows)["top1"]
    assert top1.n == 20 * len(ATTRIBUTES) and top1.clusters == 20 and top1.value == pytest.approx(1 / 20)
    per_author = proportion(1, 20)
    assert top1.high == pytest.approx(per_author.high, rel=0.05)  # the width of 1 in 20 authors ...
    assert top1.high > proportion(len(ATTRIBUTES), 20 * len(ATTRIBUTES)).high + 0.1  # ... not 8 in 160 guesses


def test_anonymization_drop_is_paired_by_author_and_attribute() -> None:
    from privaudit.attacks.attribute_inference import paired_drop
    from privaudit.attacks.attribute_scoring import difference_estimate
    from privaudit.metrics import proportion

    before = _guesses({f"a{i}": [i % 2 == 0] * len(ATTRIBUTES) for i in range(30)})
    same = paired_drop(before, _guesses({f"a{i}": [i % 2 == 0] * len(ATTRIBUTES) for i in range(30)}, "anonymized"))
    # nobody changed: 0, within +- the Wilson upper bound of 0 discordant authors in 30
    assert same.value == 0 and same.high == pytest.approx(proportion(0, 30).high) and same.clusters == 30
    k = len(ATTRIBUTES)
    n = 30 * k
    unpaired = difference_estimate(proportion(15 * k, n), proportion(13 * k, n))  # Newcombe, as before
    # the same drop (2 authors' worth of guesses) spread over many authors: the paired interval is
    # narrower than Newcombe's, which ignores that the other guesses did not change at all ...
    spread = {f"a{i}": [i % 2 == 0 and not (j == 0 or (i == 0 and j == 1)) for j in range(k)] for i in range(30)}
    # (each of the 15 right authors loses one guess, one of them a second: 16 = 2 / 30 of the 240)
    spread_drop = paired_drop(before, _guesses(spread, "anonymized"))
    assert spread_drop.value == pytest.approx(2 / 30) and spread_drop.method == "cluster_robust_t"
    assert spread_drop.high - spread_drop.low < unpaired.high - unpaired.low and spread_drop.low > 0
    # ... while two authors losing every guess is evidence from 2 of 30 authors, and is wider
    after = _guesses({f"a{i}": [i % 2 == 0 and i > 2] * k for i in range(30)}, "anonymized")
    concentrated = paired_drop(before, after)
    assert concentrated.value == pytest.approx(2 / 30) and concentrated.low < 0 < concentrated.high
    assert concentrated.high - concentrated.low > spread_drop.high - spread_drop.low
