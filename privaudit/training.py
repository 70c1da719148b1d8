"""Audit a model while it trains: the chosen probes every N steps, into one run folder.

Why: memorization grows with training (Carlini et al. 2021/2023; ProPILE Sec. 4 shows extraction
rising with fine-tuning), so a number at the last checkpoint hides *when* a model began to leak.
`TrainingAudit` audits the live model object (no copy to disk; privaudit.audit runs it under
`privaudit.live.preserved_training_state`: train/eval flags, gradients and RNG restored), each step
as target `live:NAME@step=N` in one resumable folder, and rewrites the reports after every audit
with a `line` chart of the headline metrics against the step (reports/SCHEMA.md, Charts).
`audit_during_training` is the plain-function form; privaudit.training_callback the
`transformers.TrainerCallback`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from privaudit.api import AuditResult, audit
from privaudit.attacks.base import AttackResult
from privaudit.errors import InputError
from privaudit.progress import ProgressReporter

STEP_SUFFIX = re.compile(r"@step=(\d+)$")
CHART_NAME = "over_training_steps"


def step_of(result: AttackResult) -> int | None:
    """The training step a result was measured at (provenance, else its target's `@step=N` suffix)."""
    step = result.provenance.get("step")
    if isinstance(step, int):
        return step
    match = STEP_SUFFIX.search(str(result.target))
    return int(match.group(1)) if match else None


def over_steps_chart(results: Sequence[AttackResult], attack: str, metrics: Sequence[str]) -> dict[str, Any] | None:
    """A `line` chart of `metrics` of `attack` (value and 95% interval) against the training step."""
    series = []
    for name in metrics:
        points = []
        for res in results:
            step, est = step_of(res), res.metrics.get(name)
            if res.attack == attack and step is not None and est is not None:
                points.append({"x": step, "y": est.value, "low": est.low, "high": est.high, "n": est.n})
        if points:
            series.append({"label": name, "points": sorted(points, key=lambda p: p["x"])})
    if not series:
        return None
    return {"kind": "line", "title": f"{attack}: headline metrics over training steps", "x_label": "training step",
            "y_label": "metric value (95% interval)", "series": series}


class TrainingAudit:
    """Audits a training model every `every` steps into `out` (one folder, one report over steps).

    `attacks` as for privaudit.audit (in-memory subjects and corpora allowed); `headline` names
    the metrics charted per attack as `attack.metric` (default: each attack's first metric).
    Call `maybe_audit(model, step)` from a training loop, or `run(model, step)` to audit now.
    """

    def __init__(self, attacks: Mapping[str, Mapping[str, Any]], *, out: str | Path, every: int = 100,
                 tokenizer: Any = None, name: str = "model", seed: int = 0, batch_size: int = 16,
                 thresholds: Mapping[str, Any] | None = None, headline: Sequence[str] = (),
                 show_pii: bool = False, progress: ProgressReporter | None = None) -> None:
        if every < 1:
            raise InputError(f"every: must be >= 1, got {every}")
        self.attacks = {k: dict(v) for k, v in attacks.items()}
        self.out, self.every, self.tokenizer, self.name = Path(out), every, tokenizer, name
        self.seed, self.batch_size, self.thresholds = seed, batch_size, dict(thresholds or {})
        self.headline, self.show_pii = tuple(headline), show_pii
        self.progress = progress or ProgressReporter(quiet=True)
        self.history: list[AuditResult] = []

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def maybe_audit(self, model: Any, step: int, tokenizer: Any = None) -> AuditResult | None:
        """Audit at every `every`-th step (step 0 included: the model before training)."""
        return self.run(model, step, tokenizer) if self.due(step) else None

    def run(self, model: Any, step: int, tokenizer: Any = None) -> AuditResult:
        """Audit `model` as it is now, as step `step`; the model is left exactly as found."""
        tok = tokenizer if tokenizer is not None else self.tokenizer
        result = audit((model, tok), self.attacks, out=self.out, seed=self.seed, batch_size=self.batch_size,
                       thresholds=self.thresholds or None, show_pii=self.show_pii, progress=self.progress,
                       source=f"training audit at step {step}", outputs=self._write, step=step, name=self.name)
        self.history.append(result)
        return result

    def _write(self, results: list[AttackResult], manifest: Mapping[str, Any]) -> Any:
        """Reports over every step in the folder: earlier steps re-read from it, this step's results,
        and per attack a chart of its headline metrics against the step on its latest result."""
        from privaudit.reports import write_reports
        from privaudit.reports.rundir import load_run

        current = {(r.attack, r.target) for r in results}
        earlier = [r for r in load_run(self.out).results if (r.attack, r.target) not in current]
        everything = sorted([*earlier, *results], key=lambda r: (r.attack, step_of(r) or 0))
        for res in results:
            match = STEP_SUFFIX.search(res.target)
            if match:
                res.provenance["step"] = int(match.group(1))
        for attack in dict.fromkeys(r.attack for r in everything):
            mine = [r for r in everything if r.attack == attack]
            chosen = [h.split(".", 1)[1] for h in self.headline if h.startswith(f"{attack}.")]
            chosen = chosen or list(mine[-1].metrics)[:1]
            chart = over_steps_chart(mine, attack, chosen)
            if chart is not None:
                mine[-1].charts = {**mine[-1].charts, CHART_NAME: chart}
        return write_reports(self.out, everything, manifest, show_pii=self.show_pii,
                             thresholds=self.thresholds or None)


def audit_during_training(model: Any, step: int, attacks: Mapping[str, Mapping[str, Any]], *, out: str | Path,
                          tokenizer: Any = None, every: int = 1, **options: Any) -> AuditResult | None:
    """One call per training step: audits when `step % every == 0` (a TrainingAudit made for you).

    For many calls, keep a `TrainingAudit` instead; this form rebuilds it each time (same folder,
    same numbers: the folder resumes).
    """
    return TrainingAudit(attacks, out=out, every=every, tokenizer=tokenizer, **options).maybe_audit(model, step)
