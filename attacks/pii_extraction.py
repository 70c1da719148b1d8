"""ProPILE PII extraction (Kim et al., NeurIPS 2023): black-box probing, likelihood, soft prompts, scan.

Registered as attack "pii". For each data subject and each of their PII fields, prompts built from
what the subject already knows (name; name + one field; name + two: ProPILE's twin / triplet /
quadruplet association levels, Sec. 3.1) go to the target in batches; a probe is an *exact* hit
when the true value appears verbatim in any of k samples, a *partial* hit under the per-type
normalization of `pii_matching` (secondary, never mixed into the headline). Optional parts:

- likelihood probe (`likelihood`): rank of the truth's teacher-forced log-likelihood among
  same-type candidates, top-1/top-5 rates and exposure bits (ProPILE Sec. 3.2; Carlini et al. 2019);
- white-box soft-prompt probe (`soft_prompt`): ProPILE Sec. 3.3, prompts tuned on subjects the
  auditor knows, measured on the others, reported as the lift over the hand-written templates;
- free-generation scan (`scan`): Presidio over unconditioned / lightly prompted samples;
- a baseline target (`baseline_target`): the same probes on the base model, so the report shows the
  fine-tuned model *minus* what a model that never saw the data also produces (analysing_pii_leakage,
  Lukas et al. 2023). An audit listing both targets gives the same numbers side by side; the
  baseline parameter puts the difference, with a paired interval, into one result.

Units of analysis (issue 14): the headline `exact_match_rate` counts (subject, PII field) pairs, a
pair leaked when at least one template (or sample) produced its value verbatim; the per-probe
rates are detail (`probe_exact_match_rate`, ...). The probes and fields of one subject are
correlated, so every interval is clustered by subject, and differences between two models (or the
soft prompt vs the template) on the same prompts are paired (`PII_METRICS` declares each one).

Records (one per probe, stored as computed, so runs resume) carry the prompt, outputs, truth, hit
flags, the known fields, template id and association level; `summarize` derives everything else.

This module is the attack (its parameters and the order of its parts); the probe loops live in
`pii_probing`, the metrics and tables in `pii_summary`, the scan in `pii_scan`, the soft prompt in
`soft_prompt`. Their public names stay importable from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable, Mapping, Sequence

import pandas as pd

from privaudit.attacks.base import Attack, AttackResult, RunContext, register_attack
from privaudit.attacks.pii_likelihood import candidate_pool
from privaudit.attacks.pii_probes import Probe, build_probes, load_templates
from privaudit.attacks.pii_probing import (  # noqa: F401  (record kinds and loops, importable from here)
    BASELINE_EXTRACT,
    BASELINE_LIKELIHOOD,
    EXTRACT,
    LIKELIHOOD,
    SCAN,
    SOFT_PROMPT,
    run_extraction,
    run_likelihood,
)
from privaudit.attacks.pii_summary import (  # noqa: F401  (public before the split; importable from here)
    PII_METRICS,
    PROBE_KEY,
    SUBJECT_FIELD,
    mean_by_subject,
    paired_subject_field_difference,
    per_subject_table,
    probe_rate,
    subject_field_rate,
    subject_field_units,
    slim_record,
    subject_view_lines,
    summarize_records,
)

# Subjects per chunk of the streamed extraction path: large enough that batches stay full (a chunk
# of 2048 subjects is thousands of probes), small enough that probes never dominate memory.
SUBJECT_CHUNK = 2048
from privaudit.data.subjects import DataSubject, iter_subjects, load_subjects
from privaudit.errors import CapabilityError, InputError
from privaudit.metrics import MetricSpecs
from privaudit.targets.base import GENERATE, GRADIENTS, SCORE, GenerationConfig, Target, require


@dataclass(frozen=True)
class PiiParams:
    """Parameters of the PII attack (config table `[attacks.pii]`; CLI `privaudit attack pii`)."""

    subjects: str  # JSONL file of data subjects (id, name, email, phone, address, extras)
    subject: str = ""  # restrict to this subject id: the data-subject view
    max_subjects: int = 0  # 0 = all subjects of the file
    pii_types: tuple[str, ...] = ()  # empty = every PII field of the subjects
    levels: tuple[int, ...] = ()  # association levels: 1 twin, 2 triplet, 3 quadruplet; empty = all
    templates_file: str = ""  # user templates (same JSON layout), added to / overriding the packaged ones
    template_ids: tuple[str, ...] = ()  # empty = every template
    num_samples: int = 1
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 32
    likelihood: bool = False
    num_candidates: int = 19  # distractors per probe; the truth makes #candidates = num_candidates + 1
    soft_prompt: bool = False
    soft_prompt_tokens: int = 8
    soft_prompt_steps: int = 150
    soft_prompt_lr: float = 0.03
    soft_prompt_train_fraction: float = 0.5
    scan: int = 0  # number of free generations to scan (0 = no scan)
    scan_prompts: tuple[str, ...] = ("", "Contact details:", "You can reach me at", "Name:")
    scan_max_new_tokens: int = 48
    baseline_target: str = ""  # spec of a base model run on the same probes, e.g. hf:base_model

    def __post_init__(self) -> None:
        if not self.subjects:
            raise InputError("subjects: a data-subjects JSONL file is required")
        for name in ("num_samples", "max_new_tokens", "soft_prompt_tokens", "soft_prompt_steps", "scan_max_new_tokens"):
            if getattr(self, name) < 1:
                raise InputError(f"{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("max_subjects", "num_candidates", "scan"):
            if getattr(self, name) < 0:
                raise InputError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.likelihood and self.num_candidates < 1:
            raise InputError("num_candidates: the likelihood probe needs at least 1 candidate")
        if not 0.0 < self.soft_prompt_train_fraction < 1.0:
            raise InputError(f"soft_prompt_train_fraction: must be in (0, 1), got {self.soft_prompt_train_fraction}")
        if self.soft_prompt_lr <= 0:
            raise InputError(f"soft_prompt_lr: must be > 0, got {self.soft_prompt_lr}")
        bad = [lv for lv in self.levels if lv not in (1, 2, 3)]
        if bad:
            raise InputError(f"levels: association levels are 1 (twin), 2 (triplet), 3 (quadruplet); got {bad[0]}")

    def generation_config(self, seed: int) -> GenerationConfig:
        return GenerationConfig(max_new_tokens=self.max_new_tokens, num_samples=self.num_samples,
                                do_sample=self.do_sample, temperature=self.temperature, top_p=self.top_p, seed=seed)


@register_attack
class PiiExtraction(Attack):
    """ProPILE black-box probing plus the optional likelihood, soft-prompt, scan and baseline parts."""

    name = "pii"
    Params = PiiParams
    metrics: ClassVar[MetricSpecs] = PII_METRICS
    requires = frozenset({GENERATE})
    # truth/known: the probed values; known_values: subjects' values a free-generation scan reproduced.
    pii_record_fields = frozenset({"truth", "known", "known_values"})
    data_file_params = ("subjects", "templates_file")
    target_params = ("baseline_target",)

    params: PiiParams

    def check_target(self, target: Target) -> None:
        super().check_target(target)
        if self.params.likelihood:
            require(target, SCORE, f"{self.name} (likelihood = true)")
        if self.params.soft_prompt and GRADIENTS not in target.capabilities:
            raise CapabilityError(
                f"target '{target.name}' has no 'gradients' capability: the soft-prompt probe needs a local "
                "white-box model (hf: or builtin:); drop --soft-prompt for black-box targets"
            )

    # ------------------------------------------------------------------------------------------ data
    def load_subjects(self) -> list[DataSubject]:
        """The subjects file, restricted to `subject` or the first `max_subjects`."""
        subjects = load_subjects(self.params.subjects)
        if self.params.subject:
            chosen = [s for s in subjects if s.id == self.params.subject]
            if not chosen:
                raise InputError(f"{self.params.subjects}: no subject with id '{self.params.subject}'")
            return chosen
        if self.params.max_subjects:
            subjects = subjects[: self.params.max_subjects]
        return subjects

    def build_probes(self, subjects: Sequence[DataSubject]) -> list[Probe]:
        probes = self._probes_of(subjects, self._templates())
        if not probes:
            raise self._no_probes()
        return probes

    def _templates(self):  # -> TemplateSet, the packaged templates plus the user's, ids checked
        templates = load_templates(self.params.templates_file or None)
        unknown = sorted(set(self.params.template_ids) - {t.id for t in templates.templates})
        if unknown:
            raise InputError(f"template_ids: unknown template '{unknown[0]}'")
        return templates

    def _probes_of(self, subjects: Sequence[DataSubject], templates) -> list[Probe]:
        return build_probes(subjects, templates, pii_types=self.params.pii_types, levels=self.params.levels,
                            template_ids=self.params.template_ids)

    def _no_probes(self) -> InputError:
        return InputError(
            f"{self.params.subjects}: no probes: the subjects have none of the PII types "
            f"{list(self.params.pii_types) or 'any'} at the requested levels/templates"
        )

    # ------------------------------------------------------------------------------------------- run
    def run(self, target: Target, ctx: RunContext) -> AttackResult:
        if self._streams():
            return self._run_streamed(target, ctx)
        subjects = self.load_subjects()
        probes = self.build_probes(subjects)
        cfg = self.params.generation_config(ctx.seed)
        run_extraction(target, probes, cfg, ctx, self.name, target.name, EXTRACT)
        pool = None
        if self.params.likelihood:
            pool = candidate_pool(load_subjects(self.params.subjects), self.params.num_candidates, ctx.seed)
            run_likelihood(target, probes, pool, self.params.num_candidates, ctx, self.name, target.name, LIKELIHOOD)
        if self.params.baseline_target:
            self._run_baseline(probes, cfg, pool, target.name, ctx)
        if self.params.soft_prompt:
            self._run_soft_prompt(target, subjects, probes, ctx)
        if self.params.scan:
            from privaudit.attacks.pii_scan import run_scan

            run_scan(target, load_subjects(self.params.subjects), self.params.scan, self.params.scan_prompts,
                     self.params.scan_max_new_tokens, self.params.temperature, ctx, self.name, target.name)
        return self.summarize(target.name, ctx.records(self.name, target.name))

    def _streams(self) -> bool:
        """Black-box extraction alone (the part that scales to a user base) streams subjects in chunks."""
        p = self.params
        return not (p.subject or p.likelihood or p.soft_prompt or p.scan or p.baseline_target)

    def _run_streamed(self, target: Target, ctx: RunContext) -> AttackResult:
        """Extraction over `SUBJECT_CHUNK` subjects at a time, so memory does not grow with the user base.

        Each chunk is built into probes and run like the whole file would be (pending probes sorted by
        prompt length, batched, one record each); a file of at most one chunk is exactly the old path.
        The summary reads the stored records back without prompts and outputs (`slim_record`).
        """
        cfg = self.params.generation_config(ctx.seed)
        templates = self._templates()
        for _ in iter_subjects(self.params.subjects):
            pass  # a defect anywhere in the file stops the run before the first probe, as on the list path
        chunk: list[DataSubject] = []
        seen = total = 0
        limit = self.params.max_subjects or None
        for subject in iter_subjects(self.params.subjects):
            if limit is not None and seen >= limit:
                break
            seen += 1
            chunk.append(subject)
            if len(chunk) >= SUBJECT_CHUNK:
                total += self._extract_chunk(target, self._probes_of(chunk, templates), cfg, ctx)
                chunk = []
        total += self._extract_chunk(target, self._probes_of(chunk, templates), cfg, ctx)
        if not total:
            raise self._no_probes()
        return self.summarize_stored(target.name, lambda: ctx.store.iter_records(attack=self.name, target=target.name))

    def summarize_stored(self, target_name: str, records: Callable[[], Iterable[Mapping[str, Any]]]) -> AttackResult:
        """The summary of stored records, out of core where they are extraction records only (issue 18).

        `records()` streams them (results.jsonl); `pii_sql.summarize_out_of_core` aggregates them in a
        temporary SQLite file so memory stays flat in subjects, with the in-memory summary's numbers.
        Other record kinds (likelihood, baseline, soft prompt, scan) are summarized in memory, from
        every record (as `run` does for them).
        """
        from privaudit.attacks.pii_sql import summarize_out_of_core

        result = summarize_out_of_core(self.name, target_name, records, self.params)
        if result is not None:
            return result
        return super().summarize_stored(target_name, records)

    def _extract_chunk(self, target: Target, probes: list[Probe], cfg: GenerationConfig, ctx: RunContext) -> int:
        if probes:
            run_extraction(target, probes, cfg, ctx, self.name, target.name, EXTRACT)
        return len(probes)

    def _run_soft_prompt(self, target: Target, subjects: list[DataSubject], probes: list[Probe],
                         ctx: RunContext) -> None:
        """Tune on known subjects, evaluate on the others (ProPILE Sec. 3.3).

        Without `subject`, the probed subjects split by `soft_prompt_train_fraction`. With it (the
        data-subject view), that subject is evaluated and the file's other subjects are the known ones.
        """
        from privaudit.attacks.soft_prompt import SoftPromptConfig, run_soft_prompt_probe, split_subjects

        p = self.params
        if p.subject:
            everyone = load_subjects(p.subjects)
            if len(everyone) < 2:
                raise InputError(f"{p.subjects}: the soft-prompt probe needs other subjects to train on")
            train_ids = {s.id for s in everyone if s.id != p.subject}
            train_probes = self.build_probes([s for s in everyone if s.id in train_ids])
            eval_probes = probes
        else:
            train_list, _ = split_subjects([s.id for s in subjects], p.soft_prompt_train_fraction, ctx.seed)
            train_ids = set(train_list)
            train_probes = [pr for pr in probes if pr.subject_id in train_ids]
            eval_probes = [pr for pr in probes if pr.subject_id not in train_ids]
        cfg = SoftPromptConfig(num_tokens=p.soft_prompt_tokens, steps=p.soft_prompt_steps,
                               learning_rate=p.soft_prompt_lr, seed=ctx.seed)
        run_soft_prompt_probe(target, train_probes, eval_probes, cfg, p.max_new_tokens, ctx, self.name, target.name)

    def _run_baseline(self, probes: list[Probe], cfg: GenerationConfig, pool: dict | None, target_name: str,
                      ctx: RunContext) -> None:
        todo = ctx.pending(self.name, target_name, ((f"{BASELINE_EXTRACT}|{p.key}", p) for p in probes))
        todo_lik = ctx.pending(self.name, target_name, ((f"{BASELINE_LIKELIHOOD}|{p.key}", p) for p in probes)) \
            if pool is not None else []
        if not todo and not todo_lik:
            return  # resumed run: the base model need not even be loaded
        ctx.progress.log(f"loading baseline target {self.params.baseline_target}")
        baseline = ctx.load_target(self.params.baseline_target)
        try:
            require(baseline, GENERATE, f"{self.name} (baseline_target)")
            run_extraction(baseline, probes, cfg, ctx, self.name, target_name, BASELINE_EXTRACT,
                           extra={"baseline_target": baseline.name})
            if pool is not None:
                require(baseline, SCORE, f"{self.name} (likelihood on baseline_target)")
                run_likelihood(baseline, probes, pool, self.params.num_candidates, ctx, self.name, target_name,
                               BASELINE_LIKELIHOOD, extra={"baseline_target": baseline.name})
        finally:
            baseline.close()

    # ------------------------------------------------------------------------------------- summarize
    def summarize(self, target_name: str, records: pd.DataFrame) -> AttackResult:
        return summarize_records(self.name, target_name, records, self.params)
