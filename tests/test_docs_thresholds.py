"""Every threshold the documentation shows names a metric an attack declares, so the docs cannot drift.

Sources: README.md's ```toml blocks (their `[thresholds]` tables), the commented `[thresholds]`
examples in README.md's ```yaml block and in docs/*.yml, and the metric names the README's attack
table lists "for thresholds". Each is checked with `gate.check_thresholds` against the attacks'
`metrics` declarations (imported lazily through the attack registry, the way a spec load does;
the `compare` pseudo-result through `compare_metric_specs`). Nothing is skipped: a threshold on an
attack that declares nothing fails here, naming it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from privaudit.gate import check_thresholds, flatten_thresholds, parse_metric_path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
COMMENTED_ASSIGNMENT = re.compile(r'^\s*("[^"]+"|[A-Za-z0-9_.@-]+)\s*=\s*(".*?"|\{.*?\})')


def fenced_blocks(text: str, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang == language]


DIFF_BLOCK = "# diff.toml"  # a ```toml block opening with this line holds `privaudit diff`'s change thresholds


def toml_thresholds(block: str) -> dict[str, Any]:
    if block.startswith(DIFF_BLOCK):
        return {}  # change conditions ({max_increase = ...}), checked by test_every_documented_change_threshold...
    return dict(tomllib.loads(block).get("thresholds") or {})


def commented_thresholds(text: str) -> dict[str, Any]:
    """The `[thresholds]` example inside `#` comments (YAML): the assignment lines after it, as TOML."""
    found: dict[str, Any] = {}
    lines = [line.split("#", 1)[1] if line.lstrip().startswith("#") else None for line in text.splitlines()]
    for i, line in enumerate(lines):
        if line is None or line.strip() != "[thresholds]":
            continue
        body = []
        for follow in lines[i + 1:]:
            match = COMMENTED_ASSIGNMENT.match(follow or "")
            if not match:
                break
            body.append(f"{match.group(1)} = {match.group(2)}")
        found.update(tomllib.loads("[thresholds]\n" + "\n".join(body))["thresholds"])
    return found


def table_metric_names(text: str) -> dict[str, Any]:
    """`attack.metric` names in the README's attack table column "metric names (for thresholds)"."""
    names: dict[str, Any] = {}
    header = next(line for line in text.splitlines() if "metric names (for thresholds)" in line)
    start = text.index(header)
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cell = line.rstrip().rstrip("|").rsplit("|", 1)[-1]
        for name in re.findall(r"`([a-z_]+\.[A-Za-z0-9_.{}]+)`", cell):
            names[name] = "<= 1"
    return names


def documented_thresholds() -> list[tuple[str, dict[str, Any]]]:
    """(where, thresholds) for every place the docs show thresholds."""
    readme = README.read_text(encoding="utf-8")
    out = [(f"README.md ```toml block {i + 1}", t) for i, b in enumerate(fenced_blocks(readme, "toml"))
           if (t := toml_thresholds(b))]
    out += [(f"README.md ```yaml block {i + 1}", t) for i, b in enumerate(fenced_blocks(readme, "yaml"))
            if (t := commented_thresholds(b))]
    out.append(("README.md attack table", table_metric_names(readme)))
    for path in sorted((ROOT / "docs").glob("*.yml")) + sorted((ROOT / "docs").glob("*.yaml")):
        if found := commented_thresholds(path.read_text(encoding="utf-8")):
            out.append((f"docs/{path.name}", found))
    return out


def declared_for(thresholds: dict[str, Any]) -> dict[str, tuple[Any, list[str]]]:
    """Each named attack's metric declarations, found by name as a spec load finds them (lazily)."""
    from privaudit.attacks.base import get_attack
    from privaudit.compare import COMPARE_ATTACK, compare_metric_specs

    declared = {}
    for key in flatten_thresholds(thresholds):
        attack = parse_metric_path(key, "docs")[0]
        if attack not in declared:
            declared[attack] = (compare_metric_specs() if attack == COMPARE_ATTACK else get_attack(attack).metrics, [])
    return declared


def test_the_docs_show_thresholds_where_expected():
    places = dict(documented_thresholds())
    assert any(k.startswith("README.md ```toml") for k in places)
    assert any(k.startswith("README.md ```yaml") for k in places) and "docs/github-actions-privaudit.yml" in places
    assert len(places["README.md attack table"]) >= 10
    assert sum(len(t) for t in places.values()) >= 20


@pytest.mark.parametrize("where, thresholds", documented_thresholds(), ids=lambda x: x if isinstance(x, str) else "")
def test_every_documented_threshold_names_a_declared_metric(where, thresholds):
    declared = declared_for(thresholds)
    for attack, (specs, _) in declared.items():
        assert len(specs), f"{where}: attack '{attack}' declares no metrics"
    check_thresholds(thresholds, declared, where=where)


def test_the_extractor_finds_a_drifted_name():
    text = '# e.g.\n#   [thresholds]\n#   "bias.max_gap" = "<= 0.10"\n#   attributes.top1 = "<= 0.3"\n# done\n'
    assert commented_thresholds(text) == {"bias.max_gap": "<= 0.10", "attributes": {"top1": "<= 0.3"}}
    from privaudit.errors import InputError

    with pytest.raises(InputError, match="has no metric 'top9'"):
        check_thresholds({"attributes.top9": "<= 1"}, declared_for({"attributes.top9": "<= 1"}))


def test_the_workflow_examples_use_current_metric_names():
    """README.md and docs/*.yml show no metric name that a rename deprecated."""
    for where, thresholds in documented_thresholds():
        for attack, (specs, _) in declared_for(thresholds).items():
            for key in flatten_thresholds(thresholds):
                name, metric, _ = parse_metric_path(key, where)
                if name == attack:
                    assert specs.current_name(metric) == metric, f"{where}: {key} is an old name"


def test_every_documented_change_threshold_names_a_declared_metric():
    """README.md's diff.toml blocks: validated as `privaudit diff` loads them (privaudit.diff)."""
    from privaudit.diff import parse_change_thresholds

    blocks = [b for b in fenced_blocks(README.read_text(encoding="utf-8"), "toml") if b.startswith(DIFF_BLOCK)]
    assert blocks
    for block in blocks:
        assert parse_change_thresholds(tomllib.loads(block)["thresholds"], where="README.md diff.toml")
