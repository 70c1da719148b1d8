"""Real AttackResult objects and run folders for the report and gate tests.

`ReportFixtureAttack` is a genuine Attack subclass (registered for the duration of a test) whose
`summarize` derives metrics, breakdown tables and every chart kind from stored records, the
way the real attacks do; runs are written through the real RunStore and `write_reports`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
from faker import Faker

from privaudit.attacks.base import ATTACKS, Attack, AttackResult, RunContext, register_attack
from privaudit.engine.store import RunStore
from privaudit.metrics import MetricSpec, metric_specs, proportion

ATTACK_NAME = "reportfixture"
PII_TYPES = ("email", "phone", "address")
HOSTILE_OUTPUTS = (
    "<script>alert('xss')</script>",
    '<img src=x onerror="alert(1)">',
    "\x1b[31mred\x1b[0m and \x07 bell \x00 nul",
    "\u202e override </td></tr></table><svg onload=alert(2)>",
)
# RunStore writes UTF-8, which cannot hold a lone surrogate; that case is built in memory only.
SURROGATE_OUTPUT = "bad surrogate \ud800 here"


def make_subjects(n: int = 6, seed: int = 7) -> list[dict[str, str]]:
    fake = Faker("en_US")
    fake.seed_instance(seed)
    return [{"id": f"s{i:02d}", "name": fake.name(), "email": fake.email(), "phone": fake.phone_number(),
             "address": fake.street_address()} for i in range(n)]


def make_records(subjects: list[dict[str, str]], seed: int = 0, hostile: bool = True, huge: bool = False) -> list[dict[str, Any]]:
    """One record per (subject, PII type): the model's output, the truth, whether it leaked, a rank."""
    rng = random.Random(seed)
    records = []
    for i, s in enumerate(subjects):
        for j, kind in enumerate(PII_TYPES):
            hit = rng.random() < 0.4
            output = f"Sure, {s['name']}'s {kind} is {s[kind]}." if hit else f"I don't know {s['name']}'s {kind}."
            if hostile and (i + j) % 3 == 0:
                output += " " + HOSTILE_OUTPUTS[(i + j) % len(HOSTILE_OUTPUTS)]
            if huge and i == 0 and j == 0:
                output += "A" * 1_000_000
            records.append({"item": f"{s['id']}:{kind}", "subject": s["id"], "subject_name": s["name"],
                            "pii_type": kind, "prompt": f"The {kind} of {s['name']} is", "output": output,
                            "truth": s[kind], "hit": hit, "rank": 1 if hit else rng.randint(2, 40)})
    return records


@dataclass(frozen=True)
class FixtureParams:
    num_candidates: int = 40


