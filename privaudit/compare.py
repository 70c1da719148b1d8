"""The privacy-utility comparison: every defended variant of one base and one corpus, the same attacks.

`run_comparison(spec)` builds (or reuses, when its folder is complete) each variant named in the
spec through `privaudit.defenses.variants` (the same path `privaudit defend` takes, every defense
table validated before anything trains), runs the same attacks on every variant through the ordinary
audit runner (one resumable run folder), and puts leakage next to cost: extraction and likelihood
rates with their intervals, epsilon for DP variants, held-out perplexity (utility) and training
time. A privacy gain is never shown without its utility cost.

Outputs in the run folder: `comparison.csv` / `comparison.json` (one row per variant), and a
pseudo-result `compare` (target `defenses`) added to summary.json / report.html whose charts are
`scatter` points (x = held-out perplexity, y = leakage rate with its interval) as reports/SCHEMA.md
describes. An attack declaring `compare_baseline_param` (reconstruct) gets compare's base model as
that parameter, so each variant's rate comes with the base model's on the same probes. Defenses and attacks are found by name only (registries), so plugins such as the
federated defense or the membership attack join the comparison when installed.

Every metric is keyed by variant name: each audit result is matched to its variant through the
target spec the runner recorded in its provenance (never by its position in the result list, which
shifts when an attack table has `targets`). The `compare` pseudo-result declares its metrics
(`compare_metric_specs`), so `compare.epsilon.dp_sgd <= 8` is checked when compare.toml loads and
gated on its value: epsilon, perplexity and training time are `point` values (n = 0, method
`accountant` or `point`), higher is worse for each (more privacy loss, less utility, more cost).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from privaudit.attacks.base import AttackResult, available_attacks, get_attack
from privaudit.config import dataclass_from_mapping, load_toml
from privaudit.defenses.registry import DefendedModel, base_path
from privaudit.defenses.variants import (  # noqa: F401  (VARIANT_FILE, build_variant: importable here as before)
    VARIANT_FILE, Variant, build_all, build_variant, configure_variants, load_context,
)
from privaudit.errors import InputError
from privaudit.metrics import Estimate, MetricSpec, MetricSpecs, metric_specs, point_value
from privaudit.progress import ProgressReporter

COMPARE_ATTACK = "compare"
COMPARE_TARGET = "defenses"
VARIANTS_DIR = "variants"
TABLE_CSV = "comparison.csv"
TABLE_JSON = "comparison.json"
# Leakage metrics drawn against utility when an attack reports them (attack, metric, axis label).
LEAKAGE_METRICS: tuple[tuple[str, str, str], ...] = (
    ("pii", "exact_match_rate", "PII exact-match extraction rate"),
    ("pii", "likelihood_top1_rate", "PII likelihood top-1 rate (ProPILE)"),
    ("membership", "auc", "membership inference AUC"),
    ("membership", "tpr_at_1pct_fpr", "membership TPR at 1% FPR"),
    ("dp_audit", "empirical_epsilon_lower", "empirical epsilon lower bound (one-run canary audit)"),
    # RAG variants (defense `rag`): what the context-extraction attack makes the generator repeat
    ("context", "verbatim_leak_rate", "context extraction: requests repeating a retrieved passage verbatim"),
    ("context", "pii_revealed_rate", "context extraction: (subject, PII field) pairs revealed"),
    ("context", "cross_user_subject_rate", "context extraction: subjects whose PII another user's request revealed"),
    ("reconstruct", "inference_top1_rate", "masked-sentence PII inference top-1 rate (Lukas et al.)"),
    ("reconstruct", "reconstruction_top1_rate", "masked-sentence PII reconstruction top-1 rate (Lukas et al.)"),
)
# The contract of a leakage metric when its attack declares none (kind, unit): the source attack's
# own declaration wins (compare copies it), this only keeps compare usable without that attack.
_LEAKAGE_FALLBACK: dict[tuple[str, str], tuple[str, str]] = {
    ("pii", "exact_match_rate"): ("proportion", "probe"),
    ("pii", "likelihood_top1_rate"): ("proportion", "probe"),
    ("membership", "auc"): ("mean", "document"),
    ("membership", "tpr_at_1pct_fpr"): ("proportion", "document"),
    ("dp_audit", "empirical_epsilon_lower"): ("point", "canary"),
    ("context", "verbatim_leak_rate"): ("proportion", "probe"),
    ("context", "pii_revealed_rate"): ("proportion", "subject_field"),
    ("context", "cross_user_subject_rate"): ("proportion", "subject"),
    ("reconstruct", "inference_top1_rate"): ("proportion", "sentence"),
    ("reconstruct", "reconstruction_top1_rate"): ("proportion", "sentence"),
}
# The comparison's headline (MetricSpec.headline): per variant, verbatim leakage and its utility cost.
HEADLINE_LEAKAGE = frozenset({("pii", "exact_match_rate")})
HEADLINE_UTILITY = "heldout_perplexity"
# Values without sampling error, one per variant: (metric, method, what it is).
COST_METRICS: tuple[tuple[str, str, str], ...] = (
    ("epsilon", "accountant", "DP epsilon spent by the accountant (higher = more privacy loss)"),
    ("heldout_perplexity", "point", "token perplexity on held-out documents (higher = less utility)"),
    ("training_seconds", "point", "wall-clock seconds the defense's training took (higher = more cost)"),
)
DEFAULT_DEFENSES: dict[str, dict[str, Any]] = {"none": {}, "scrub": {}, "dp_sgd": {"target_epsilon": 8.0}}


@dataclass(frozen=True)
class CompareSpec:
    """What to compare. `defenses` maps a variant name to its defense's table; the table may name
    the defense with `defense = "dp_sgd"` (default: the variant name), so one defense can appear
    at several settings (e.g. `dp_eps1`, `dp_eps8`). `attacks` as in an audit spec; when empty,
    pii with likelihood, plus membership when that attack is installed."""

    base: str
    corpus: Path
    subjects: Path
    out: Path = Path("privaudit-runs/compare")
    defenses: dict[str, dict[str, Any]] = field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_DEFENSES.items()})
    attacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0
    batch_size: int = 16
    cache: bool = True
    show_pii: bool = False
    # Gate thresholds, as in an audit spec: `"compare.epsilon.dp_sgd" = "<= 8"`, `"pii.exact_match_rate" = ...`.
    thresholds: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.defenses:
            raise InputError("defenses: at least one defense variant is required")
        base_path(self.base)  # validates the spec form


@dataclass(frozen=True)
class Comparison:
    """The comparison's outcome: the table, each variant's record, and the audit's results."""

    table: pd.DataFrame
    variants: dict[str, DefendedModel]
    results: list[AttackResult]
    summary_result: AttackResult
    out: Path


