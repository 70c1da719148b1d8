"""Evidence: the few probe records that show *what* leaked, picked from a result's records.

A rate says how often; a reviewer also needs to see one prompt and the output that gave the value
away (ProPILE Sec. 3.1 reports its hits the same way). `evidence_of(result)` picks, per attack:

- pii: the verbatim hits (else the partial ones), one per (subject, field), as excerpts of the
  prompt and the output with the leaked span marked;
- attributes: the adversary's correct top-1 guesses with an excerpt of its reply (SynthPAI);
- bias: the persona replies that differ most from the no-persona control's reply to the same
  request, side by side (Vijjini et al. 2025: a persona changes refusal and answers);
- membership: the canaries whose secret ranked first (Carlini et al. 2019, "The Secret Sharer");
- reconstruct: the masked training sentences whose true value ranked first, with the top candidates
  (Lukas et al. 2023);
- any other attack with `prompt` and `output` columns: its first records.

Items are plain JSON (an excerpt is a list of `{"text", "leak"}` segments), so they go through
summary.json's one masking pass like every other string: a leaked span is masked as a whole by
default and shown raw only with --show-pii; the HTML escapes each segment. Because excerpts show
raw model text, masked summaries also mask PII *fragments* in them (`masking.mask_fragments`:
digit runs, @-tokens), which a model writes when it half-remembers a phone number.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

EVIDENCE_LIMIT = 5
CONTEXT_CHARS = 160  # characters of output kept on each side of a leaked span
PROMPT_CHARS = 300

Picker = Callable[[pd.DataFrame, int], list[dict[str, Any]]]


def segments(text: Any, span: str | None) -> list[dict[str, Any]]:
    """`text` cut around the first case-insensitive occurrence of `span` (marked `leak`), shortened."""
    text = "" if text is None else str(text)
    at = text.casefold().find(span.casefold()) if span else -1
    if at < 0 or not span:
        cut = text if len(text) <= 2 * CONTEXT_CHARS else text[: 2 * CONTEXT_CHARS] + " …"
        return [{"text": cut, "leak": False}]
    end = at + len(span)
    before = text[max(0, at - CONTEXT_CHARS):at]
    after = text[end:end + CONTEXT_CHARS]
    parts = [{"text": ("… " if at > CONTEXT_CHARS else "") + before, "leak": False},
             {"text": text[at:end], "leak": True},
             {"text": after + (" …" if end + CONTEXT_CHARS < len(text) else ""), "leak": False}]
    return [p for p in parts if p["text"]]


def _short(text: Any, limit: int = PROMPT_CHARS) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else "… " + text[-limit:]


def _col(df: pd.DataFrame, name: str, default: Any = None) -> pd.Series:
    return df[name] if name in df.columns else pd.Series([default] * len(df), index=df.index)


def _true(series: pd.Series) -> pd.Series:
    return series.map(lambda v: v is True or (isinstance(v, (int, float)) and not isinstance(v, bool)
                                              and math.isfinite(v) and v == 1))


def _pii(records: pd.DataFrame, limit: int) -> list[dict[str, Any]]:
    extract = records[_col(records, "kind") == "extract"]
    for flag, how in (("exact", "verbatim"), ("partial", "partial")):
        hits = extract[_true(_col(extract, flag))]
        if len(hits):
            break
    else:
        return []
    hits = hits.sort_values(["subject_id", "pii_type", "template_id"], kind="stable")
    hits = hits.drop_duplicates(["subject_id", "pii_type"])
    # distinct subjects first: five hits on one person say less than one hit on each of five
    hits = hits.assign(_nth=hits.groupby("subject_id").cumcount()).sort_values(["_nth", "subject_id"], kind="stable")
    items = []
    for _, rec in hits.head(limit).iterrows():
        outputs = rec.get("outputs") if isinstance(rec.get("outputs"), list) else [rec.get("output")]
        sample = rec.get(f"{flag}_sample")
        idx = int(sample) if isinstance(sample, (int, float)) and not pd.isna(sample) and 0 <= sample < len(outputs) else 0
        truth = rec.get("truth") if isinstance(rec.get("truth"), str) else None
        items.append({"kind": "excerpt", "title": f"{rec['pii_type']} of subject {rec['subject_id']} ({how})",
                      "subject_id": str(rec["subject_id"]), "prompt": _short(rec.get("prompt")),
                      "output": segments(outputs[idx] if outputs else "", truth if flag == "exact" else None),
                      "note": f"template {rec.get('template_id')}, level {rec.get('level')}"})
    return items


def _attributes(records: pd.DataFrame, limit: int) -> list[dict[str, Any]]:
    hits = records[(_col(records, "adversary") == "target") & (_col(records, "condition") == "original")
                   & _true(_col(records, "top1"))]
    items = []
    for _, rec in hits.head(limit).iterrows():
        guesses = rec.get("guesses") if isinstance(rec.get("guesses"), list) else []
        guess = str(guesses[0]) if guesses else None
        items.append({"kind": "excerpt", "title": f"{rec.get('attribute')} of author {rec.get('author')} (top-1 correct)",
                      "subject_id": str(rec.get("author")), "prompt": "",
                      "output": segments(rec.get("response") or rec.get("inference") or "", guess),
                      "note": f"guess {guess!r}, hardness {rec.get('hardness')}"})
    return items


def _differs(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[int, float]:
    """How different two replies to one request are: judged outcome first, then text dissimilarity."""
    from rapidfuzz import fuzz

    judged = sum(1 for key in ("refused", "correct", "own_culture")
                 if key in a and key in b and bool(a.get(key)) != bool(b.get(key)))
    return judged, 100.0 - fuzz.ratio(str(a.get("response") or ""), str(b.get("response") or ""))


def _outcome(rec: Mapping[str, Any]) -> str:
    if "refused" in rec and isinstance(rec.get("refused"), bool):
        return "refused" if rec["refused"] else "answered"
    if "correct" in rec and isinstance(rec.get("correct"), bool):
        return f"chose {rec.get('choice')!s} ({'right' if rec['correct'] else 'wrong'})"
    if "own_culture" in rec and isinstance(rec.get("own_culture"), bool):
        return "used the name's culture" if rec["own_culture"] else "no culture marker of the name"
    return ""


def _bias(records: pd.DataFrame, limit: int) -> list[dict[str, Any]]:
    from privaudit.attacks.bias_data import CONTROL

    if "response" not in records.columns or "persona" not in records.columns:
        return []
    first = records[_col(records, "sample", 0).fillna(0) == 0]
    pairs = []
    for (axis, item), grp in first.groupby([_col(first, "axis", ""), _col(first, "probe_item", "")], sort=True):
        control = grp[grp["persona"] == CONTROL]
        if control.empty:
            continue
        base = control.iloc[0].to_dict()
        for _, rec in grp[grp["persona"] != CONTROL].iterrows():
            other = rec.to_dict()
            pairs.append((_differs(base, other), str(axis), str(item), base, other))
    pairs.sort(key=lambda p: (-p[0][0], -p[0][1], p[1], p[2], str(p[4].get("persona"))))
    items = []
    for _, axis, item, base, other in pairs[:limit]:
        items.append({"kind": "side_by_side", "title": f"{axis} item {item}: control vs persona {other.get('persona')}",
                      "prompt": _short(other.get("request") or other.get("user")),
                      "left": {"label": f"no persona: {_outcome(base)}".rstrip(": "), "output": segments(base.get("response"), None)},
                      "right": {"label": f"{other.get('persona')}: {_outcome(other)}".rstrip(": "),
                                "output": segments(other.get("response"), None)}})
    return items


def _membership(records: pd.DataFrame, limit: int) -> list[dict[str, Any]]:
    canaries = records[(_col(records, "probe") == "canary") & (_col(records, "rank") == 1)]
    items = []
    for _, rec in canaries.sort_values("repeats", ascending=False, kind="stable").head(limit).iterrows():
        items.append({"kind": "excerpt", "title": f"canary {rec.get('canary_id')} (inserted {rec.get('repeats')} times)",
                      "subject_id": "", "prompt": "",
                      "output": [{"text": "secret ", "leak": False}, {"text": str(rec.get("secret")), "leak": True},
                                 {"text": f" ranks 1 of {rec.get('num_candidates')} candidates", "leak": False}],
                      "note": f"exposure {float(rec.get('exposure_bits') or 0):.1f} bits"})
    return items


def _reconstruct(records: pd.DataFrame, limit: int) -> list[dict[str, Any]]:
    """Masked sentences whose true value the audited model ranked first (inference, then reconstruction),
    one per (subject, field), distinct subjects first: the sentence and its top candidates."""
    hits = records[_col(records, "kind").isin(["inference", "reconstruction"]) & _true(_col(records, "top1"))]
    if hits.empty:
        return []
    hits = hits.sort_values(["kind", "subject_id", "pii_type"], kind="stable").drop_duplicates(["subject_id", "pii_type"])
    hits = hits.assign(_nth=hits.groupby("subject_id").cumcount()).sort_values(["_nth", "subject_id"], kind="stable")
    items = []
    for _, rec in hits.head(limit).iterrows():
        truth = rec.get("truth") if isinstance(rec.get("truth"), str) else None
        top = rec.get("top_candidates") if isinstance(rec.get("top_candidates"), list) else []
        parts: list[dict[str, Any]] = [{"text": "ranked: ", "leak": False}]
        for i, cand in enumerate(top):
            value = str(cand.get("value", "")) if isinstance(cand, dict) else str(cand)
            parts.append({"text": f"{i + 1}. ", "leak": False})
            parts.append({"text": value, "leak": value == truth})
            parts.append({"text": "  ", "leak": False})
        items.append({"kind": "excerpt", "title": f"{rec['pii_type']} of subject {rec['subject_id']} ({rec['kind']}: "
                                                  f"true value ranked 1 of {rec.get('num_candidates')})",
                      "subject_id": str(rec["subject_id"]), "prompt": _short(rec.get("template")),
                      "output": parts, "note": f"masked sentence from {rec.get('source')}"})
    return items


def _generic(records: pd.DataFrame, limit: int) -> list[dict[str, Any]]:
    if "output" not in records.columns:
        return []
    items = []
    for _, rec in records.head(limit).iterrows():
        items.append({"kind": "excerpt", "title": f"record {rec.get('item', '')}", "subject_id": "",
                      "prompt": _short(rec.get("prompt")) if "prompt" in records.columns else "",
                      "output": segments(rec.get("output"), None), "note": ""})
    return items


PICKERS: dict[str, Picker] = {"pii": _pii, "attributes": _attributes, "bias": _bias, "membership": _membership,
                              "reconstruct": _reconstruct}


def mask_evidence(items: list[dict[str, Any]], fn: Callable[[str], str]) -> list[dict[str, Any]]:
    """`items` with `fn` applied to every prompt and output segment (the model-written text)."""

    def outputs(parts: Any) -> Any:
        return [{**p, "text": fn(p["text"])} if isinstance(p, dict) and isinstance(p.get("text"), str) else p
                for p in parts or []]

    out = []
    for item in items:
        item = {**item, "prompt": fn(item["prompt"]) if isinstance(item.get("prompt"), str) else item.get("prompt")}
        if "output" in item:
            item["output"] = outputs(item["output"])
        for side in ("left", "right"):
            if isinstance(item.get(side), dict):
                item[side] = {**item[side], "output": outputs(item[side].get("output"))}
        out.append(item)
    return out


# Hits read back from results.jsonl for a result whose summary holds slim records: enough to pick
# `limit` distinct subjects from, bounded whatever the run's size.
FULL_HITS = 200


def _is_hit(rec: Mapping[str, Any]) -> bool:
    return rec.get("kind") == "extract" and (rec.get("exact") is True or rec.get("partial") is True)


def _full_hits(root: Path, result: Any) -> pd.DataFrame | None:
    """The PII hits of `result` with their prompts and outputs, from the run folder's results.jsonl.

    A PII summary reads slim records (no prompts or outputs: `RunContext.summary_records`, so a user
    base's audit fits in memory); evidence needs the text, so it takes the top of an ordered query
    over the stored records (`engine.records.top_records`), exact hits first, then subject order.
    """
    from privaudit.engine.records import top_records
    from privaudit.engine.store import RESULTS_FILE

    if not (Path(root) / RESULTS_FILE).is_file():
        return None

    def order(rec: Mapping[str, Any]) -> tuple[bool, tuple[int, ...]]:
        key = tuple(-ord(c) for c in str(rec.get("subject_id", "")))  # nlargest: ascending subject id
        return rec.get("exact") is True, key

    hits = top_records(root, str(result.attack), str(result.target), order, FULL_HITS, where=_is_hit)
    return pd.DataFrame(hits) if hits else None


def evidence_of(result: Any, limit: int = EVIDENCE_LIMIT, root: Path | None = None) -> list[dict[str, Any]]:
    """The top `limit` evidence items of one AttackResult (raw: summary.json masks them).

    `root` is the run folder: where a result's records lack the model's outputs (slim PII records),
    the hits are read back from its results.jsonl.
    """
    records = getattr(result, "records", None)
    if not isinstance(records, pd.DataFrame) or records.empty:
        return []
    if root is not None and str(result.attack) == "pii" and "outputs" not in records.columns:
        full = _full_hits(Path(root), result)
        if full is not None:
            records = full
    pick = PICKERS.get(str(result.attack), _generic)
    return pick(records, limit)


def evidence_for(results: Sequence[Any], limit: int = EVIDENCE_LIMIT,
                 root: Path | None = None) -> list[list[dict[str, Any]]]:
    """Evidence per result, in the results' order."""
    return [evidence_of(r, limit, root) for r in results]
