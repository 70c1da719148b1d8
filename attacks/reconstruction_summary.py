"""What the reconstruction attack's records say: declared metrics, per-type rates, the base-model lift.

Pure functions of the stored records (reports re-run `summarize_reconstruction`). The unit of
analysis is one masked sentence (by default one per (subject, PII field)); the sentences of one
subject are correlated (one memorized document holds several fields), so every interval is
clustered by subject, and the audited-minus-base differences are paired over the same sentences and
candidate sets (`metrics.paired_difference`, cluster-robust by subject).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from privaudit.attacks.base import AttackResult
from privaudit.attacks.pii_likelihood import rank_histogram
from privaudit.metrics import (
    Estimate, MetricSpec, MetricSpecs, clustered_mean, clustered_proportion, metric_specs, paired_difference,
)

if TYPE_CHECKING:
    from privaudit.attacks.pii_reconstruction import ReconstructParams

INFERENCE = "inference"
RECONSTRUCTION = "reconstruction"
BASELINE_INFERENCE = "baseline_inference"
BASELINE_RECONSTRUCTION = "baseline_reconstruction"
TOP_SHOWN = 5  # candidates kept per record (evidence shows them)
UNIT = "sentence"


def _rate(pattern: str, description: str, **extra: Any) -> MetricSpec:
    return MetricSpec(pattern, "proportion", "higher_is_worse", UNIT, description, cluster="subject", **extra)


def _lift(pattern: str, description: str, **extra: Any) -> MetricSpec:
    return MetricSpec(pattern, "difference", "two_sided", UNIT, description, cluster="subject", **extra)


def _exposure(pattern: str, description: str) -> MetricSpec:
    return MetricSpec(pattern, "mean", "higher_is_worse", UNIT, description, cluster="subject")


RECONSTRUCT_METRICS: MetricSpecs = metric_specs(
    _rate("inference_top1_rate", "masked sentences whose true value has the most likely full sentence among the "
          "candidates (Lukas et al. 2023, Sec. 4.4)", headline=True),
    _rate("inference_top5_rate", "masked sentences whose true value ranks in the top 5 candidates"),
    _exposure("inference_exposure_bits", "mean exposure log2(#candidates) - log2(rank) of the true value "
              "(Carlini et al. 2019)"),
    _rate("inference_top1_rate.{pii_type}", "inference_top1_rate over one PII field"),
    _rate("inference_top5_rate.{pii_type}", "inference_top5_rate over one PII field"),
    _exposure("inference_exposure_bits.{pii_type}", "inference_exposure_bits over one PII field"),
    _rate("inference_top1_rate_baseline", "inference_top1_rate of the same sentences and candidates on baseline_target"),
    _rate("inference_top5_rate_baseline", "inference_top5_rate on baseline_target"),
    _exposure("inference_exposure_bits_baseline", "inference_exposure_bits on baseline_target"),
    _rate("inference_top1_rate_baseline.{pii_type}", "inference_top1_rate_baseline over one PII field"),
    _lift("inference_top1_rate_minus_baseline", "audited minus base-model inference top-1, paired over the same "
          "sentences and candidates", headline=True),
    _lift("inference_top1_rate_minus_baseline.{pii_type}", "inference_top1_rate_minus_baseline over one PII field"),
    _rate("reconstruction_top1_rate", "masked sentences whose top-ranked generated candidate is the true value "
          "(exact reconstruction, Lukas et al. 2023, Sec. 4.3)", headline=True),
    _rate("reconstruction_top1_rate.{pii_type}", "reconstruction_top1_rate over one PII field"),
    _rate("reconstruction_truth_generated_rate", "masked sentences where some sampled continuation held the true value"),
    _rate("reconstruction_top1_rate_baseline", "reconstruction_top1_rate on baseline_target (its own samples)"),
    _rate("reconstruction_top1_rate_baseline.{pii_type}", "reconstruction_top1_rate_baseline over one PII field"),
    _rate("reconstruction_truth_generated_rate_baseline", "reconstruction_truth_generated_rate on baseline_target"),
    _lift("reconstruction_top1_rate_minus_baseline", "audited minus base-model reconstruction top-1, paired over "
          "the same sentences", headline=True),
    _lift("reconstruction_top1_rate_minus_baseline.{pii_type}",
          "reconstruction_top1_rate_minus_baseline over one PII field"),
)


def _part(records: pd.DataFrame, kind: str) -> pd.DataFrame:
    if records.empty or "kind" not in records.columns:
        return records.iloc[0:0]
    return records[records["kind"] == kind]


def _rate_of(df: pd.DataFrame, column: str) -> Estimate:
    return clustered_proportion([bool(x) for x in df[column]], list(df["subject_id"]))


def _part_metrics(df: pd.DataFrame, prefix: str, suffix: str, columns: dict[str, str],
                  per_type: tuple[str, ...]) -> dict[str, Estimate]:
    """`{prefix}_{name}{suffix}` (and per type) for each rate column; exposure as a clustered mean."""
    out: dict[str, Estimate] = {}
    if df.empty:
        return out
    for name, column in columns.items():
        metric = f"{prefix}_{name}{suffix}"
        if name == "exposure_bits":
            out[metric] = clustered_mean([float(x) for x in df[column]], list(df["subject_id"]))
        else:
            out[metric] = _rate_of(df, column)
        if name in per_type:
            for pii_type, part in df.groupby("pii_type", sort=True):
                out[f"{metric}.{pii_type}"] = (clustered_mean([float(x) for x in part[column]], list(part["subject_id"]))
                                               if name == "exposure_bits" else _rate_of(part, column))
    return out


def _paired(audited: pd.DataFrame, base: pd.DataFrame, column: str) -> pd.DataFrame:
    """The same sentences on both models: (subject_id, pii_type, a, b)."""
    a = audited.set_index("sentence")[[column, "subject_id", "pii_type"]]
    b = base.set_index("sentence")[[column]].rename(columns={column: "base"})
    return a.join(b, how="inner")


def _lift_metrics(audited: pd.DataFrame, base: pd.DataFrame, prefix: str) -> dict[str, Estimate]:
    if audited.empty or base.empty:
        return {}
    both = _paired(audited, base, "top1")
    metric = f"{prefix}_top1_rate_minus_baseline"

    def diff(df: pd.DataFrame) -> Estimate:
        return paired_difference([float(x) for x in df["top1"]], [float(x) for x in df["base"]], list(df["subject_id"]))

    out = {metric: diff(both)}
    for pii_type, part in both.groupby("pii_type", sort=True):
        out[f"{metric}.{pii_type}"] = diff(part)
    return out


def summarize_reconstruction(attack: str, target_name: str, records: pd.DataFrame,
                             params: "ReconstructParams") -> AttackResult:
    """Metrics, the per-type table and the inference rank histogram, from the records alone."""
    inf, inf_base = _part(records, INFERENCE), _part(records, BASELINE_INFERENCE)
    rec, rec_base = _part(records, RECONSTRUCTION), _part(records, BASELINE_RECONSTRUCTION)
    inference_cols = {"top1_rate": "top1", "top5_rate": "top5", "exposure_bits": "exposure_bits"}
    metrics: dict[str, Estimate] = {}
    metrics.update(_part_metrics(inf, "inference", "", inference_cols, ("top1_rate", "top5_rate", "exposure_bits")))
    metrics.update(_part_metrics(inf_base, "inference", "_baseline", inference_cols, ("top1_rate",)))
    metrics.update(_lift_metrics(inf, inf_base, "inference"))
    reconstruction_cols = {"top1_rate": "top1", "truth_generated_rate": "truth_generated"}
    metrics.update(_part_metrics(rec, "reconstruction", "", reconstruction_cols, ("top1_rate",)))
    metrics.update(_part_metrics(rec_base, "reconstruction", "_baseline", reconstruction_cols, ("top1_rate",)))
    metrics.update(_lift_metrics(rec, rec_base, "reconstruction"))
    charts: dict[str, Any] = {}
    if not inf.empty:
        charts["inference_rank_histogram"] = {
            **rank_histogram([int(r) for r in inf["rank"]], int(inf["num_candidates"].max())),
            "title": "Rank of the true value among candidates for the masked sentence"}
    return AttackResult(attack, target_name, records, metrics, tables={"by_pii_type": _type_table(metrics)},
                        charts=charts, assumptions=_assumptions(params),
                        provenance={"ranking": "mean token log-prob of the whole filled-in sentence (-log perplexity)",
                                    "reconstruction_sampling": f"top-k (k={params.top_k}, temperature "
                                                               f"{params.temperature}), {params.num_samples} samples"})


def _type_table(metrics: dict[str, Estimate]) -> list[dict[str, Any]]:
    """One row per PII field: each rate (with the base model's and the lift) and its sentence count."""
    types = sorted({name.split(".", 1)[1] for name in metrics if "." in name})
    rows = []
    for t in types:
        row: dict[str, Any] = {"pii_type": t}
        for name in ("inference_top1_rate", "inference_top1_rate_baseline", "inference_top1_rate_minus_baseline",
                     "inference_top5_rate", "inference_exposure_bits", "reconstruction_top1_rate",
                     "reconstruction_top1_rate_baseline", "reconstruction_top1_rate_minus_baseline"):
            est = metrics.get(f"{name}.{t}")
            if est is not None:
                row[name] = est.value
                row[f"{name}_low"], row[f"{name}_high"] = est.low, est.high
                row.setdefault("sentences", est.n)
                row.setdefault("subjects", est.clusters)
        rows.append(row)
    return rows


def _assumptions(params: "ReconstructParams") -> list[str]:
    source = (f"the user's masked templates ({params.templates_file})" if params.templates_file else
              f"{params.split} documents of the corpus, one masked value per sentence; the subject's other PII "
              "in the sentence replaced as the scrub defense replaces it (<PHONE_NUMBER>), the name kept")
    out = [f"The attacker holds masked training sentences: {source}."]
    if "inference" in params.parts:
        out.append(f"Inference: the attacker's candidate set holds the true value and {params.num_candidates} others "
                   "of its field (other subjects' values and values of generated subjects that appear in no "
                   "training text); each is ranked by the likelihood of the whole filled-in sentence.")
    if "reconstruction" in params.parts:
        out.append(f"Reconstruction: no candidate set; {params.num_samples} top-{params.top_k} samples of the "
                   f"prefix (at most {params.max_new_tokens} tokens), values of the field detected in them, ranked "
                   "the same way; a hit is the true value ranked first.")
    if params.baseline_target:
        out.append(f"The base model ({params.baseline_target}) answers the same sentences and candidates: a rate "
                   "above it is what training added.")
    return out