def load_compare_spec(path: Path, **overrides: Any) -> CompareSpec:
    """Read compare.toml; keyword overrides (CLI flags) win when not None. Relative paths resolve
    against the TOML file's folder."""
    raw = dict(load_toml(path))
    for key in ("corpus", "subjects", "out"):
        if isinstance(raw.get(key), str) and not Path(raw[key]).is_absolute():
            raw[key] = str(Path(path).parent / raw[key])
    spec = dataclass_from_mapping(CompareSpec, raw, str(path))
    clean = {k: v for k, v in overrides.items() if v is not None}
    spec = dataclasses.replace(spec, **clean) if clean else spec
    check_compare_spec(spec, str(path))
    return spec


def check_compare_spec(spec: CompareSpec, source: str) -> dict[str, Variant]:
    """Every defense table, every attack's parameters, its `targets` (variant names) and every
    threshold, before any folder is created or a variant trains: a typo fails in a second with a
    one-line error. Returns the configured variants (each defense's params validated here, once)."""
    from privaudit.audit import check_target_specs

    configured = configure_variants(spec.defenses, seed=spec.seed, where=f"{source}: defenses")
    variants = list(spec.defenses)
    declared: dict[str, tuple[MetricSpecs, Sequence[str]]] = {}
    for name, params in default_attacks(spec).items():
        where = f"{source}: attacks.{name}"
        attack = get_attack(name).from_config({k: v for k, v in params.items() if k != "targets"}, where)
        only = params.get("targets", variants)
        if not isinstance(only, list) or not all(isinstance(t, str) for t in only):
            raise InputError(f"{where}.targets: expected a list of variant names")
        unknown = [t for t in only if t not in variants]
        if unknown:
            raise InputError(f"{where}.targets: '{unknown[0]}' is not a compared variant (variants: {', '.join(variants)})")
        for param, nested in attack.nested_targets().items():
            check_target_specs([nested], where=f"{where}.{param}")
        declared[name] = (type(attack).metrics, only)
    declared[COMPARE_ATTACK] = (compare_metric_specs(variants), [COMPARE_TARGET])
    if spec.thresholds:
        from privaudit.gate import check_thresholds

        check_thresholds(spec.thresholds, declared, where=f"{source}: thresholds")
    return configured


