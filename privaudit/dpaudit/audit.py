"""Score audit canaries on a trained model and turn the scores into `dp_audit.json`.

Scores are privaudit's membership signals (attacks/membership.py, higher = "member"): LOSS (mean
token log-prob, Yeom et al. 2018), zlib ratio (Carlini et al. 2021), Min-K% prob (Shi et al. 2024)
and, with a reference model that never saw the canaries (the public base), the reference ratio.
Each document is scored on its secret, in the context of its template (`AuditCanary.score_from`):
the template is shared by members and non-members, so scoring it adds only noise. A canary with
several documents (a canary data subject) scores the mean over its documents.
Every signal enters the Bonferroni grid of `estimator.bonferroni_bound`, so reporting the best one
is paid for; each signal's own bound (at the same corrected level) is reported beside it.

`claim_violated` is true when the lower bound exceeds the claimed epsilon: with probability at
least 1 - beta a correct (eps, delta)-DP pipeline never does that, so true means a bug (or a
wrong claim). A small lower bound is no proof of privacy: the canaries and the signal bound what
this attacker could show, not what the model reveals.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from privaudit.attacks.membership_metrics import mean_logprob, min_k_prob, reference_ratio_score, zlib_ratio_score
from privaudit.dpaudit.canaries import AuditCanary
from privaudit.dpaudit.estimator import bonferroni_bound, count_guesses, epsilon_lower_bound, guess_grid
from privaudit.errors import InputError

SIGNALS = ("loss", "zlib", "min_k", "reference")
RESULT_FILE = "dp_audit.json"
DEFAULT_BETA = 0.05


def check_tokenizable(target: Any, canaries: Sequence[AuditCanary], source: str) -> None:
    """A canary the model's tokenizer cannot represent is an input error naming the canary.

    Checked where the target exposes its tokenizer (hf targets): an unknown-token id in a canary,
    or a round trip that does not give the text back, means the file was made for another
    vocabulary (scores would be meaningless). Every target must give each text at least one token.
    """
    tok = getattr(target, "tokenizer", None)
    if tok is None:
        return
    unk = getattr(tok, "unk_token_id", None)
    for c in canaries:
        for text in c.texts:
            ids = tok(text, add_special_tokens=False)["input_ids"]
            back = tok.decode(ids, skip_special_tokens=True)
            if not ids or (unk is not None and unk in ids) or back.strip() != text.strip():
                raise InputError(f"{source}: canary '{c.id}' does not tokenize with the model's tokenizer "
                                 "(unknown tokens or a lossy round trip): the file does not match this model")


def score_texts(target: Any, reference: Any | None, parts: Sequence[tuple[str, str]],
                min_k: float = 0.2) -> list[dict[str, float]]:
    """Each (prompt, continuation)'s four membership scores on the continuation (reference only
    with a reference target): the secret scored in its template's context, as the Secret Sharer does."""
    prompts, conts = [p for p, _ in parts], [c for _, c in parts]
    lps = target.token_logprobs(prompts, conts)
    ref_lps = reference.token_logprobs(prompts, conts) if reference is not None else None
    out = []
    for i, (text, lp) in enumerate(zip(conts, lps)):
        if not lp:
            raise InputError(f"dp audit: canary text {text[:40]!r} has no tokens to score")
        mean = mean_logprob(lp)
        scores = {"loss": mean, "zlib": zlib_ratio_score(mean, text), "min_k": min_k_prob(lp, min_k)}
        if ref_lps is not None:
            scores["reference"] = reference_ratio_score(mean, mean_logprob(ref_lps[i]))
        out.append(scores)
    return out


