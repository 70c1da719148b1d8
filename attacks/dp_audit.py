"""`dp_audit` as an attack of an audit spec: the one-run DP audit of a model trained with canaries.

The same scoring and bound as `privaudit dp-audit --target --canaries` (privaudit/dpaudit), inside
the ordinary run folder: one resumable record per canary (its scores and coin), metrics
`dp_audit.empirical_epsilon_lower` and `dp_audit.claim_violated` for the gate
(`"dp_audit.claim_violated" = "== false"` fails a pipeline whose claim the canaries refute).
Steinke, Nasr and Jagielski, "Privacy Auditing with One (1) Training Run", NeurIPS 2023.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from privaudit.attacks.base import Attack, AttackResult, RunContext, register_attack
from privaudit.dpaudit.audit import SIGNALS, canary_scores, check_tokenizable, summarize_audit
from privaudit.dpaudit.canaries import AuditCanary, load_canaries
from privaudit.errors import InputError
from privaudit.metrics import MetricSpec, MetricSpecs, metric_specs, point_value
from privaudit.targets.base import TOKEN_LOGPROBS, Target, require


@dataclass(frozen=True)
class DPAuditParams:
    """The `[attacks.dp_audit]` table. `claimed_epsilon < 0` means no DP claim (claim_violated is 0)."""

    canaries: str  # the auditor's canary file (`privaudit data canaries`), with the coins
    claimed_epsilon: float = -1.0
    delta: float = 1e-5
    reference: str = ""  # a model that never saw the canaries (the public base): enables the reference ratio
    beta: float = 0.05
    signals: tuple[str, ...] = ()  # () = every signal scored (each paid for in the Bonferroni grid)

    def __post_init__(self) -> None:
        if not self.canaries:
            raise InputError("canaries: a canary file is required (privaudit data canaries)")
        if not 0 < self.delta < 1:
            raise InputError(f"delta: must be in (0, 1), got {self.delta}")
        if not 0 < self.beta < 0.5:
            raise InputError(f"beta: must be in (0, 0.5), got {self.beta}")
        unknown = [s for s in self.signals if s not in SIGNALS]
        if unknown:
            raise InputError(f"signals: unknown signal '{unknown[0]}' (known: {', '.join(SIGNALS)})")


def _specs() -> MetricSpecs:
    return metric_specs(
        MetricSpec("empirical_epsilon_lower", "point", "higher_is_worse", "canary",
                   "epsilon lower bound at 1 - beta from canaries in one run (Steinke et al. 2023); "
                   "a lower bound: small is no proof of privacy"),
        MetricSpec("claim_violated", "point", "higher_is_worse", "canary",
                   "1 when the lower bound exceeds the claimed epsilon (the DP claim is refuted), else 0"),
    )


@register_attack
class DPAudit(Attack):
    """Score canaries with the membership signals; bound epsilon from below; hold it against the claim."""

    name = "dp_audit"
    Params = DPAuditParams
    metrics: ClassVar[MetricSpecs] = _specs()
    requires = frozenset({TOKEN_LOGPROBS})
    data_file_params = ("canaries",)
    target_params = ("reference",)
    params: DPAuditParams

    def run(self, target: Target, ctx: RunContext) -> AttackResult:
        canaries = load_canaries(self.params.canaries)
        items = [(c.id, c) for c in canaries]
        check_tokenizable(target, canaries, self.params.canaries)
        reference = None
        if self.params.reference and ctx.pending(self.name, target.name, items):
            reference = ctx.load_target(self.params.reference)
            require(reference, TOKEN_LOGPROBS, f"{self.name} (reference)")

        def call(batch: list[AuditCanary]) -> list[dict[str, float]]:
            return canary_scores(target, reference, batch, ctx.batch_size)

        def record(c: AuditCanary, scores: dict[str, float]) -> dict[str, Any]:
            return {"canary_id": c.id, "unit": c.unit, "included": c.included, "scores": scores}

        try:
            ctx.probe(self.name, target.name, items, call=call, record=record, label="dp audit: scoring canaries")
        finally:
            if reference is not None:
                reference.close()
        return self.summarize(target.name, ctx.records(self.name, target.name))

    def summarize(self, target_name: str, records: pd.DataFrame) -> AttackResult:
        rows = records.to_dict("records") if len(records) else []
        if not rows:
            raise InputError(f"{self.params.canaries}: no canary was scored")
        p = self.params
        claimed = p.claimed_epsilon if p.claimed_epsilon >= 0 else None
        result = summarize_audit([r["scores"] for r in rows], [bool(r["included"]) for r in rows],
                                 unit=str(rows[0]["unit"]), claimed_epsilon=claimed, delta=p.delta, beta=p.beta,
                                 signals=p.signals or None)
        metrics = {"empirical_epsilon_lower": point_value(result["empirical_epsilon_lower"], "steinke2023_one_run"),
                   "claim_violated": point_value(1.0 if result["claim_violated"] else 0.0, "steinke2023_one_run")}
        return AttackResult(
            attack=self.name, target=target_name, records=records, metrics=metrics,
            tables={"dp_audit": [{k: v for k, v in result.items() if not isinstance(v, (dict, list))}]},
            assumptions=["the canaries' coins were fair and independent, and nothing but the coins decided "
                         "which canaries were trained on (Steinke et al. 2023, Sec. 3)",
                         "a lower bound: a small value does not show the model is private"],
            provenance={"method": result["method"], "selection": result["selection"]},
        )
