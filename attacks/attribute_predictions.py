"""Scoring stored predictions (SynthPAI's released model answers) with the official rules, no target.

`privaudit attack attributes --predictions FILE [--model NAME]` reads a SynthPAI-format file
(`privaudit.data.synthpai_predictions`), scores every guess of every evaluated (author, attribute)
with `privaudit.attacks.synthpai_rules.score_official`, asks the optional judge about the undecided
ones (`privaudit.attacks.attribute_judge`), and stores one record per guess (ranks 1-3): ``author``,
``attribute``, ``rank``, ``guess``, ``truth``, ``score`` (1, 0.5, 0 or None = undecided), ``rule``
(which rule or the judge decided), and ``official_score`` where the file carries SynthPAI's own
judgment of that guess. A paper's table is then one command away.

Metrics (an (author, attribute) is one unit, intervals clustered by author as everywhere in the
attack): ``top1``/``top3`` overall, per attribute and per hardness count only full credit, as
SynthPAI's top-k does; ``half_top1`` (first guess 'less precise', 0.5) and ``undecided`` (share of
guesses no rule decided and no judge answered) are reported next to them, never folded in.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import pandas as pd

from privaudit.attacks.attribute_judge import AttributeJudge
from privaudit.attacks.attribute_metrics import accuracy_metrics, breakdown_tables, undecided_metrics
from privaudit.attacks.synthpai_rules import (
    LOCATION_ATTRIBUTES,
    NO_GUESS,
    Verdict,
    expand_guesses,
    is_evaluated,
    score_official,
)
from privaudit.attacks.base import AttackResult
from privaudit.data.synthpai_predictions import StoredAuthor
from privaudit.metrics import Estimate, clustered_proportion

MAX_RANK = 3
STORED = "stored"  # the adversary column of these records: guesses read from a file, not asked for
Item = tuple[StoredAuthor, str, int]  # (author, attribute, rank)


def prediction_items(authors: Sequence[StoredAuthor], attributes: Sequence[str]) -> list[tuple[str, Item]]:
    """(record key, item) for every guess slot the official evaluation scores: evaluated labels
    (`is_evaluated`) of attributes the model answered; a pair without guesses has one slot (rank 1)."""
    items: list[tuple[str, Item]] = []
    for stored in authors:
        for attr in attributes:
            label = stored.author.labels.get(attr)
            if not is_evaluated(label) or attr not in stored.guesses:
                continue
            n = min(len(expand_guesses(stored.guesses[attr].guesses)), MAX_RANK) or 1
            items += [(f"predictions/{stored.author.author_id}/{attr}/{r}", (stored, attr, r)) for r in range(1, n + 1)]
    return items


def score_batch(batch: Sequence[Item], judge: AttributeJudge | None) -> list[tuple[Verdict, str, str]]:
    """(verdict, guess, judge reply) per item: rules for each (author, attribute) once, the judge once per
    batch for the pairs the rules left undecided."""
    keys: dict[tuple[str, str], tuple[StoredAuthor, str, list[str]]] = {}
    for stored, attr, _ in batch:
        key = (stored.author.author_id, attr)
        if key not in keys:
            keys[key] = (stored, attr, expand_guesses(stored.guesses[attr].guesses))
    pairs = [(attr, stored.author.labels[attr], guesses,
              score_official(attr, stored.author.labels[attr], guesses, stored.guesses[attr].categories))
             for stored, attr, guesses in keys.values()]
    resolved = judge.resolve(pairs) if judge is not None else [(p[3], "") for p in pairs]
    decided = dict(zip(keys, resolved))
    out = []
    for stored, attr, rank in batch:
        key = (stored.author.author_id, attr)
        guesses = keys[key][2]
        verdicts, reply = decided[key]
        if not guesses:
            out.append((Verdict(0.0, NO_GUESS), "", ""))
        else:
            out.append((verdicts[rank - 1], guesses[rank - 1], reply))
    return out


# Free-form labels that can point at a person (a home town, a job title) are masked in reports; see
# attribute_inference.IDENTIFYING_ATTRIBUTES for why categorical labels are not.
IDENTIFYING = frozenset({"city_country", "birth_city_country", "occupation"})


def guess_record(item: Item, output: tuple[Verdict, str, str], identifying: frozenset[str]) -> dict[str, Any]:
    """The stored record of one scored guess."""
    (stored, attr, rank), (verdict, guess, reply) = item, output
    label = stored.author.labels[attr]
    official = stored.official.get(attr, ())
    return {
        "condition": "original", "adversary": STORED, "author": stored.author.author_id, "attribute": attr,
        "rank": rank, "guess": guess, "truth": label.value, "score": verdict.score, "rule": verdict.rule,
        "hardness": label.hardness, "certainty": label.certainty, "acc_gt": label.acc_gt,
        "truth_category": label.category, "identifying_truth": label.value if attr in identifying else None,
        "official_score": official[rank - 1] if len(official) >= rank and guess else None,
        "judge_reply": reply or None, "scorable": True,
    }


def pair_frame(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (author, attribute) from the guess records: top1, top3 (full credit only), half
    credit on the first guess, and `partial_top1` (country-level credit of a location, the attack's
    `top1_country` family)."""
    rows = []
    for (author, attr), sub in records.sort_values("rank").groupby(["author", "attribute"], sort=True):
        scores = [s if s == s else None for s in sub["score"]]  # NaN (undecided) -> None
        first = scores[0] if scores else None
        rows.append({"adversary": STORED, "condition": "original", "author": author, "attribute": attr,
                     "hardness": int(sub["hardness"].iloc[0]), "top1": first == 1.0,
                     "top3": any(s == 1.0 for s in scores[:MAX_RANK]), "half_top1": first == 0.5,
                     "partial_top1": first == 0.5 and attr in LOCATION_ATTRIBUTES})
    return pd.DataFrame(rows)