def canary_scores(target: Any, reference: Any | None, canaries: Sequence[AuditCanary],
                  batch_size: int = 16) -> list[dict[str, float]]:
    """One score per signal per canary: the mean over the canary's documents."""
    flat = [(i, part) for i, c in enumerate(canaries) for part in c.scored_parts()]
    per_text: list[dict[str, float]] = []
    for start in range(0, len(flat), max(1, batch_size)):
        per_text += score_texts(target, reference, [t for _, t in flat[start:start + batch_size]])
    sums: list[dict[str, list[float]]] = [{} for _ in canaries]
    for (i, _), scores in zip(flat, per_text):
        for name, value in scores.items():
            sums[i].setdefault(name, []).append(value)
    return [{name: sum(v) / len(v) for name, v in s.items()} for s in sums]


def summarize_audit(scores: Sequence[Mapping[str, float]], included: Sequence[bool], *, unit: str,
                    claimed_epsilon: float | None, delta: float, beta: float = DEFAULT_BETA,
                    signals: Sequence[str] | None = None) -> dict[str, Any]:
    """The dp_audit.json payload from per-canary scores and the coins (a pure function of both)."""
    if not 0 < delta < 1:
        raise InputError(f"delta: must be in (0, 1), got {delta}")
    if claimed_epsilon is not None and not (claimed_epsilon >= 0 and math.isfinite(claimed_epsilon)):
        raise InputError(f"claimed_epsilon: must be a finite number >= 0, got {claimed_epsilon}")
    available = [s for s in SIGNALS if scores and all(s in row for row in scores)]
    chosen = [s for s in (signals or available) if s in available]
    unknown = [s for s in (signals or ()) if s not in SIGNALS]
    if unknown:
        raise InputError(f"signals: unknown signal '{unknown[0]}' (known: {', '.join(SIGNALS)})")
    if not chosen:
        raise InputError(f"signals: none of {', '.join(signals or SIGNALS)} was scored "
                         "(the reference ratio needs --reference)")
    by_signal = {s: [float(row[s]) for row in scores] for s in chosen}
    m = len(included)
    grid = guess_grid(m)
    best = bonferroni_bound(by_signal, included, delta, beta, grid)
    level = beta / best.cells
    per_signal = {}
    for s, values in by_signal.items():
        cells = [count_guesses(values, included, kp, kn) for kp, kn in grid]
        eps = [epsilon_lower_bound(m, g.guesses, g.correct, delta, level) for g in cells]
        j = max(range(len(cells)), key=lambda k: eps[k])
        per_signal[s] = {"empirical_epsilon_lower": eps[j], "guesses": cells[j].guesses, "correct": cells[j].correct}
    violated = claimed_epsilon is not None and best.epsilon > claimed_epsilon
    return {
        "method": "steinke2023_one_run",
        "claimed_epsilon": claimed_epsilon, "empirical_epsilon_lower": best.epsilon, "confidence": 1 - beta,
        "delta": delta, "unit": unit, "canaries": m, "included": int(sum(bool(b) for b in included)),
        "guesses": best.guesses, "correct": best.correct, "k_pos": best.k_pos, "k_neg": best.k_neg,
        "signal": best.signal, "claim_violated": violated,
        "selection": {"method": "bonferroni", "cells": best.cells, "grid": [list(c) for c in grid],
                      "signals": chosen, "significance_per_cell": level},
        "signals": per_signal,
        "reading": ("a lower bound at confidence {:.0%}: a value above the claimed epsilon proves the claim "
                    "wrong (a bug); a small value is not proof of privacy".format(1 - beta)),
    }


def write_result(path: Path, result: Mapping[str, Any]) -> Path:
    """Write dp_audit.json (atomic: temp file then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def audit_target(target: Any, reference: Any | None, canaries: Sequence[AuditCanary], *, source: str,
                 claimed_epsilon: float | None, delta: float, beta: float = DEFAULT_BETA,
                 signals: Sequence[str] | None = None, batch_size: int = 16) -> dict[str, Any]:
    """Check, score and summarize: the dp_audit.json payload for `target`."""
    check_tokenizable(target, canaries, source)
    scores = canary_scores(target, reference, canaries, batch_size)
    return summarize_audit(scores, [c.included for c in canaries], unit=canaries[0].unit,
                           claimed_epsilon=claimed_epsilon, delta=delta, beta=beta, signals=signals)