def default_attacks(spec: CompareSpec) -> dict[str, dict[str, Any]]:
    """pii with likelihood, and membership when installed; data paths filled where a Params asks."""
    attacks = {k: dict(v) for k, v in spec.attacks.items()}
    if not attacks:
        attacks["pii"] = {"likelihood": True}
        if "membership" in available_attacks():
            attacks["membership"] = {}
    for name, params in attacks.items():
        fields = {f.name for f in dataclasses.fields(get_attack(name).Params)}
        if "subjects" in fields:
            params.setdefault("subjects", str(Path(spec.subjects).resolve()))
        if "corpus" in fields:
            params.setdefault("corpus", str(Path(spec.corpus).resolve()))
        # An attack that judges every variant against the base model (reconstruct) gets compare's base.
        baseline = getattr(get_attack(name), "compare_baseline_param", None)
        if baseline in fields:
            params.setdefault(baseline, f"hf:{base_path(spec.base).resolve()}")
    return attacks


def build_variants(spec: CompareSpec, progress: ProgressReporter,
                   variants: Mapping[str, Variant] | None = None) -> dict[str, DefendedModel]:
    """Every variant under `out/variants/NAME` through the one path `privaudit defend` takes too."""
    if variants is None:
        variants = configure_variants(spec.defenses, seed=spec.seed, where="defenses")
    ctx = load_context(spec.base, spec.corpus, spec.subjects, Path(spec.out), seed=spec.seed, progress=progress)
    return build_all(variants, ctx, Path(spec.out) / VARIANTS_DIR)


def _source_spec(attack: str, metric: str) -> MetricSpec | None:
    """The leakage metric's contract as its own attack declares it (None: not installed or undeclared)."""
    try:
        return get_attack(attack).metrics.find(metric)
    except InputError:
        return None


def compare_metric_specs(variants: Sequence[str] | None = None) -> MetricSpecs:
    """The metrics of the `compare` pseudo-result, one per variant (`METRIC.VARIANT`).

    With `variants`, every name is spelled out (so a misspelt variant in a threshold fails when the
    spec loads); without, `{variant}` stands for any. A leakage metric copies its attack's contract.
    """
    names = list(variants) if variants is not None else ["{variant}"]
    specs: list[MetricSpec] = []
    for attack, metric, label in LEAKAGE_METRICS:
        src = _source_spec(attack, metric)
        kind, unit = (src.kind, src.unit) if src else _LEAKAGE_FALLBACK[(attack, metric)]
        direction = src.direction if src else "higher_is_worse"
        cluster = src.cluster if src else None
        specs += [MetricSpec(f"{attack}.{metric}.{v}", kind, direction, unit, f"{label} of the variant", cluster=cluster,
                             headline=(attack, metric) in HEADLINE_LEAKAGE) for v in names]
    for metric, _, what in COST_METRICS:
        specs += [MetricSpec(f"{metric}.{v}", "point", "higher_is_worse", "variant", what,
                             headline=metric == HEADLINE_UTILITY) for v in names]
    return metric_specs(*specs)


def results_by_variant(variants: Mapping[str, DefendedModel], results: Sequence[AttackResult]
                       ) -> dict[str, dict[str, AttackResult]]:
    """Each variant's results by attack name, matched through the target spec the runner recorded
    (`provenance["target_spec"]`), so an attack that ran on only some variants shifts nothing."""
    by_spec: dict[str, dict[str, AttackResult]] = {}
    for result in results:
        target_spec = result.provenance.get("target_spec")
        if not isinstance(target_spec, str):
            raise ValueError(f"result of attack '{result.attack}' on '{result.target}' does not record its target spec")
        by_spec.setdefault(target_spec, {})[result.attack] = result
    return {v: dict(by_spec.get(rec.target_spec, {})) for v, rec in variants.items()}


