"""An outside package joins audits and comparisons through entry points, as the README shows.

README's "Writing a plugin" example is written to a temporary folder as a distribution (its own
pyproject.toml declaring one attack in `privaudit.attacks` and one defense in
`privaudit.defenses`, and the module defining them), pip-installed into this test's
environment, then driven through the installed `privaudit` command: its attack in `privaudit run`
with a gate threshold on the metric it declares, its defense in `privaudit compare` next to the
built-in pii attack. `PRIVAUDIT_PLUGINS` is checked on the way (`none` = built-ins only; a list of
entry-point or distribution names). The distribution is uninstalled whatever happens.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import sysconfig
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest
import tomli_w

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
DIST = "privaudit-echo-plugin"
MODULE = "privaudit_echo_plugin"


def readme_example() -> tuple[str, str]:
    """The pyproject.toml and the module of README.md's "Writing a plugin" section: the test runs the docs."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Writing a plugin"):]
    section = section[:section.index("\n## ", 1)]
    blocks = dict((lang, body) for lang, body in reversed(FENCE.findall(section)))  # the first of each language
    assert f'name = "{DIST}"' in blocks["toml"] and f'py-modules = ["{MODULE}"]' in blocks["toml"]
    return blocks["toml"], blocks["python"]


def _offline_build_possible() -> bool:
    """Whether this environment can build the plugin's wheel itself (no PyPI for build isolation):
    setuptools >= 70.1 writes wheels alone, older ones need the `wheel` package."""
    try:
        major, minor = (int(x) for x in version("setuptools").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
                          capture_output=True, text=True, timeout=600)


def _privaudit(*args: str, plugins: str | None = None) -> subprocess.CompletedProcess:
    """The installed `privaudit` command of this environment, as a user runs it."""
    script = Path(sysconfig.get_path("scripts")) / "privaudit"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "privaudit.cli"]
    env = {k: v for k, v in os.environ.items() if k != "PRIVAUDIT_PLUGINS"}
    if plugins is not None:
        env["PRIVAUDIT_PLUGINS"] = plugins
    return subprocess.run([*command, "-q", *args], capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The plugin distribution, pip-installed for this module's tests and uninstalled afterwards."""
    src = tmp_path_factory.mktemp("plugin_src")
    pyproject, module = readme_example()
    (src / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    (src / f"{MODULE}.py").write_text(module, encoding="utf-8")
    isolation = ["--no-build-isolation"] if _offline_build_possible() else []  # else pip fetches setuptools
    try:
        done = _pip("install", "--no-deps", *isolation, str(src))
        assert done.returncode == 0, done.stdout + done.stderr
        yield DIST
    finally:
        undone = _pip("uninstall", "-y", DIST)
    assert undone.returncode == 0 and _pip("show", DIST).returncode != 0, undone.stdout + undone.stderr


@pytest.fixture(scope="module")
def plugin_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Three synthetic subjects and a small corpus about them (for compare and the pii attack)."""
    from privaudit.data.corpus import generate_corpus
    from privaudit.data.subjects import generate_subjects, write_subjects

    folder = tmp_path_factory.mktemp("plugin_data")
    subjects = generate_subjects(3, seed=0)
    write_subjects(folder / "subjects.jsonl", subjects)
    generate_corpus(subjects, seed=0, docs_per_subject=2, filler_docs=4).write(folder / "corpus.jsonl")
    return folder / "subjects.jsonl", folder / "corpus.jsonl"


def _one_line(result: subprocess.CompletedProcess) -> str:
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], result.stdout + result.stderr
    return lines[0]


def test_plugin_attack_runs_in_an_audit_and_is_gated_on_its_declared_metric(installed_plugin, tiny_model_dir,
                                                                           tmp_path: Path) -> None:
    audit = tmp_path / "audit.toml"
    audit.write_text(tomli_w.dumps({
        "targets": [f"hf:{tiny_model_dir}"], "out": str(tmp_path / "run"), "batch_size": 4,
        "attacks": {"echo": {"words": ["apple", "river", "stone"], "max_new_tokens": 6}},
        "thresholds": {"echo.echo_rate": "<= 1.0"},
    }), encoding="utf-8")
    result = _privaudit("run", str(audit), "--gate")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text(encoding="utf-8"))
    (echo,) = [r for r in summary["results"] if r["attack"] == "echo"]
    rate = echo["metrics"]["echo_rate"]
    assert rate["kind"] == "proportion" and rate["unit"] == "prompt" and rate["n"] == 3  # its declared contract
    assert summary["gate"]["status"] == "pass"
    assert any("echo.echo_rate" in json.dumps(c) for c in summary["gate"]["checks"])

    # Built-ins only: the plugin's attack is unknown, in one line, before any model loads.
    line = _one_line(_privaudit("run", str(audit), "--fresh", plugins="none"))
    assert "unknown attack 'echo' (known: attributes, bias, context, cross_user, dp_audit, membership, pii, reconstruct)" in line
    # A threshold on a metric the plugin does not declare fails at load, listing what it declares.
    audit.write_text(audit.read_text(encoding="utf-8").replace('"echo.echo_rate"', '"echo.repeat_rate"'),
                     encoding="utf-8")
    line = _one_line(_privaudit("run", str(audit), plugins="echo"))
    assert "has no metric 'repeat_rate'" in line and "echo_rate" in line


def test_plugin_defense_joins_a_comparison(installed_plugin, plugin_data, tiny_model_dir, tmp_path: Path) -> None:
    subjects, corpus = plugin_data
    spec = {
        "base": f"hf:{tiny_model_dir}", "corpus": str(corpus), "subjects": str(subjects), "out": str(tmp_path / "cmp"),
        "batch_size": 8, "defenses": {"control": {"defense": "passthrough"}},
        "attacks": {"pii": {"pii_types": ["email"], "max_new_tokens": 8, "max_subjects": 2},
                    "echo": {"words": ["apple", "river"]}},
    }
    config = tmp_path / "compare.toml"
    config.write_text(tomli_w.dumps(spec), encoding="utf-8")
    result = _privaudit("compare", "--config", str(config), plugins=installed_plugin)  # by distribution name
    assert result.returncode == 0, result.stdout + result.stderr
    table = pd.read_csv(tmp_path / "cmp" / "comparison.csv").set_index("variant")
    row = table.loc["control"]
    assert row["defense"] == "passthrough" and row["target"] == f"hf:{Path(tiny_model_dir).resolve()}"
    assert 0.0 <= row["pii.exact_match_rate"] <= 1.0 and row["pii.exact_match_rate.n"] > 0
    assert 0.0 <= row["echo.echo_rate"] <= 1.0 and row["echo.echo_rate.n"] == 2
    defended = json.loads((tmp_path / "cmp" / "variants" / "control" / "defended.json").read_text(encoding="utf-8"))
    assert defended["notes"] == ["the base model, unchanged"]

    # Only the attack's entry point allowed: the defense is unknown, in one line, before anything runs.
    spec["out"] = str(tmp_path / "cmp2")
    config.write_text(tomli_w.dumps(spec), encoding="utf-8")
    line = _one_line(_privaudit("compare", "--config", str(config), plugins="echo"))
    assert "unknown defense 'passthrough' (known: dp_sgd, federated, federated_dp, none, output_filter, rag, scrub)" in line
