"""Inference-time defense: redact PII in what a model shows users, with Presidio.

`OutputFilterTarget(inner, ...)` forwards generation and chat to `inner` in one batched call and
runs every output through `privaudit.pii.anonymize` (pattern recognizers, an NER model when one is
installed, and optionally the data subjects' known values as an exact-match list) before returning
it. The model is unchanged: it still memorized what it memorized; only the text channel is filtered.

Why `score` passes through unchanged: teacher-forced log-likelihoods measure the *model*, not the
text shown to users. A filter cannot redact a probability, so likelihood-based attacks (ProPILE's
likelihood probe, exposure, membership) see the same model with or without it; that is the honest
reading of the defense (it protects deployed text channels, not the weights or an API that returns
logprobs). For the same reason the wrapper drops the `gradients` capability: white-box access
bypasses any output filter by definition, so white-box attacks are refused (exit 3) rather than
reported as "defended".

As a spec: `output_filter:FILE.json` where the JSON holds `{"inner": SPEC, "entities": [...] | null,
"operator": "replace", "subjects": JSONL | null, "known_fields": [...]}`; `privaudit compare`
writes that file for its `output_filter` variant so the same audit runner loads it like any target.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Mapping, Sequence

from privaudit.defenses.registry import DefendedModel, Defense, DefenseContext, register_defense
from privaudit.errors import InputError
from privaudit.targets.base import GRADIENTS, GenerationConfig, Message, Target, load_target, register_target

FILTER_FILE = "filter.json"


@dataclass(frozen=True)
class OutputFilterConfig:
    """What the filter redacts and how; `wraps` names the compare variant whose model it serves."""

    wraps: str = "none"
    operator: Literal["replace", "mask", "hash"] = "replace"
    entities: tuple[str, ...] | None = None
    known_fields: tuple[str, ...] = ()
    score_threshold: float = 0.4
    use_ner: bool | None = None


class OutputFilterTarget:
    """A Target whose generations and chat replies have PII redacted; `score` is passed through."""

    def __init__(
        self,
        inner: Target,
        entities: Sequence[str] | None = None,
        known_values: Mapping[str, Sequence[str]] | None = None,
        *,
        operator: Literal["replace", "mask", "hash"] = "replace",
        score_threshold: float = 0.4,
        use_ner: bool | None = None,
    ) -> None:
        self.inner = inner
        self.entities = tuple(entities) if entities else None
        self.known_values = {k: list(v) for k, v in (known_values or {}).items()}
        self.operator = operator
        self.score_threshold = score_threshold
        self.use_ner = use_ner
        self.name = f"{inner.name}+output_filter"
        self.capabilities = frozenset(inner.capabilities) - {GRADIENTS}
        self.redactions: dict[str, int] = {}  # spans redacted so far, per entity type

    def fingerprint(self) -> str:
        """Inner fingerprint plus the filter settings (known values hashed, never stored)."""
        settings = json.dumps({"entities": self.entities, "operator": self.operator, "threshold": self.score_threshold,
                               "ner": self.use_ner, "known": sorted((k, sorted(v)) for k, v in self.known_values.items())},
                              sort_keys=True)
        digest = hashlib.sha256(f"{self.inner.fingerprint()}\x1f{settings}".encode()).hexdigest()
        return f"output-filter:{digest[:16]}"

    def _redact(self, outputs: list[list[str]]) -> list[list[str]]:
        from privaudit.pii import anonymize

        flat = [text for samples in outputs for text in samples]
        if not flat:
            return outputs
        cleaned, counts = anonymize(flat, operator=self.operator, entities=self.entities,
                                    known_values=self.known_values or None, score_threshold=self.score_threshold,
                                    use_ner=self.use_ner)
        for entity, n in counts.items():
            self.redactions[entity] = self.redactions.get(entity, 0) + n
        it = iter(cleaned)
        return [[next(it) for _ in samples] for samples in outputs]

    def generate(self, prompts: Sequence[str], cfg: GenerationConfig) -> list[list[str]]:
        return self._redact(self.inner.generate(prompts, cfg))

    def chat(self, conversations: Sequence[Sequence[Message]], cfg: GenerationConfig) -> list[list[str]]:
        return self._redact(self.inner.chat(conversations, cfg))

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        return self.inner.score(prompts, continuations)

    def token_logprobs(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[list[float]]:
        return self.inner.token_logprobs(prompts, continuations)  # the model's, like `score` (see above)

    def token_distributions(self, prompts: Sequence[str], continuations: Sequence[str]) -> list:
        return self.inner.token_distributions(prompts, continuations)  # the model's, like `score`

    def echo_logprobs(self, texts: Sequence[str], top_k: int = 0) -> list:
        return self.inner.echo_logprobs(texts, top_k)

    def close(self) -> None:
        self.inner.close()

    def __repr__(self) -> str:
        return f"OutputFilterTarget({self.inner!r}, entities={self.entities}, operator={self.operator!r})"


def write_filter_spec(out_dir: Path, inner_spec: str, cfg: OutputFilterConfig, subjects_path: Path | None) -> str:
    """Write `filter.json` into `out_dir` and return the `output_filter:` spec that loads it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"inner": inner_spec, "operator": cfg.operator,
               "entities": list(cfg.entities) if cfg.entities else None,
               "known_fields": list(cfg.known_fields), "score_threshold": cfg.score_threshold,
               "use_ner": cfg.use_ner,
               "subjects": str(Path(subjects_path).resolve()) if subjects_path and cfg.known_fields else None}
    path = (out_dir / FILTER_FILE).resolve()
    if ":" in str(path):
        raise InputError(f"{path}: an output_filter spec path may not contain ':'")
    path.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return f"output_filter:{path}"


@register_target("output_filter")
def output_filter_factory(location: str, options: Mapping[str, str]) -> OutputFilterTarget:
    """Load `output_filter:FILE.json`: the inner target plus filter settings."""
    from privaudit.data.subjects import load_subjects
    from privaudit.defenses.scrub import known_values_by_entity

    if options:
        raise InputError(f"target 'output_filter:{location}': options go into the JSON file, not the spec")
    path = Path(location)
    if not path.is_file():
        raise InputError(f"{path}: output filter file does not exist")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("inner"), str):
        raise InputError(f"{path}: field 'inner' (the wrapped target spec) is required")
    known = None
    if spec.get("subjects") and spec.get("known_fields"):
        known = known_values_by_entity(load_subjects(spec["subjects"]), spec["known_fields"])
    return OutputFilterTarget(
        load_target(spec["inner"]), spec.get("entities"), known,
        operator=spec.get("operator", "replace"), score_threshold=float(spec.get("score_threshold", 0.4)),
        use_ner=spec.get("use_ner"),
    )


@register_defense
class OutputFilterDefense(Defense):
    """Presidio output filter over another variant's model (no training)."""

    name = "output_filter"
    Params = OutputFilterConfig

    def wrapped_variant(self) -> str:
        return self.params.wraps

    def apply(self, ctx: DefenseContext) -> DefendedModel:
        config, inner = self.params, ctx.inner
        if inner is None:
            raise InputError(f"defenses.output_filter.wraps: variant '{config.wraps}' was not built")
        spec = write_filter_spec(ctx.out_dir, inner.target_spec, config, ctx.subjects_path)
        record = DefendedModel(name=self.name, target_spec=spec, out_dir=Path(ctx.out_dir), training=inner.training,
                               notes=(f"wraps variant '{config.wraps}' (same weights); generations redacted by "
                                      f"Presidio ({config.operator}); scores pass through",
                                      f"filter settings: {json.dumps(asdict(config), default=str)}"))
        record.save()
        return record
