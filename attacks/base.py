"""The Attack contract, the run context passed to every attack, and the attack registry.

An attack turns a target plus data into per-probe records (stored as they are computed, so runs
resume) and a summary derived *only* from those records: metrics with intervals, breakdown tables
and chart data. Reports and the gate read the summary, never the attack's internals.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Hashable, Iterable, Iterator, Mapping, Sequence, TypeVar

import pandas as pd

from privaudit.config import dataclass_from_mapping
from privaudit.engine.cache import CachedTarget, SqliteCache
from privaudit.engine.identity import TargetLedger
from privaudit.engine.store import RunStore, record_key
from privaudit.errors import TargetError
from privaudit.metrics import Estimate, MetricSpecs, with_contract
from privaudit.progress import ProgressReporter
from privaudit.registry import Registry
from privaudit.targets.base import Target, load_target, require

ItemT = TypeVar("ItemT")
OutputT = TypeVar("OutputT")


@dataclass
class RunContext:
    """Everything an attack needs besides the target and its own parameters, passed explicitly."""

    store: RunStore
    seed: int = 0
    batch_size: int = 16
    progress: ProgressReporter = field(default_factory=lambda: ProgressReporter(quiet=True))
    work_dir: Path | None = None  # where an attack may keep artifacts (e.g. learned soft prompts)
    cache: SqliteCache | None = None  # the run's generation/score cache (None: --no-cache)
    ledger: TargetLedger | None = None  # the folder's target fingerprints (None: outside a run folder)

    def load_target(self, spec: str) -> Target:
        """Load a nested target (a baseline, reference model or judge) the way the run loads its own.

        Its fingerprint is checked against the folder's record (or recorded) before it answers a
        probe, so a swapped base model is never mixed into resumed results, and its calls go through
        the run's cache. Close it as usual (`close()` reaches the model).
        """
        target = load_target(spec)
        try:
            if self.ledger is not None:
                self.ledger.admit(spec, target)
        except BaseException:
            target.close()
            raise
        return CachedTarget(target, self.cache) if self.cache is not None else target

    def pending(
        self, attack: str, target: str, items: Iterable[tuple[str, ItemT]]
    ) -> list[tuple[str, ItemT]]:
        """The (item_key, item) pairs not yet in the store: what a resumed run still has to compute."""
        return [(k, it) for k, it in items if not self.store.is_done(record_key(attack, target, k))]

    def probe(
        self,
        attack: str,
        target: str,
        items: Iterable[tuple[str, ItemT]],
        *,
        call: Callable[[list[ItemT]], Sequence[OutputT]],
        record: Callable[[ItemT, OutputT], Mapping[str, Any] | None],
        label: str,
        batch_size: int | None = None,
        sort_key: Callable[[ItemT], Any] | None = None,
        unit: Callable[[ItemT], Hashable] | None = None,
        group: Callable[[ItemT], Any] | None = None,
        weight: Callable[[ItemT], int] | None = None,
    ) -> int:
        """The probe loop every attack runs: pending items -> batches -> one target call each -> records.

        `items` are (item key, item) pairs; those already stored are skipped, so a resumed run
        computes only what is missing. `call(batch)` returns one output per item of the batch
        (usually one target call); `record(item, output)` is the payload stored under the item's
        key (None stores nothing: the item stays pending). Returns how many units were computed.

        - `unit`: items sharing a unit are answered together (the k samples of one conversation,
          the attributes guessed from one author's prompt); batches and progress count units.
        - `sort_key`: order of the pending units (e.g. prompt length, so a batch pads less).
        - `group`: batches never mix two groups, and groups run in sorted order (one generation
          config per round, one soft prompt per PII type).
        - `weight` and `batch_size` (default: the run's): a batch holds units up to `batch_size`
          in total weight (at least one unit); progress counts weight (e.g. generations).
        """
        pending = self.pending(attack, target, items)
        units: dict[Hashable, list[tuple[str, ItemT]]] = {}
        for key, item in pending:
            units.setdefault(unit(item) if unit is not None else key, []).append((key, item))
        ordered = list(units.values())
        if sort_key is not None:
            ordered.sort(key=lambda u: sort_key(u[0][1]))
        if group is not None:
            ordered.sort(key=lambda u: group(u[0][1]))
        size = max(1, batch_size if batch_size is not None else self.batch_size)
        cost = [weight(u[0][1]) if weight is not None else 1 for u in ordered]
        with self.progress.task(label, total=sum(cost)) as advance:
            for batch, batch_cost in _batches_by_weight(ordered, cost, size, group):
                chosen = [pair for u in batch for pair in u]
                outputs = call([item for _, item in chosen])
                if len(outputs) != len(chosen):
                    raise TargetError(f"{label}: {len(outputs)} outputs for {len(chosen)} probes from "
                                      f"target '{target}'")
                for (key, item), output in zip(chosen, outputs):
                    payload = record(item, output)
                    if payload is not None:
                        self.save(attack, target, key, payload)
                advance(batch_cost)
        return len(ordered)

    def save(self, attack: str, target: str, item_key: str, payload: Mapping[str, Any]) -> None:
        """Store one probe record under its resumable key."""
        self.store.append(
            {"key": record_key(attack, target, item_key), "attack": attack, "target": target,
             "item": item_key, **payload}
        )

    def records(self, attack: str, target: str) -> pd.DataFrame:
        """All stored records of this attack on this target (finished in this run or an earlier one)."""
        return pd.DataFrame(list(self.store.iter_records(attack=attack, target=target)))

    def summary_records(self, attack: str, target: str,
                        slim: Callable[[Mapping[str, Any]], Mapping[str, Any]]) -> pd.DataFrame:
        """`records`, streamed through `slim` (drop what the summary never reads: prompts, outputs).

        At a user base's scale the full records do not fit in memory; the slim frame holds a few
        small shared values per record (`privaudit.engine.records.record_frame`).
        """
        from privaudit.engine.records import record_frame

        return record_frame(self.store.iter_records(attack=attack, target=target), slim)


def _batches_by_weight(units: list[list[tuple[str, ItemT]]], cost: list[int], size: int,
                       group: Callable[[ItemT], Any] | None) -> Iterator[tuple[list[list[tuple[str, ItemT]]], int]]:
    """Consecutive runs of units, each within one group and at most `size` in weight (one unit at least)."""
    batch: list[list[tuple[str, ItemT]]] = []
    total = 0
    key: Any = None
    for u, c in zip(units, cost):
        k = group(u[0][1]) if group is not None else None
        if batch and (total + c > size or k != key):
            yield batch, total
            batch, total = [], 0
        batch.append(u)
        total += c
        key = k
    if batch:
        yield batch, total


@dataclass
class AttackResult:
    """Per-probe records, headline metrics with intervals, breakdowns, chart data and provenance.

    `metrics` keys are what gate thresholds name (`pii.exact_match_rate` is metric
    `exact_match_rate` of attack `pii`). `assumptions` states what the probe assumes about the
    attacker (e.g. "knows the subject's name and email"), so a null result is not read as "safe".
    """

    attack: str
    target: str
    records: pd.DataFrame
    metrics: dict[str, Estimate]
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    charts: dict[str, Any] = field(default_factory=dict)
    assumptions: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    # The metric contract; None = the registered attack's `metrics` declaration.
    specs: MetricSpecs | None = None
    # How many records the result summarizes, where `records` holds only some of them (an
    # out-of-core summary keeps the listed subjects' records: attacks/pii_sql.py); None = len(records).
    record_count: int | None = None

    def metric_specs(self) -> MetricSpecs:
        return self.specs if self.specs is not None else get_attack(self.attack).metrics

    def contracted_metrics(self) -> dict[str, dict[str, Any]]:
        """Each metric's numbers with its declared kind, direction and unit (what the gate reads).

        A metric its attack did not declare is a bug in that attack, not a user error: it raises.
        """
        specs = self.metric_specs()
        out: dict[str, dict[str, Any]] = {}
        for name, est in self.metrics.items():
            spec = specs.find(name)
            if spec is None:
                raise ValueError(f"attack '{self.attack}' reported metric '{name}' that it does not declare "
                                 f"(declared: {', '.join(specs.patterns()) or 'none'})")
            out[name] = with_contract(name, est, spec)
        return out

    def to_summary(self) -> dict[str, Any]:
        """The JSON-able part (records stay in results.jsonl)."""
        return {
            "attack": self.attack,
            "target": self.target,
            "metrics": self.contracted_metrics(),
            "tables": self.tables,
            "charts": self.charts,
            "assumptions": self.assumptions,
            "provenance": self.provenance,
            "num_records": int(len(self.records) if self.record_count is None else self.record_count),
        }


class _DeprecatedClassAlias:
    """A class attribute read under its old name: returns the new attribute, with a DeprecationWarning."""

    def __init__(self, new_name: str) -> None:
        self.new_name = new_name

    def __set_name__(self, owner: type, name: str) -> None:
        self.old_name = name

    def __get__(self, instance: Any, owner: type) -> Any:
        warnings.warn(f"`{owner.__qualname__}.{self.old_name}` is deprecated, read `{self.new_name}` "
                      "(the old name is read until privaudit 0.3)", DeprecationWarning, stacklevel=2)
        return getattr(owner, self.new_name)


class Attack(ABC):
    """Base of every attack: a name, a frozen params dataclass, the capabilities it needs, `run`."""

    name: ClassVar[str]
    Params: ClassVar[type]
    # Every metric `summarize` can report (name patterns with kind, direction, unit): thresholds
    # are checked against it when the audit spec loads, and summary.json carries it per metric.
    metrics: ClassVar[MetricSpecs] = MetricSpecs()
    requires: ClassVar[frozenset[str]] = frozenset({"generate"})
    # Record columns that hold raw PII (the true values a probe looks for, e.g. "truth", "known"):
    # reports mask every value found in them wherever it appears, unless --show-pii. Not to be
    # confused with `DataSubject.pii_fields()`, a subject's field -> value map.
    pii_record_fields: ClassVar[frozenset[str]] = frozenset()
    # The name of `pii_record_fields` before 0.2: still read (with a DeprecationWarning) for one release.
    pii_fields: ClassVar[frozenset[str]] = _DeprecatedClassAlias("pii_record_fields")  # type: ignore[assignment]
    # Params fields naming data files the attack reads (subjects, corpus, templates...): their sha256
    # is part of the run's identity, so a resumed run notices an edited file (see `data_files`).
    data_file_params: ClassVar[tuple[str, ...]] = ()
    # Params fields holding another target's spec (baseline, reference, judge): checked when the spec
    # loads, loaded with `RunContext.load_target`, fingerprinted like the audited targets.
    target_params: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "pii_fields" in cls.__dict__ and "pii_record_fields" not in cls.__dict__:
            # A plugin written before the rename: its declared columns are still masked.
            warnings.warn(f"{cls.__module__}.{cls.__qualname__}: `pii_fields` is deprecated, declare "
                          "`pii_record_fields` (the old name is read until privaudit 0.3)",
                          DeprecationWarning, stacklevel=2)
            cls.pii_record_fields = frozenset(cls.__dict__["pii_fields"])

    def __init__(self, params: Any) -> None:
        self.params = params

    def data_files(self) -> list[Path]:
        """The data files this configured attack reads; empty fields (= the packaged default) are skipped.

        Override when the files are not plain Params fields (e.g. a list of paths).
        """
        return [Path(str(v)) for name in self.data_file_params if (v := getattr(self.params, name))]

    def nested_targets(self) -> dict[str, str]:
        """Params field -> target spec, for each nested target this configured attack will load."""
        return {name: str(v) for name in self.target_params if (v := getattr(self.params, name))}

    @classmethod
    def from_config(cls, mapping: Mapping[str, Any], where: str) -> "Attack":
        """Validate a config table into Params; unknown keys and wrong types name the key path."""
        return cls(dataclass_from_mapping(cls.Params, mapping, where))

    def check_target(self, target: Target) -> None:
        for cap in sorted(self.requires):
            require(target, cap, self.name)

    @abstractmethod
    def run(self, target: Target, ctx: RunContext) -> AttackResult:
        """Compute the pending probes (storing each record), then `summarize` all stored records."""

    @abstractmethod
    def summarize(self, target_name: str, records: pd.DataFrame) -> AttackResult:
        """Derive metrics, tables and chart data from records alone (reports re-run this)."""

    def summarize_stored(self, target_name: str, records: Callable[[], Iterable[Mapping[str, Any]]]) -> AttackResult:
        """`summarize` of stored records, given as a function returning a fresh stream of them.

        `privaudit report` re-renders through this. The default loads them into one DataFrame; an
        attack whose runs reach a user base's size overrides it to aggregate out of core (the PII
        attack: attacks/pii_sql.py), so a re-render does not hold every record.
        """
        return self.summarize(target_name, pd.DataFrame(list(records())))


def _check_attack(name: str, cls: type[Attack]) -> None:
    """What the audit runner relies on: an Attack subclass named `name`, with Params and declared metrics."""
    if not (isinstance(cls, type) and issubclass(cls, Attack)):
        raise TypeError(f"attack '{name}': {cls!r} is not a subclass of privaudit.attacks.base.Attack")
    if getattr(cls, "name", None) != name:
        raise ValueError(f"attack '{name}': its class is named {getattr(cls, 'name', None)!r}")
    if not isinstance(getattr(cls, "Params", None), type):
        raise TypeError(f"attack '{name}': needs a `Params` dataclass")
    if not isinstance(cls.metrics, MetricSpecs):
        raise TypeError(f"attack '{name}': `metrics` must be a MetricSpecs (privaudit.metrics.metric_specs)")


# Built-in attack name -> module that registers it, imported on first use (some pull heavy
# dependencies); outside packages add attacks through the `privaudit.attacks` entry-point group.
ATTACKS: Registry[type[Attack]] = Registry(
    "attack", "privaudit.attacks",
    builtins={
        "pii": "privaudit.attacks.pii_extraction",
        "attributes": "privaudit.attacks.attribute_inference",
        "bias": "privaudit.attacks.personalization_bias",
        "membership": "privaudit.attacks.membership",
        "dp_audit": "privaudit.attacks.dp_audit",
        "context": "privaudit.attacks.context_extraction",
        "cross_user": "privaudit.attacks.cross_user",
        "reconstruct": "privaudit.attacks.pii_reconstruction",
    },
    validate=_check_attack,
)


def register_attack(cls: type[Attack]) -> type[Attack]:
    """Class decorator: make an attack available by its `name` in configs and the CLI."""
    return ATTACKS.add(cls.name, cls)


def get_attack(name: str) -> type[Attack]:
    """The attack class registered as `name`; unknown names are a one-line InputError listing the known."""
    return ATTACKS.get(name)


def available_attacks() -> list[str]:
    """Every known attack name (built-ins and allowed plugins), without importing their modules."""
    return ATTACKS.names()


def batched(items: Sequence[ItemT], size: int) -> Iterable[Sequence[ItemT]]:
    """Consecutive slices of at most `size` items."""
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]
