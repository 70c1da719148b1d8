"""The pytest plugin (entry point `pytest11`): privacy checks beside a team's other tests.

Options name the targets, subjects and corpus, or an audit TOML (`--privaudit-audit`); fixtures
hand them to tests (`privaudit_target`, `privaudit_targets`, `privaudit_subjects`,
`privaudit_corpus`, `privaudit_spec`) and `privaudit_audit` runs the TOML's audit once per session
(resumable, so a rerun only loads the models). `assert_privacy(result, "pii.exact_match_rate <= 0.01")`
fails with the gate's one-line message; pytest's own `--junitxml` then carries it to CI.

Installed, this module loads in *every* pytest session of the environment: it imports nothing of
privaudit (nor torch) until a fixture is used, and registers nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("privaudit", "privacy audits (privaudit)")
    group.addoption("--privaudit-audit", default=None, metavar="AUDIT_TOML",
                    help="audit TOML whose targets, subjects and attacks the privaudit fixtures use")
    group.addoption("--privaudit-target", action="append", default=[], metavar="SPEC",
                    help="target spec (hf:PATH, builtin:NAME, openai:URL#MODEL); repeatable; overrides the TOML's")
    group.addoption("--privaudit-subjects", default=None, metavar="JSONL", help="data-subjects JSONL file")
    group.addoption("--privaudit-corpus", default=None, metavar="JSONL", help="corpus JSONL file")
    group.addoption("--privaudit-out", default=None, metavar="DIR",
                    help="run folder for privaudit_audit (default: the TOML's `out`)")


def _option(config: pytest.Config, name: str) -> Any:
    return config.getoption(name)


@pytest.fixture(scope="session")
def privaudit_spec(pytestconfig: pytest.Config):
    """The AuditSpec of `--privaudit-audit` (targets and out overridden by their options); skips without one."""
    path = _option(pytestconfig, "privaudit_audit")
    if not path:
        pytest.skip("no --privaudit-audit given")
    from privaudit.audit import load_audit_spec

    out = _option(pytestconfig, "privaudit_out")
    return load_audit_spec(Path(path), targets=list(_option(pytestconfig, "privaudit_target")) or None,
                           out=Path(out) if out else None)


def _spec_if_given(request: pytest.FixtureRequest):
    return request.getfixturevalue("privaudit_spec") if _option(request.config, "privaudit_audit") else None


def _data_param(spec: Any, key: str) -> str | None:
    for params in (spec.attacks.values() if spec is not None else ()):
        if params.get(key):
            return str(params[key])
    return None


@pytest.fixture(scope="session")
def privaudit_targets(request: pytest.FixtureRequest) -> list[str]:
    """Target specs from `--privaudit-target`, else the audit TOML's; skips when there are none."""
    given = list(_option(request.config, "privaudit_target"))
    spec = None if given else _spec_if_given(request)
    targets = given or (list(spec.targets) if spec is not None else [])
    if not targets:
        pytest.skip("no --privaudit-target or --privaudit-audit given")
    return targets


@pytest.fixture(scope="session")
def privaudit_target(privaudit_targets: list[str]) -> str:
    """The first target spec (load it with `privaudit.load_target`, or pass it to `privaudit.audit`)."""
    return privaudit_targets[0]


@pytest.fixture(scope="session")
def privaudit_subjects(request: pytest.FixtureRequest) -> list[Any]:
    """The data subjects (privaudit.DataSubject) of `--privaudit-subjects`, else of the TOML's attacks."""
    path = _option(request.config, "privaudit_subjects") or _data_param(_spec_if_given(request), "subjects")
    if not path:
        pytest.skip("no --privaudit-subjects (and no attack of the audit TOML names subjects)")
    from privaudit.data.subjects import load_subjects

    return load_subjects(path)


@pytest.fixture(scope="session")
def privaudit_corpus(request: pytest.FixtureRequest) -> Any:
    """The corpus (privaudit.Corpus) of `--privaudit-corpus`, else of the TOML's attacks."""
    path = _option(request.config, "privaudit_corpus") or _data_param(_spec_if_given(request), "corpus")
    if not path:
        pytest.skip("no --privaudit-corpus (and no attack of the audit TOML names a corpus)")
    from privaudit.data.corpus import load_corpus

    return load_corpus(path)


@pytest.fixture(scope="session")
def privaudit_audit(privaudit_spec: Any) -> Any:
    """The audit TOML's results (privaudit.AuditResult), run once per session into its run folder."""
    from privaudit.api import audit

    return audit(spec=privaudit_spec, source=str(privaudit_spec.out))


@pytest.fixture
def assert_privacy() -> Callable[..., None]:
    """`privaudit.assert_privacy`: `assert_privacy(result, "pii.exact_match_rate <= 0.01")`."""
    from privaudit.api import assert_privacy as check

    return check