def comparison_rows(variants: Mapping[str, DefendedModel], results: Mapping[str, Mapping[str, AttackResult]]) -> list[dict[str, Any]]:
    """One row per variant: leakage (every scalar metric of every attack, with interval), privacy
    guarantee, utility and cost. Pure: records in, rows out."""
    rows = []
    for variant, record in variants.items():
        row: dict[str, Any] = {"variant": variant, "defense": record.name, "target": record.target_spec}
        for attack, result in results.get(variant, {}).items():
            for metric, est in result.metrics.items():
                if "." in metric:  # per-type breakdowns stay in the attack's own result
                    continue
                row[f"{attack}.{metric}"] = est.value
                row[f"{attack}.{metric}.low"] = est.low
                row[f"{attack}.{metric}.high"] = est.high
                row[f"{attack}.{metric}.n"] = est.n
        p, t, s = record.privacy, record.training, record.scrub
        row.update({
            "epsilon": p.epsilon if p else None, **_audited_claim(row, p), "delta": p.delta if p else None,
            "noise_multiplier": p.noise_multiplier if p else None, "max_grad_norm": p.max_grad_norm if p else None,
            "sample_rate": p.sample_rate if p else None, "dp_steps": p.steps if p else None,
            "privacy_unit": p.privacy_unit if p else None,
            "heldout_perplexity": t.heldout_perplexity if t else None,
            "base_heldout_perplexity": t.base_heldout_perplexity if t else None,
            "train_seconds": t.seconds if t else None, "train_steps": t.steps if t else None,
            "training_mode": t.mode if t else None,
            "scrub_spans_removed": sum(s.removed.values()) if s else None,
            "scrub_known_values_surviving": s.known_values_surviving if s else None,
            "scrub_known_values_total": s.known_values_total if s else None,
        })
        rows.append(row)
    return rows


def _audited_claim(row: Mapping[str, Any], privacy: Any) -> dict[str, Any]:
    """The one-run audit's lower bound beside the accountant's epsilon (variants run with canaries:
    the `dp_audit` attack), and whether it refutes that variant's own claim."""
    lower = row.get("dp_audit.empirical_epsilon_lower")
    if lower is None:
        return {}
    return {"empirical_epsilon_lower": lower,
            "claim_violated": bool(privacy is not None and lower > privacy.epsilon)}


