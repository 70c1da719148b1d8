"""ProPILE's black-box probe loops: generate for each probe (exact / partial match) and score the truth.

Both loops run through `RunContext.probe` (pending probes -> batches -> one target call per batch
-> one record per probe), so an interrupted run resumes where it stopped. The record kinds name
which loop produced a record; baseline records live under the audited target's name, so one
summary (`pii_summary`) holds both models.
"""

from __future__ import annotations

from typing import Any, Sequence

from privaudit.attacks.base import RunContext
from privaudit.attacks.pii_likelihood import draw_candidates, likelihood_outcome
from privaudit.attacks.pii_matching import match_outputs
from privaudit.attacks.pii_probes import Probe
from privaudit.targets.base import GenerationConfig, Target

# Record kinds. Baseline records live under the audited target's name, so one summary holds both.
EXTRACT = "extract"
LIKELIHOOD = "likelihood"
BASELINE_EXTRACT = "baseline_extract"
BASELINE_LIKELIHOOD = "baseline_likelihood"
SOFT_PROMPT = "soft_prompt"
SCAN = "scan"


def _probe_fields(p: Probe) -> dict[str, Any]:
    return {"subject_id": p.subject_id, "pii_type": p.pii_type, "template_id": p.template_id, "level": p.level,
            "association": p.association, "known": dict(p.known), "prompt": p.prompt, "truth": p.truth}


def run_extraction(target: Target, probes: Sequence[Probe], cfg: GenerationConfig, ctx: RunContext, attack: str,
                   target_name: str, kind: str, extra: dict[str, Any] | None = None) -> int:
    """Generate for every pending probe in batches of `ctx.batch_size` and store one record per probe.

    Pending probes are sorted by prompt length first, so batches hold prompts of similar length
    (less padding). Returns how many probes were computed.
    """

    def record(probe: Probe, outs: Sequence[str]) -> dict[str, Any]:
        m = match_outputs(probe.pii_type, probe.truth, outs)
        return {"kind": kind, **_probe_fields(probe), "outputs": list(outs), "exact": m.exact,
                "partial": m.partial, "exact_sample": m.exact_index, "partial_sample": m.partial_index,
                "num_samples": cfg.num_samples, "do_sample": cfg.do_sample, **(extra or {})}

    return ctx.probe(attack, target_name, [(f"{kind}|{p.key}", p) for p in probes],
                     call=lambda batch: target.generate([p.prompt for p in batch], cfg), record=record,
                     label=f"{attack}: {kind} probes", sort_key=lambda p: len(p.prompt))


def run_likelihood(target: Target, probes: Sequence[Probe], pool: dict[str, list[str]], num_candidates: int,
                   ctx: RunContext, attack: str, target_name: str, kind: str,
                   extra: dict[str, Any] | None = None) -> int:
    """Score the truth and its candidates under each pending probe's prompt; one record per probe.

    All candidates of a prompt go into the same `score` call, together with those of up to
    `ctx.batch_size` prompts; the target batches the pairs on the device. Candidate values (other
    people's PII) are not stored, only the truth's rank among them.
    """

    def call(batch: list[Probe]) -> list[list[float]]:
        prompts: list[str] = []
        conts: list[str] = []
        spans: list[tuple[int, int]] = []
        for probe in batch:
            cands = draw_candidates(probe.truth, probe.pii_type, pool, num_candidates, ctx.seed, probe.subject_id)
            start = len(prompts)
            for value in [probe.truth, *cands]:
                prompts.append(probe.prompt)
                conts.append(" " + value)
            spans.append((start, len(prompts)))
        scores = target.score(prompts, conts) if prompts else []
        return [list(scores[a:b]) for a, b in spans]  # per probe: the truth's score, then the candidates'

    def record(probe: Probe, scores: list[float]) -> dict[str, Any]:
        out = likelihood_outcome(scores[0], scores[1:])
        return {"kind": kind, **_probe_fields(probe), "truth_logprob": out.truth_logprob,
                "best_other_logprob": out.best_other_logprob, "rank": out.rank,
                "num_candidates": out.num_candidates, "exposure_bits": out.exposure, "top1": out.top1,
                "top5": out.top5, **(extra or {})}

    return ctx.probe(attack, target_name, [(f"{kind}|{p.key}", p) for p in probes], call=call, record=record,
                     label=f"{attack}: {kind} probes")