def prediction_metrics(records: pd.DataFrame, attributes: Sequence[str]) -> tuple[dict[str, Estimate], pd.DataFrame]:
    """The attack's metrics for stored predictions and the pair frame they come from."""
    pairs = pair_frame(records)
    metrics = accuracy_metrics(pairs, secondary=("top1_country",))
    rate: Callable[[pd.DataFrame, pd.Series], Estimate] = lambda rows, hits: clustered_proportion(
        [bool(h) for h in hits], [str(a) for a in rows["author"]])
    metrics["half_top1"] = rate(pairs, pairs["half_top1"])
    for attr in attributes:
        sub = pairs[pairs["attribute"] == attr]
        if not sub.empty:
            metrics[f"half_top1.{attr}"] = rate(sub, sub["half_top1"])
    metrics.update(undecided_metrics(records[["author", "attribute", "score"]]))
    return metrics, pairs


def agreement_table(records: pd.DataFrame, pairs: pd.DataFrame) -> list[dict[str, Any]]:
    """Per attribute: agreement of privaudit's decided guesses with the file's official judgments,
    the undecided share, and top-1/top-3 next to the official ones (first official score == 1)."""
    if "official_score" not in records or records["official_score"].isna().all():
        return []
    rows = []
    for attr, sub in records.groupby("attribute", sort=True):
        judged = sub[sub["official_score"].notna()]
        decided = judged[judged["score"].notna()]
        official = _official_pairs(judged)
        mine = pairs[pairs["attribute"] == attr]
        rows.append({
            "attribute": attr, "pairs": int(len(mine)), "guesses": int(len(judged)), "decided": int(len(decided)),
            "agreement": float((decided["score"] == decided["official_score"]).mean()) if len(decided) else float("nan"),
            "undecided": float(judged["score"].isna().mean()) if len(judged) else float("nan"),
            "top1": float(mine["top1"].mean()), "official_top1": official[0] / max(len(mine), 1),
            "top3": float(mine["top3"].mean()), "official_top3": official[1] / max(len(mine), 1),
        })
    return rows


def _official_pairs(judged: pd.DataFrame) -> tuple[int, int]:
    top1 = top3 = 0
    for _, sub in judged.sort_values("rank").groupby("author"):
        scores = list(sub["official_score"])
        top1 += bool(scores) and scores[0] == 1.0
        top3 += any(s == 1.0 for s in scores[:MAX_RANK])
    return top1, top3


def prediction_tables(records: pd.DataFrame, pairs: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """Breakdown tables (by attribute, by hardness) and, when the file has official judgments, agreement."""
    tables = breakdown_tables(pairs)
    rules = records.groupby(["attribute", "rule"], sort=True).size()
    tables["by_rule"] = [{"attribute": a, "rule": r, "guesses": int(n)} for (a, r), n in rules.items()]
    agreement = agreement_table(records, pairs)
    if agreement:
        tables["agreement"] = agreement
    return tables



def run_predictions(attack: Any, target_name: str, ctx: Any) -> None:
    """Score the guesses stored in `attack.params.predictions` (and ask the judge, if any), resumably."""
    from privaudit.data.synthpai_predictions import load_predictions

    params = attack.params
    _, stored = load_predictions(params.predictions, params.model or None)
    if params.max_authors:
        stored = stored[: params.max_authors]
    judge_target = ctx.load_target(params.judge) if params.judge else None
    try:
        judge = AttributeJudge(judge_target) if judge_target is not None else None
        ctx.probe(attack.name, target_name, prediction_items(stored, params.selected_attributes),
                  call=lambda batch: score_batch(batch, judge),
                  record=lambda item, out: guess_record(item, out, IDENTIFYING),
                  label="attributes: scoring stored predictions", batch_size=params.batch_size or 64,
                  unit=lambda it: (it[0].author.author_id, it[1]))
    finally:
        if judge_target is not None:
            judge_target.close()


def summarize_predictions(params: Any, target_name: str, records: pd.DataFrame) -> AttackResult:
    """The attack's result for stored predictions: metrics, breakdowns, agreement, assumptions."""
    metrics: dict[str, Estimate] = {}
    tables: dict[str, list[dict[str, Any]]] = {"by_attribute": [], "by_hardness": []}
    if not records.empty and "rank" in records:
        records = records[records["attribute"].isin(set(params.selected_attributes))]
        metrics, pairs = prediction_metrics(records, params.selected_attributes)
        tables = prediction_tables(records, pairs)
    judged = f"undecided guesses asked to the judge {params.judge}" if params.judge \
        else "no judge: guesses SynthPAI would send to its LLM judge are undecided (not counted correct)"
    return AttackResult(
        attack="attributes", target=target_name, records=records, metrics=metrics, tables=tables,
        assumptions=["stored guesses scored with SynthPAI's official rules (src/thread/eval_utils.py::evaluate): "
                     "revised labels, hardness >= 1, certainty >= 3; top-k counts full credit only", judged],
        provenance={"adversary": STORED, "predictions": params.predictions, "model": target_name,
                    "judge": params.judge or None, "attributes": list(params.selected_attributes)},
    )
