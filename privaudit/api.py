"""The Python API: audit models from notebooks, training scripts and tests with Python objects.

`privaudit run` is a thin wrapper over `audit` (one code path; `privaudit.audit(...)` calls it), so a notebook call and the CLI on
the same spec give the same numbers. Targets may be spec strings (`hf:PATH`, `builtin:NAME`, ...),
Target objects, or a loaded transformers / peft model with its tokenizer (audited in memory as
`live:NAME`, privaudit.live). Data parameters of attacks (`subjects`, `corpus`, ...) may be paths
or in-memory data (lists of DataSubject or dicts, pandas DataFrames, a Corpus): in-memory data is
written once into the run folder's `inputs/`, so its hash joins the run's identity like any file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

import pandas as pd

from privaudit.attacks.base import AttackResult, get_attack
from privaudit.audit import AuditSpec, audit_spec_from_mapping, load_audit_spec, run_audit, validate_audit_spec
from privaudit.errors import InputError
from privaudit.live import LIVE_SCHEME, LiveModelTarget, is_model_object, preserved_training_state
from privaudit.progress import ProgressReporter
from privaudit.targets.base import Target
from privaudit.targets.base import load_target as load_target_spec

TargetLike = Union[str, Target, Any]  # a spec string, a Target, or a loaded model (with `tokenizer=`)
SpecLike = Union[str, Path, Mapping[str, Any], AuditSpec]
INPUTS_DIR = "inputs"


def load_target(target: TargetLike, tokenizer: Any = None, *, name: str | None = None,
                batch_size: int | None = None) -> Target:
    """A Target from a spec string, a Target (returned as is), or a loaded model plus its tokenizer.

    A transformers causal LM or a peft model is audited where it is (its device, no copy to disk);
    `name` is how records and reports name it (default: `model`).
    """
    if isinstance(target, str):
        return load_target_spec(target)
    if is_model_object(target):
        return LiveModelTarget(target, tokenizer, name=name or "model", batch_size=batch_size)
    if isinstance(getattr(target, "capabilities", None), frozenset) and callable(getattr(target, "fingerprint", None)):
        return target
    raise InputError(f"target: expected a spec string, a Target or a loaded model, got {type(target).__name__}")


@dataclass(frozen=True)
class Metric:
    """One reported metric with its contract: what the gate and the reports read (summary.json 2.x)."""

    attack: str
    name: str
    target: str
    value: float
    low: float
    high: float
    n: int
    unit: str
    direction: str
    kind: str
    method: str
    step: int | None = None

    @property
    def path(self) -> str:
        """`attack.metric`, the form thresholds use."""
        return f"{self.attack}.{self.name}"


class AuditResult:
    """What `audit` returns: every (attack, target) result, their metrics, and the run folder.

    `to_pandas()` gives the metrics table (one row per attack, target and metric), and
    `to_pandas("records")` the per-probe records; `check(...)` applies gate thresholds in memory;
    `write(...)` renders the usual reports (summary.json, report.html, junit.xml, summary.md).
    """

    def __init__(self, results: Sequence[AttackResult], out: Path, spec: AuditSpec,
                 manifest: Mapping[str, Any] | None = None) -> None:
        self.results = list(results)
        self.out = Path(out)
        self.spec = spec
        self._manifest = dict(manifest) if manifest is not None else None

    @property
    def manifest(self) -> dict[str, Any]:
        if self._manifest is None:
            from privaudit.reports.rundir import read_manifest

            self._manifest = read_manifest(self.out) if (self.out / "manifest.json").is_file() else {}
        return self._manifest

    @property
    def metrics(self) -> list[Metric]:
        out: list[Metric] = []
        for res in self.results:
            step = res.provenance.get("step")
            for name, m in res.contracted_metrics().items():
                out.append(Metric(attack=res.attack, name=name, target=res.target, value=float(m["value"]),
                                  low=float(m["low"]), high=float(m["high"]), n=int(m["n"]), unit=str(m["unit"]),
                                  direction=str(m["direction"]), kind=str(m["kind"]), method=str(m["method"]),
                                  step=step if isinstance(step, int) else None))
        return out

    def metric(self, path: str, target: str | None = None) -> Metric:
        """The metric `attack.name` (on `target`, required when the attack ran on several)."""
        found = [m for m in self.metrics if m.path == path and (target is None or m.target == target)]
        if not found:
            known = sorted({m.path for m in self.metrics})
            raise KeyError(f"no metric '{path}'" + (f" on target '{target}'" if target else "")
                           + f" (metrics: {', '.join(known) or 'none'})")
        if len(found) > 1:
            raise KeyError(f"metric '{path}' was measured on several targets "
                           f"({', '.join(m.target for m in found)}): pass target=")
        return found[0]

    def to_pandas(self, what: str = "metrics") -> pd.DataFrame:
        """The metrics table (`"metrics"`) or every per-probe record (`"records"`, with attack, target, step)."""
        if what == "metrics":
            columns = [f.name for f in dataclasses.fields(Metric)]
            return pd.DataFrame([dataclasses.asdict(m) for m in self.metrics], columns=columns)
        if what == "records":
            from privaudit.engine.store import read_records

            frames = []
            for res in self.results:
                # From results.jsonl, not `res.records`: a summary may hold slim records (no prompts or
                # outputs, `RunContext.summary_records`), and a user asking for records wants all of them.
                frame = pd.DataFrame(list(read_records(self.out, attack=res.attack, target=res.target)))
                frame["attack"], frame["target"], frame["step"] = res.attack, res.target, res.provenance.get("step")
                frames.append(frame)
            return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        raise ValueError(f"to_pandas: what must be 'metrics' or 'records', got {what!r}")

    def summary(self, *, show_pii: bool | None = None) -> dict[str, Any]:
        """summary.json's content (masked unless show_pii), gated on the spec's thresholds."""
        from privaudit.reports.json import build_summary

        shown = self.spec.show_pii if show_pii is None else show_pii
        return build_summary(self.results, self.manifest, show_pii=shown, thresholds=self.spec.thresholds or None,
                             root=self.out)

    def check(self, thresholds: Mapping[str, Any] | str):
        """Gate thresholds (a mapping, or one `"attack.metric <= x"` line) -> privaudit.gate.GateOutcome."""
        from privaudit.gate import evaluate

        chosen = parse_assertion(thresholds) if isinstance(thresholds, str) else dict(thresholds)
        return evaluate(self.summary(show_pii=False), chosen, where="thresholds")

    def write(self, out: str | Path | None = None, *, formats: Iterable[str] | None = None) -> dict[str, Path]:
        """Render the reports (every format by default) into `out` (default: the run folder)."""
        from privaudit.reports import write_reports

        return write_reports(Path(out) if out is not None else self.out, self.results, self.manifest,
                             show_pii=self.spec.show_pii, thresholds=self.spec.thresholds or None, formats=formats)

    def __repr__(self) -> str:
        return f"AuditResult({len(self.results)} results, out={str(self.out)!r})"


def parse_assertion(text: str) -> dict[str, str]:
    """`"pii.exact_match_rate <= 0.01"` -> {"pii.exact_match_rate": "<= 0.01"} (a threshold table)."""
    for op in ("<=", ">=", "≤", "≥", "<", ">"):
        if op in text:
            key, _, bound = text.partition(op)
            if key.strip() and bound.strip():
                return {key.strip(): f"{op} {bound.strip()}"}
    raise InputError(f"assertion '{text}': expected 'attack.metric <= number' (or >=, <, >)")


def assert_privacy(result: AuditResult, *conditions: str, **thresholds: Any) -> None:
    """Fail (AssertionError) with the gate's one-line message when a condition does not hold.

    `assert_privacy(result, "pii.exact_match_rate <= 0.01")` judges the metric as `privaudit gate`
    does (the upper 95% bound for a higher-is-worse rate); a metric that could not be measured fails too.
    """
    from privaudit.gate import flatten_thresholds

    __tracebackhide__ = True  # pytest shows the failing test's line, not this helper's
    table: dict[str, Any] = {}
    for text in conditions:
        table.update(parse_assertion(text))
    table.update(flatten_thresholds(thresholds))
    if not table:
        raise InputError("assert_privacy: give at least one condition, e.g. 'pii.exact_match_rate <= 0.01'")
    outcome = result.check(table)
    bad = [c for c in outcome.checks if not c.passed]
    if bad:
        raise AssertionError("; ".join(f"{c.status.upper()} {c.name}: {c.message}" for c in bad))


def build_spec(spec: SpecLike | None = None, *, targets: Sequence[str] | None = None,
               attacks: Mapping[str, Mapping[str, Any]] | None = None, **overrides: Any) -> AuditSpec:
    """An AuditSpec from a TOML path, a dict or an AuditSpec, with `targets`/`attacks`/fields overriding."""
    fields = {k: v for k, v in overrides.items() if v is not None}
    if targets is not None:
        fields["targets"] = list(targets)
    if attacks is not None:
        fields["attacks"] = {k: dict(v) for k, v in attacks.items()}
    if isinstance(spec, AuditSpec):
        built = dataclasses.replace(spec, **fields) if fields else spec
        validate_audit_spec(built, "audit spec")
        return built
    if isinstance(spec, (str, Path)):
        return load_audit_spec(Path(spec), **fields)
    raw = {**dict(spec or {}), **{k: (str(v) if k == "out" else v) for k, v in fields.items()}}
    return audit_spec_from_mapping(raw, "audit spec")


def audit(
    targets: TargetLike | Sequence[TargetLike] | None = None,
    attacks: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    spec: SpecLike | None = None,
    tokenizer: Any = None,
    out: str | Path | None = None,
    seed: int | None = None,
    batch_size: int | None = None,
    thresholds: Mapping[str, Any] | None = None,
    show_pii: bool | None = None,
    fresh: bool = False,
    progress: ProgressReporter | None = None,
    source: str = "audit spec",
    outputs: Any = None,
    step: int | None = None,
    name: str | None = None,
) -> AuditResult:
    """Run attacks on targets into a resumable run folder and return the results (reports written).

    `targets`: one or a list of spec strings, Target objects or loaded models (`tokenizer=` for a
    single model; a `(model, tokenizer)` pair in a list). `attacks`: attack name -> parameters, as
    in an audit TOML, where data parameters may also be in-memory data. `spec`: a TOML path, dict or
    AuditSpec to start from (arguments override it). `name` names an in-memory model (default
    `model`); `step` marks a training step (privaudit.training).
    """
    items = _as_list(targets)
    specs, preloaded = _target_specs(items, tokenizer, step, name)
    run_dir = Path(out) if out is not None else _spec_out(spec)
    resolved = None if attacks is None else {
        name: resolve_data_params(name, params, run_dir / INPUTS_DIR) for name, params in attacks.items()}
    built = build_spec(spec, targets=specs or None, attacks=resolved, out=run_dir, seed=seed, batch_size=batch_size,
                       thresholds=thresholds, show_pii=show_pii)
    with contextlib.ExitStack() as stack:
        for target in preloaded.values():  # a live model is probed in eval mode and left as found
            if isinstance(target, LiveModelTarget):
                stack.enter_context(preserved_training_state(target.model))
        results = run_audit(built, progress=progress, source=source, fresh=fresh, preloaded=preloaded, outputs=outputs)
    if step is not None:
        for res in results:
            res.provenance["step"] = step
    return AuditResult(results, built.out, built)


def _spec_out(spec: SpecLike | None) -> Path:
    """The run folder a spec names (AuditSpec's default when it names none)."""
    if isinstance(spec, AuditSpec):
        return spec.out
    if isinstance(spec, (str, Path)):
        from privaudit.config import load_toml

        raw: Mapping[str, Any] = load_toml(Path(spec))
    else:
        raw = spec or {}
    return Path(str(raw.get("out", AuditSpec.__dataclass_fields__["out"].default)))


def _as_list(targets: Any) -> list[Any]:
    if targets is None:
        return []
    if isinstance(targets, (list, tuple)) and not _is_pair(targets):
        return list(targets)
    return [targets]


def _is_pair(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and is_model_object(value[0])


def _target_specs(items: list[Any], tokenizer: Any, step: int | None,
                  name: str | None = None) -> tuple[list[str], dict[str, Target]]:
    """Spec strings for the audit, and the in-memory targets behind `live:NAME` specs."""
    specs: list[str] = []
    preloaded: dict[str, Target] = {}
    for item in items:
        if isinstance(item, str):
            specs.append(item)
            continue
        model, tok = (item if _is_pair(item) else (item, tokenizer))
        target = load_target(model, tok, name=_unique_name(name, preloaded))
        spec = f"{LIVE_SCHEME}:{target.name}"
        if step is not None and isinstance(target, LiveModelTarget):
            target.name = f"{target.name}@step={step}"  # records and fingerprints per step, one spec
        specs.append(spec)
        preloaded[spec] = target
    return specs, preloaded


def _unique_name(name: str | None, taken: Mapping[str, Any]) -> str:
    base = str(name or "model").replace(":", "_")
    candidate, i = base, 2
    while f"{LIVE_SCHEME}:{candidate}" in taken:
        candidate, i = f"{base}-{i}", i + 1
    return candidate


def resolve_data_params(attack: str, params: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """The attack's parameters with every in-memory data value written to `folder` and named by path.

    The attack's `data_file_params` (e.g. pii's `subjects`, membership's `corpus`) say which
    parameters are data; a path stays a path. Same data, same bytes: a rerun resumes.
    """
    fixed = dict(params)
    for key in getattr(get_attack(attack), "data_file_params", ()):
        value = fixed.get(key)
        if value is not None and not isinstance(value, (str, Path)):
            fixed[key] = str(write_data(value, folder / f"{attack}.{key}.jsonl", where=f"attacks.{attack}.{key}"))
        elif isinstance(value, Path):
            fixed[key] = str(value)
    return fixed


def write_data(data: Any, path: Path, where: str = "data") -> Path:
    """Write subjects or corpus rows (list of DataSubject/dicts, a DataFrame, a Corpus) as JSONL."""
    from privaudit.engine.store import write_text_atomic

    path.parent.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the run folder: user-only, as RunStore makes it
    path.parent.mkdir(exist_ok=True, mode=0o700)
    if callable(getattr(data, "write", None)) and not isinstance(data, pd.DataFrame):  # a Corpus
        data.write(path)
        return path
    if isinstance(data, pd.DataFrame):
        rows: list[Any] = [{k: v for k, v in row.items() if not _missing(v)} for row in data.to_dict("records")]
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes, Mapping)):
        rows = list(data)
    else:
        raise InputError(f"{where}: expected a path, a list of rows or a pandas DataFrame, got {type(data).__name__}")
    lines = []
    for i, row in enumerate(rows):
        if callable(getattr(row, "to_json", None)):
            row = row.to_json()
        elif dataclasses.is_dataclass(row) and not isinstance(row, type):
            row = dataclasses.asdict(row)
        if not isinstance(row, Mapping):
            raise InputError(f"{where}[{i}]: expected a mapping (one subject or document), got {type(row).__name__}")
        lines.append(json.dumps(dict(row), ensure_ascii=False, sort_keys=True, default=str))
    write_text_atomic(path, "".join(line + "\n" for line in lines))
    return path


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value)) if not isinstance(value, (list, tuple, dict)) else False
    except (TypeError, ValueError):
        return False