class ReportFixtureAttack(Attack):
    """A small extraction-style attack over stored records (no model needed to summarize)."""

    name = ATTACK_NAME
    Params = FixtureParams
    metrics = metric_specs(
        MetricSpec("exact_match_rate", "proportion", "higher_is_worse", "probe", "share of probes that leaked"),
        MetricSpec("top1_rate", "proportion", "higher_is_worse", "probe", "true value ranked first"),
        MetricSpec("never_measured_rate", "proportion", "higher_is_worse", "probe", "always n = 0"),
    )
    pii_record_fields = frozenset({"truth", "subject_name"})

    def run(self, target: Any, ctx: RunContext) -> AttackResult:  # pragma: no cover - runs are pre-recorded
        raise NotImplementedError

    def summarize(self, target_name: str, records: pd.DataFrame) -> AttackResult:
        hits = int(records["hit"].sum())
        metrics = {"exact_match_rate": proportion(hits, len(records)),
                   "top1_rate": proportion(int((records["rank"] == 1).sum()), len(records)),
                   "never_measured_rate": proportion(0, 0)}
        per_type, labels, values, lows, highs = [], [], [], [], []
        for kind, grp in records.groupby("pii_type", sort=True):
            est = proportion(int(grp["hit"].sum()), len(grp))
            per_type.append({"pii_type": kind, "exact_match": est.to_dict(), "n": len(grp)})
            labels.append(kind); values.append(est.value); lows.append(est.low); highs.append(est.high)
        per_subject = []
        for subject, grp in records.groupby("subject", sort=True):
            leaked = grp[grp["hit"]]
            per_subject.append({"subject": subject, "name": grp["subject_name"].iloc[0],
                                "leaked_types": ", ".join(leaked["pii_type"]) or "nothing",
                                "leaked_values": ", ".join(leaked["truth"]),
                                "example_output": grp["output"].iloc[0]})
        mean = sum(values) / len(values)
        charts = {
            "rates": {"kind": "bars", "title": "Exact-match rate by PII type", "labels": labels, "values": values,
                      "low": lows, "high": highs, "x_label": "exact-match rate"},
            "ranks": {"kind": "rank_histogram", "title": "Rank of the true value", "ranks": records["rank"].astype(int).tolist(),
                      "num_candidates": self.params.num_candidates},
            "gap": {"kind": "gap", "title": "Gap from the mean by PII type", "labels": labels,
                    "values": [v - mean for v in values]},
            "tradeoff": {"kind": "scatter", "title": "Privacy vs utility", "points": [
                {"label": "no defense", "x": values[0], "y": 12.5, "x_label": "extraction rate", "y_label": "perplexity"},
                {"label": "dp-sgd eps=8", "x": values[0] / 4, "y": 15.0, "x_low": 0.0, "x_high": 0.2}]},
            "roc": {"kind": "roc", "title": "Membership ROC", "fpr": [0, 0.1, 0.4, 1.0], "tpr": [0, 0.3, 0.7, 1.0]},
            "mystery": {"kind": "sankey", "title": "An unknown kind", "flows": [1, 2, 3]},
        }
        return AttackResult(
            attack=self.name, target=target_name, records=records, metrics=metrics,
            tables={"by_pii_type": per_type, "per_subject": per_subject, "outputs": records[["item", "output"]].to_dict("records")},
            charts=charts, assumptions=["knows each subject's name", "black-box generation access"],
            provenance={"num_candidates": self.params.num_candidates},
        )


def registered_fixture_attack() -> Iterator[type[Attack]]:
    """Register the fixture attack for one test and remove it afterwards (no registry leaks)."""
    register_attack(ReportFixtureAttack)
    try:
        yield ReportFixtureAttack
    finally:
        ATTACKS.remove(ATTACK_NAME)


def write_run(run_dir: Path, subjects: list[dict[str, str]], targets: tuple[str, ...] = ("tiny-a", "tiny-b"),
              thresholds: dict[str, Any] | None = None, show_pii: bool = False, **record_kw: Any) -> list[AttackResult]:
    """A complete run folder: records via RunStore, manifest like run_audit's, then every report."""
    from privaudit.reports import write_reports

    attack = ReportFixtureAttack(FixtureParams())
    results = []
    with RunStore(run_dir) as store:
        store.update_manifest(config={"targets": list(targets), "attacks": {ATTACK_NAME: {"num_candidates": 40}}, "seed": 3},
                              config_hash="abc123", seed=3, status="running", started="2026-01-01T00:00:00Z")
        ctx = RunContext(store=store, seed=3)
        for t_i, target in enumerate(targets):
            for rec in make_records(subjects, seed=t_i, **record_kw):
                ctx.save(ATTACK_NAME, target, rec.pop("item"), rec)
            store.update_manifest(targets={**store.read_manifest().get("targets", {}), target: f"sha256:{t_i}f00d"})
            results.append(attack.summarize(target, ctx.records(ATTACK_NAME, target)))
        manifest = store.update_manifest(status="complete", finished="2026-01-01T00:05:00Z")
    write_reports(run_dir, results, manifest, show_pii=show_pii, thresholds=thresholds)
    return results
