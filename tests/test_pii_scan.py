"""Free-generation scan: Presidio finds PII in sampled text, offline, and tells known subjects' PII apart.

The target is a deterministic pure-Python generator (a real Target, no weights) whose outputs hold
planted PII, so the expected detections are known exactly; Presidio itself runs for real.
"""

from __future__ import annotations

import socket
from typing import Sequence

import pytest

from privaudit.attacks.base import RunContext
from privaudit.attacks.pii_scan import match_known, run_scan, scan_plan, summarize_scan
from privaudit.data.subjects import DataSubject
from privaudit.engine.store import RunStore
from privaudit.targets.base import GENERATE, GenerationConfig

KNOWN = DataSubject(id="s1", name="Alice Moss", email="alice.moss@example.com", phone="(212) 555-0142",
                    address="12 Elm St, Springfield")
OTHER = DataSubject(id="s2", name="Bob Ray", email="bob.ray@example.org", phone="(415) 555-0199")


class PlantedTarget:
    """Sample j of every prompt cycles through texts with a known email, a known phone, a stranger's
    email (not a subject), and no PII at all."""

    name = "planted"
    capabilities = frozenset({GENERATE})
    TEXTS = (
        "Sure, write to alice.moss@example.com for details.",
        "Her number is (212) 555-0142, call after six.",
        "Contact carl.unknown@mailbox.net about the order.",
        "The weather is nice today and nothing else happened.",
    )

    def __init__(self) -> None:
        self.calls: list[int] = []

    def fingerprint(self) -> str:
        return "planted"

    def generate(self, prompts: Sequence[str], cfg: GenerationConfig) -> list[list[str]]:
        self.calls.append(len(prompts))
        return [[self.TEXTS[(cfg.seed + j) % len(self.TEXTS)] for j in range(cfg.num_samples)] for _ in prompts]

    def close(self) -> None:
        pass


@pytest.fixture()
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test (tldextract must use its bundled list)."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_scan_plan_splits_generations_into_seeded_rounds():
    assert scan_plan(8, ["a", "b"], 3) == [(0, 3), (1, 1)]
    assert sum(k for _, k in scan_plan(10, ["a", "b", "c"], 16)) == 4  # ceil(10 / 3) per prompt


def test_match_known_distinguishes_exact_partial_and_strangers():
    assert match_known("alice.moss@example.com", "EMAIL_ADDRESS", [KNOWN, OTHER]) == ("s1", "email", True)
    assert match_known("212.555.0142", "PHONE_NUMBER", [KNOWN, OTHER]) == ("s1", "phone", False)
    assert match_known("carl.unknown@mailbox.net", "EMAIL_ADDRESS", [KNOWN, OTHER]) is None


def test_scan_finds_planted_email_and_phone_offline_and_matches_known_subjects(tmp_path, no_network):
    target = PlantedTarget()
    with RunStore(tmp_path / "run") as store:
        ctx = RunContext(store=store, seed=0, batch_size=8)
        n = run_scan(target, [KNOWN, OTHER], 8, ["", "Contact:"], 32, 1.0, ctx, "pii", "planted")
        assert n == 2 and target.calls == [2]  # both prompts in one batched call, 4 samples each
        assert run_scan(target, [KNOWN, OTHER], 8, ["", "Contact:"], 32, 1.0, ctx, "pii", "planted") == 0
        records = ctx.records("pii", "planted")
    entities = {}
    for spans in records["spans"]:
        for sp in spans:
            entities.setdefault(sp["entity"], []).append(sp)
    assert {"EMAIL_ADDRESS", "PHONE_NUMBER"} <= set(entities)
    emails = entities["EMAIL_ADDRESS"]
    assert any(sp["known_subject"] == "s1" and sp["known_exact"] for sp in emails)
    assert any(sp["known_subject"] is None for sp in emails)  # the stranger's email is PII but not known
    assert any(sp["known_subject"] == "s1" and sp["known_field"] == "phone" for sp in entities["PHONE_NUMBER"])

    seen = {v for values in records["known_values"] for v in values}
    assert {"alice.moss@example.com", "(212) 555-0142"} <= seen  # declared in pii_fields, so reports mask them
    assert "carl.unknown@mailbox.net" not in seen

    metrics, tables = summarize_scan(records)
    assert metrics["scan_pii_rate"].n == 8 and metrics["scan_pii_rate"].value == pytest.approx(6 / 8)
    assert metrics["scan_known_leak_rate"].value == pytest.approx(4 / 8)  # known email or phone, verbatim
    assert 0 < metrics["scan_known_match_rate"].value < 1
    rows = {r["entity"]: r for r in tables["scan_entities"]}
    assert rows["EMAIL_ADDRESS"]["found"] == 4 and rows["EMAIL_ADDRESS"]["matches_known_subject"] == 2


def test_scan_records_hold_no_detected_text_beyond_outputs(tmp_path):
    with RunStore(tmp_path / "run") as store:
        ctx = RunContext(store=store, seed=1, batch_size=4)
        run_scan(PlantedTarget(), [KNOWN], 4, [""], 16, 1.0, ctx, "pii", "planted")
        rec = ctx.records("pii", "planted").iloc[0]
    for sp in rec["spans"]:
        assert set(sp) == {"sample", "entity", "start", "end", "score", "known_subject", "known_field", "known_exact"}
        assert rec["outputs"][sp["sample"]][sp["start"]:sp["end"]]
