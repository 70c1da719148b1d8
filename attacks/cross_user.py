"""Cross-user leakage matrix: every user's model probed for every user's subjects' PII.

Registered as attack "cross_user" (CLI `privaudit attack cross-user`). One adapter per user
(PEFT-U), the per-client models of federated personalization (`privaudit defend federated`), or a
RAG deployment answering as each user: the privacy question is whether user A's model carries
user B's PII. On a target with the `user_context` capability (`peruser:`, `rag:`, `profile:`),
the ProPILE probes (`pii_probes`, Kim et al. 2023 Sec. 3.1) of the subjects of every data user
(columns) go to the model of every model user (rows); a cell is the exact-match rate of the
(subject, PII field) pairs of its column's subjects on its row's model.

- diagonal: own data on own model; off-diagonal: another user's data;
- `worst_off_diagonal_rate`: the largest off-diagonal cell, with its interval (clustered by subject);
- `diagonal_minus_off_diagonal`: per (subject, field), the own-model hit minus the mean hit over the
  other users' models, paired and cluster-robust by subject (`metrics.paired_difference`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from privaudit.attacks.base import Attack, AttackResult, RunContext, register_attack
from privaudit.attacks.pii_probes import build_probes, load_templates
from privaudit.attacks.pii_probing import run_extraction
from privaudit.attacks.context_extraction import _unwrapped
from privaudit.data.subjects import load_subjects
from privaudit.errors import InputError
from privaudit.metrics import (
    Estimate, MetricSpec, MetricSpecs, clustered_proportion, count_value, metric_specs, paired_difference,
)
from privaudit.targets.base import GENERATE, USER_CONTEXT, GenerationConfig, Target
from privaudit.targets.wrappers import for_user

CROSS_USER_METRICS: MetricSpecs = metric_specs(
    MetricSpec("diagonal_rate", "proportion", "higher_is_worse", "subject_field",
               "exact-match rate of users' subjects on their own user's model", cluster="subject"),
    MetricSpec("off_diagonal_rate", "proportion", "higher_is_worse", "subject_field",
               "exact-match rate of users' subjects on other users' models (one unit per model and pair)",
               cluster="subject"),
    MetricSpec("worst_off_diagonal_rate", "proportion", "higher_is_worse", "subject_field",
               "the largest off-diagonal cell of the matrix, with that cell's interval", cluster="subject"),
    MetricSpec("diagonal_minus_off_diagonal", "difference", "two_sided", "subject_field",
               "own-model hit minus the mean hit on the other users' models, paired per (subject, field)",
               cluster="subject"),
    MetricSpec("leaking_off_diagonal_cells", "count", "higher_is_worse", "cell",
               "number of off-diagonal cells with at least one exact hit"),
)


@dataclass(frozen=True)
class CrossUserParams:
    """Parameters (`[attacks.cross_user]`; CLI `privaudit attack cross-user`)."""

    subjects: str  # data subjects JSONL (holds every user's subjects)
    users: tuple[str, ...] = ()  # restrict to these users; empty = every user of the target
    max_subjects_per_user: int = 0  # 0 = all of each user's subjects
    pii_types: tuple[str, ...] = ()
    levels: tuple[int, ...] = (1,)  # twin prompts (name only) by default: the cross-user question
    template_ids: tuple[str, ...] = ()
    templates_file: str = ""
    max_new_tokens: int = 32

    def __post_init__(self) -> None:
        if not self.subjects:
            raise InputError("subjects: a data-subjects JSONL file is required")
        if self.max_new_tokens < 1 or self.max_subjects_per_user < 0:
            raise InputError("max_new_tokens must be >= 1 and max_subjects_per_user >= 0")
        bad = [lv for lv in self.levels if lv not in (1, 2, 3)]
        if bad:
            raise InputError(f"levels: association levels are 1, 2, 3; got {bad[0]}")


@register_attack
class CrossUser(Attack):
    """The N x N matrix of PII leak rates: rows = whose model, columns = whose subjects."""

    name = "cross_user"
    Params = CrossUserParams
    metrics: ClassVar[MetricSpecs] = CROSS_USER_METRICS
    requires = frozenset({GENERATE, USER_CONTEXT})
    pii_record_fields = frozenset({"truth", "known"})
    data_file_params = ("subjects", "templates_file")

    params: CrossUserParams

    def cohort(self, target: Target) -> dict[str, list[str]]:
        """User -> their subjects (present in the subjects file), at least 2 users with subjects."""
        p = self.params
        known = {s.id for s in load_subjects(p.subjects)}
        users = _unwrapped(target).users()
        unknown = sorted(set(p.users) - set(users))
        if unknown:
            raise InputError(f"users: target '{target.name}' has no user '{unknown[0]}' (users: {', '.join(users)})")
        chosen = {u: [s for s in subs if s in known] for u, subs in users.items() if not p.users or u in p.users}
        chosen = {u: (s[: p.max_subjects_per_user] if p.max_subjects_per_user else s) for u, s in chosen.items() if s}
        if len(chosen) < 2:
            raise InputError(f"{p.subjects}: a cross-user matrix needs at least 2 users whose subjects are in the "
                             f"file (found {len(chosen)})")
        return chosen

    def run(self, target: Target, ctx: RunContext) -> AttackResult:
        p = self.params
        cohort = self.cohort(target)
        subjects = {s.id: s for s in load_subjects(p.subjects)}
        templates = load_templates(p.templates_file or None)
        cfg = GenerationConfig(max_new_tokens=p.max_new_tokens, seed=ctx.seed)
        probes = {u: build_probes([subjects[s] for s in subs], templates, pii_types=p.pii_types, levels=p.levels,
                                  template_ids=p.template_ids) for u, subs in cohort.items()}
        for model_user in cohort:  # rows outer: each user's model loads once
            view = None
            for data_user, cell in probes.items():
                kind = f"cell:{model_user}:{data_user}"
                if not ctx.pending(self.name, target.name, ((f"{kind}|{pr.key}", pr) for pr in cell)):
                    continue  # resumed: nothing left for this cell (and the model need not load)
                view = view or for_user(target, model_user)
                run_extraction(view, cell, cfg, ctx, self.name, target.name, kind,
                               extra={"model_user": model_user, "data_user": data_user})
        return self.summarize(target.name, ctx.records(self.name, target.name))

    def summarize(self, target_name: str, records: pd.DataFrame) -> AttackResult:
        return summarize_matrix(self.name, target_name, records, self.params)


def summarize_matrix(attack: str, target_name: str, records: pd.DataFrame, params: CrossUserParams) -> AttackResult:
    """The matrix, its diagonal / off-diagonal rates, the worst cell and the paired difference."""
    metrics: dict[str, Estimate] = {}
    if records.empty or "model_user" not in records.columns:
        return AttackResult(attack, target_name, records, metrics)
    units = (records.assign(exact=records["exact"].astype(bool))
             .groupby(["model_user", "data_user", "subject_id", "pii_type"], sort=True)["exact"].any().reset_index())
    users = list(dict.fromkeys([*units["model_user"], *units["data_user"]]))
    diag = units[units["model_user"] == units["data_user"]]
    off = units[units["model_user"] != units["data_user"]]
    metrics["diagonal_rate"] = clustered_proportion(list(diag["exact"]), list(diag["subject_id"]))
    metrics["off_diagonal_rate"] = clustered_proportion(list(off["exact"]), list(off["subject_id"]))
    cells: dict[tuple[str, str], Estimate] = {
        (m, d): clustered_proportion(list(part["exact"]), list(part["subject_id"]))
        for (m, d), part in units.groupby(["model_user", "data_user"], sort=False)}
    off_cells = {k: v for k, v in cells.items() if k[0] != k[1]}
    if off_cells:
        worst_key = max(off_cells, key=lambda k: (off_cells[k].value, off_cells[k].high))
        metrics["worst_off_diagonal_rate"] = off_cells[worst_key]
        metrics["leaking_off_diagonal_cells"] = count_value(sum(v.value > 0 for v in off_cells.values()),
                                                            n=len(off_cells))
    else:
        worst_key = None
    own = diag.set_index(["subject_id", "pii_type"])["exact"].astype(float)
    others = off.groupby(["subject_id", "pii_type"])["exact"].mean()
    both = pd.concat([own.rename("own"), others.rename("other")], axis=1, join="inner").reset_index()
    metrics["diagonal_minus_off_diagonal"] = paired_difference(list(both["own"]), list(both["other"]),
                                                               clusters=list(both["subject_id"]))
    table = []
    for (m, d), est in cells.items():
        table.append({"model_user": m, "data_user": d, "diagonal": m == d, "pairs": est.n, "subjects": est.clusters,
                      "exact_match_rate": est.value, "low": est.low, "high": est.high})
    grid = [[cells[(m, d)].value if (m, d) in cells else None for d in users] for m in users]
    charts = {"cross_user_matrix": {
        "kind": "heatmap", "title": "Cross-user PII leakage (exact-match rate)", "rows": users, "columns": users,
        "values": grid, "x_label": "whose subjects were probed", "y_label": "whose model answered"}}
    assumptions = [
        "Each user's model is asked ProPILE prompts (attacker knows the subject's name"
        f"{'' if tuple(params.levels) == (1,) else ' and, at higher levels, other PII'}) about every user's "
        f"subjects; greedy, at most {params.max_new_tokens} tokens; exact match of the true value.",
        "Off-diagonal hits mean one user's model reproduces another user's planted PII (shared weights, a shared "
        "store, or an adapter trained on the wrong data).",
    ]
    provenance: dict[str, Any] = {"users": users, "worst_off_diagonal_cell": list(worst_key) if worst_key else None}
    return AttackResult(attack, target_name, records, metrics, tables={"matrix": table}, charts=charts,
                        assumptions=assumptions, provenance=provenance)