def tradeoff_charts(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`scatter` charts (reports/SCHEMA.md): x = held-out perplexity (utility cost), y = leakage."""
    charts: dict[str, Any] = {}
    for attack, metric, label in LEAKAGE_METRICS:
        key = f"{attack}.{metric}"
        points = []
        for row in rows:
            x, y = row.get("heldout_perplexity"), row.get(key)
            if not _finite(x) or not _finite(y):
                continue
            eps = row.get("epsilon")
            name = row["variant"] + (f" (eps={eps:.2g})" if _finite(eps) else "")
            points.append({"label": name, "x": float(x), "y": float(y),
                           "y_low": _num(row.get(f"{key}.low")), "y_high": _num(row.get(f"{key}.high"))})
        if points:
            charts[f"tradeoff_{attack}_{metric}"] = {
                "kind": "scatter", "title": f"Privacy vs utility: {label}",
                "x_label": "held-out perplexity (lower = more utility)", "y_label": label, "points": points}
    return charts


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _num(x: Any) -> float | None:
    return float(x) if _finite(x) else None


def summary_result(rows: Sequence[Mapping[str, Any]], table: pd.DataFrame,
                   per_variant: Mapping[str, Mapping[str, AttackResult]] | None = None) -> AttackResult:
    """The comparison as an AttackResult-shaped entry (attack `compare`, target `defenses`).

    Metrics are `METRIC.VARIANT` (e.g. `compare.pii.likelihood_top1_rate.dp_sgd` in a gate) so a CI
    gate can hold a defended variant to a threshold. A leakage metric is the variant's own estimate
    (its interval method and clusters kept) from `per_variant`, else rebuilt from the row; epsilon,
    perplexity and training time are `point` values (n = 0, gateable on the value; method names the
    source). The declared contract is `compare_metric_specs` of these variants.
    """
    metrics: dict[str, Estimate] = {}
    per_variant = per_variant or {}
    for row in rows:
        v = row["variant"]
        for attack, metric, _ in LEAKAGE_METRICS:
            key = f"{attack}.{metric}"
            source = per_variant.get(v, {}).get(attack)
            if source is not None and metric in source.metrics and _finite(source.metrics[metric].value):
                metrics[f"{key}.{v}"] = source.metrics[metric]
            elif _finite(row.get(key)):
                metrics[f"{key}.{v}"] = Estimate(float(row[key]), float(row[f"{key}.low"]), float(row[f"{key}.high"]),
                                                 int(row[f"{key}.n"]), str(row.get(f"{key}.method") or "wilson"))
        for metric, method, _ in COST_METRICS:
            column = "train_seconds" if metric == "training_seconds" else metric
            if _finite(row.get(column)):
                metrics[f"{metric}.{v}"] = point_value(float(row[column]), method)
    shown = [{k: (None if isinstance(val, float) and not math.isfinite(val) else val) for k, val in r.items()
              if not k.endswith((".low", ".high", ".n")) and k != "target"} for r in rows]
    return AttackResult(
        attack=COMPARE_ATTACK, target=COMPARE_TARGET, records=table, metrics=metrics,
        tables={"variants": shown}, charts=tradeoff_charts(rows),
        assumptions=["every variant starts from the same base model and the same training corpus",
                     "the same attacks with the same parameters and seed run on every variant",
                     "utility = token perplexity on held-out documents never trained on",
                     *(["rag variants: utility is each training subject's own last document, held out of the "
                        "store and scored given what is retrieved for it (fine-tuned variants: the held-out "
                        "subjects' documents); base_heldout_perplexity is the same documents without retrieval"]
                       if any(r.get("training_mode") == "rag" for r in rows) else [])],
        provenance={"variants": [r["variant"] for r in rows]},
        specs=compare_metric_specs([r["variant"] for r in rows]),
    )


def run_comparison(spec: CompareSpec, progress: ProgressReporter | None = None, source: str = "compare") -> Comparison:
    """Build or reuse every variant, run the same attacks on each, write the table and reports."""
    from privaudit.audit import AuditSpec, run_audit
    from privaudit.reports import write_reports

    progress = progress or ProgressReporter(quiet=True)
    configured = check_compare_spec(spec, source)  # validate before any folder or training
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    attacks = default_attacks(spec)
    variants = build_variants(spec, progress, configured)
    for params in attacks.values():  # an attack's `targets` names variants; the audit runs target specs
        if "targets" in params:
            params["targets"] = list(dict.fromkeys(variants[v].target_spec for v in params["targets"]))
    specs = list(dict.fromkeys(v.target_spec for v in variants.values()))
    audit = AuditSpec(targets=specs, attacks=attacks, out=out, seed=spec.seed, batch_size=spec.batch_size,
                      cache=spec.cache, show_pii=spec.show_pii)
    made: dict[str, Any] = {}

    def write_outputs(results: list[AttackResult], manifest: Mapping[str, Any]) -> None:
        """The table, then every report with the compare pseudo-result: before the run is `complete`."""
        per_variant = results_by_variant(variants, results)
        rows = comparison_rows(variants, per_variant)
        table = pd.DataFrame(rows)
        table.to_csv(out / TABLE_CSV, index=False)
        (out / TABLE_JSON).write_text(table.to_json(orient="records", indent=2), encoding="utf-8")
        summary = summary_result(rows, table, per_variant)
        write_reports(out, [*results, summary], manifest, show_pii=spec.show_pii,
                      thresholds=spec.thresholds or None)
        made.update(table=table, summary=summary)

    results = run_audit(audit, progress=progress, source=source, outputs=write_outputs)
    table, summary = made["table"], made["summary"]
    return Comparison(table=table, variants=variants, results=results, summary_result=summary, out=out)
