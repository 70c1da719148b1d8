"""privaudit: audit personalized language models for privacy and safety before they ship.

The public Python API (README "Using privaudit from Python"). Names load lazily on first use, so
`import privaudit` stays cheap (no torch, transformers or pandas until a name needs them): the
pytest plugin and the CLI's `--help` import this package in every session.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it (imported when the name is first read)
_EXPORTS: dict[str, str] = {
    # audits and results
    "audit": "privaudit",  # the module privaudit/audit.py, callable as privaudit.api.audit (see there)
    "load_target": "privaudit.api",
    "AuditResult": "privaudit.api",
    "Metric": "privaudit.api",
    "assert_privacy": "privaudit.api",
    "AuditSpec": "privaudit.audit",
    "load_audit_spec": "privaudit.audit",
    "run_audit": "privaudit.audit",
    # training loops
    "audit_during_training": "privaudit.training",
    "TrainingAudit": "privaudit.training",
    "PrivacyAuditCallback": "privaudit.training_callback",
    # targets
    "Target": "privaudit.targets.base",
    "GenerationConfig": "privaudit.targets.base",
    "LiveModelTarget": "privaudit.live",
    "register_target": "privaudit.targets.base",
    # attacks
    "Attack": "privaudit.attacks.base",
    "AttackResult": "privaudit.attacks.base",
    "RunContext": "privaudit.attacks.base",
    "register_attack": "privaudit.attacks.base",
    "get_attack": "privaudit.attacks.base",
    "available_attacks": "privaudit.attacks.base",
    # defenses and their comparison
    "Defense": "privaudit.defenses.registry",
    "register_defense": "privaudit.defenses.registry",
    "get_defense": "privaudit.defenses.registry",
    "available_defenses": "privaudit.defenses.registry",
    "CompareSpec": "privaudit.compare",
    "load_compare_spec": "privaudit.compare",
    "run_comparison": "privaudit.compare",
    # data
    "DataSubject": "privaudit.data.subjects",
    "generate_subjects": "privaudit.data.subjects",
    "load_subjects": "privaudit.data.subjects",
    "Corpus": "privaudit.data.corpus",
    "generate_corpus": "privaudit.data.corpus",
    "load_corpus": "privaudit.data.corpus",
    # the embedded personalized model (demo, tests, README example)
    "build_personalized_setup": "privaudit.personalized",
    "PersonalizationRecipe": "privaudit.personalized",
    # gate and reports
    "GateOutcome": "privaudit.gate",
    "write_reports": "privaudit.reports",
    # errors
    "PrivauditError": "privaudit.errors",
    "InputError": "privaudit.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'privaudit' has no attribute {name!r}")
    if module == __name__:  # a submodule that is also a public callable (privaudit.audit)
        return importlib.import_module(f"{__name__}.{name}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later reads skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from privaudit.api import AuditResult, Metric, assert_privacy, audit, load_target  # noqa: F401
    from privaudit.attacks.base import (  # noqa: F401
        Attack, AttackResult, RunContext, available_attacks, get_attack, register_attack)
    from privaudit.audit import AuditSpec, load_audit_spec, run_audit  # noqa: F401
    from privaudit.compare import CompareSpec, load_compare_spec, run_comparison  # noqa: F401
    from privaudit.data.corpus import Corpus, generate_corpus, load_corpus  # noqa: F401
    from privaudit.data.subjects import DataSubject, generate_subjects, load_subjects  # noqa: F401
    from privaudit.defenses.registry import Defense, available_defenses, get_defense, register_defense  # noqa: F401
    from privaudit.errors import InputError, PrivauditError  # noqa: F401
    from privaudit.gate import GateOutcome  # noqa: F401
    from privaudit.live import LiveModelTarget  # noqa: F401
    from privaudit.personalized import PersonalizationRecipe, build_personalized_setup  # noqa: F401
    from privaudit.reports import write_reports  # noqa: F401
    from privaudit.targets.base import GenerationConfig, Target, register_target  # noqa: F401
    from privaudit.training import TrainingAudit, audit_during_training  # noqa: F401
    from privaudit.training_callback import PrivacyAuditCallback  # noqa: F401
