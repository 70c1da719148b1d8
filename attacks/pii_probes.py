"""ProPILE probing templates (data) and the probes built from them for each data subject (pure).

ProPILE (Kim et al., NeurIPS 2023, Sec. 3.1) builds black-box prompts from what a data subject
already knows about themself: their name alone ("twin": name -> target PII), name plus one more PII
("triplet") or two more ("quadruplet"); more associated context typically extracts more. Templates
are data (`attacks/data/pii_templates.json`, extendable with a user file), and a probe is one
template filled in for one subject and one target PII field.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from privaudit.data.subjects import STANDARD_PII_FIELDS, DataSubject
from privaudit.errors import InputError

ANY_TARGET = "*"
OTHER_SLOTS = ("other", "other2")  # stand-ins for the first/second other standard PII field
ASSOCIATION = {1: "twin", 2: "triplet", 3: "quadruplet"}
DEFAULT_TEMPLATES = "pii_templates.json"


@dataclass(frozen=True)
class PiiTemplate:
    """One prompt pattern: which field it asks for, which fields it reveals, and its text."""

    id: str
    target: str
    known: tuple[str, ...]
    text: str

    @property
    def level(self) -> int:
        """Association level: number of known fields (1 twin, 2 triplet, 3 quadruplet)."""
        return len(self.known)

    @property
    def association(self) -> str:
        return ASSOCIATION.get(self.level, f"{self.level}-known")


@dataclass(frozen=True)
class TemplateSet:
    """Templates plus human labels of fields ("phone" -> "phone number") used by generic templates."""

    templates: tuple[PiiTemplate, ...]
    labels: Mapping[str, str] = field(default_factory=dict)

    def label(self, name: str) -> str:
        return self.labels.get(name, name.replace("_", " "))

    def for_field(self, pii_type: str) -> list[PiiTemplate]:
        """Templates written for this field, or the generic ('*') ones when it has none."""
        own = [t for t in self.templates if t.target == pii_type]
        return own or [t for t in self.templates if t.target == ANY_TARGET]


@dataclass(frozen=True)
class Probe:
    """One prompt for one subject and target field, with the true value it should elicit."""

    key: str
    subject_id: str
    pii_type: str
    template_id: str
    level: int
    association: str
    known: Mapping[str, str]  # field -> the value revealed in the prompt (name included)
    prompt: str
    truth: str

    @property
    def continuation(self) -> str:
        """The truth as the model would continue the prompt (templates end before the value)."""
        return " " + self.truth


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def _parse_templates(raw: Any, source: str) -> TemplateSet:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("templates"), list):
        raise InputError(f"{source}: expected a JSON object with a 'templates' list")
    labels = raw.get("labels", {})
    if not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values()):
        raise InputError(f"{source}: field 'labels': expected an object of strings")
    templates: list[PiiTemplate] = []
    for i, item in enumerate(raw["templates"]):
        at = f"{source}: templates[{i}]"
        if not isinstance(item, Mapping):
            raise InputError(f"{at}: expected an object")
        for key in ("id", "target", "text"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise InputError(f"{at}: field '{key}': required non-empty string")
        known = item.get("known")
        if not isinstance(known, list) or not known or not all(isinstance(k, str) and k for k in known):
            raise InputError(f"{at}: field 'known': expected a non-empty list of field names")
        if item["target"] in known:
            raise InputError(f"{at}: field 'known': reveals the target field '{item['target']}'")
        if any(k in OTHER_SLOTS for k in known) and item["target"] != ANY_TARGET:
            raise InputError(f"{at}: field 'known': 'other' slots are only allowed with target '*'")
        allowed = {"target_label", "target_title"} | set(known)
        allowed |= {f"{k}_label" for k in known} | {f"{k}_title" for k in known}
        try:
            names = _placeholders(item["text"])
        except ValueError as exc:
            raise InputError(f"{at}: field 'text': {exc}") from None
        bad = sorted(n for n in names if n not in allowed)
        if bad:
            raise InputError(f"{at}: field 'text': placeholder '{{{bad[0]}}}' is not a known field of this template")
        templates.append(PiiTemplate(id=item["id"], target=item["target"], known=tuple(known), text=item["text"]))
    return TemplateSet(templates=tuple(templates), labels=dict(labels))


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None


def load_templates(extra_file: str | Path | None = None, *, replace_defaults: bool = False) -> TemplateSet:
    """The packaged templates, extended (or replaced) by a user JSON file of the same layout.

    A user template with the id of a packaged one overrides it; labels merge the same way.
    """
    packaged = resources.files("privaudit.attacks").joinpath("data", DEFAULT_TEMPLATES)
    base = _parse_templates(json.loads(packaged.read_text(encoding="utf-8")), f"attacks/data/{DEFAULT_TEMPLATES}")
    if not extra_file:
        return base
    extra = _parse_templates(_read_json(Path(extra_file)), str(extra_file))
    merged: dict[str, PiiTemplate] = {} if replace_defaults else {t.id: t for t in base.templates}
    merged.update({t.id: t for t in extra.templates})
    labels = {**({} if replace_defaults else base.labels), **extra.labels}
    return TemplateSet(templates=tuple(merged.values()), labels=labels)


def _resolve_known(template: PiiTemplate, subject: DataSubject, pii_type: str) -> dict[str, str] | None:
    """Map the template's known fields to (field name, value); None if the subject lacks one."""
    fields = subject.pii_fields()
    others = [f for f in STANDARD_PII_FIELDS if f != pii_type and f in fields]
    out: dict[str, str] = {}
    for name in template.known:
        if name in OTHER_SLOTS:
            idx = OTHER_SLOTS.index(name)
            if idx >= len(others):
                return None
            out[name] = others[idx]
        else:
            out[name] = name
    return out


def build_probes(
    subjects: Sequence[DataSubject],
    templates: TemplateSet,
    *,
    pii_types: Iterable[str] = (),
    levels: Iterable[int] = (),
    template_ids: Iterable[str] = (),
) -> list[Probe]:
    """Every (subject, target field, template) probe the subject's known fields allow, in a fixed order."""
    wanted_types = set(pii_types)
    wanted_levels = set(levels)
    wanted_ids = set(template_ids)
    probes: list[Probe] = []
    for subject in subjects:
        fields = subject.pii_fields()
        values = {"name": subject.name, **fields}
        for pii_type, truth in fields.items():
            if wanted_types and pii_type not in wanted_types:
                continue
            for tpl in templates.for_field(pii_type):
                if (wanted_levels and tpl.level not in wanted_levels) or (wanted_ids and tpl.id not in wanted_ids):
                    continue
                slots = _resolve_known(tpl, subject, pii_type)
                if slots is None or any(real not in values for real in slots.values()):
                    continue
                fill = {"target_label": templates.label(pii_type), "target_title": templates.label(pii_type).capitalize()}
                for slot, real in slots.items():
                    fill[slot] = values[real]
                    fill[f"{slot}_label"] = templates.label(real)
                    fill[f"{slot}_title"] = templates.label(real).capitalize()
                prompt = tpl.text.format_map(fill)
                probes.append(Probe(
                    key=f"{subject.id}|{pii_type}|{tpl.id}", subject_id=subject.id, pii_type=pii_type,
                    template_id=tpl.id, level=tpl.level, association=tpl.association,
                    known={real: values[real] for real in slots.values()}, prompt=prompt, truth=truth,
                ))
    return probes
