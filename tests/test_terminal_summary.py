"""The terminal summary (privaudit/terminal.py): one compact table per attack, headline metrics only.

The demo's result set (pii on the base and the fine-tune, membership, bias and attribute inference
on SmolLM2, the comparison of five defense variants) reports every metric its attacks declare;
the summary must fit on one screen, show the gate's verdict per metric, and print every metric
with --verbose. The real demo's output is counted in tests/test_demo.py.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd
from rich.console import Console

from privaudit.attacks.base import AttackResult, get_attack
from privaudit.compare import compare_metric_specs
from privaudit.metrics import MetricSpecs, clustered_proportion, point_value
from privaudit.terminal import print_summary

PII_TYPES = ("address", "birthdate", "email", "employer", "phone")
VARIANTS = ("none", "scrub", "dp_sgd", "dp_sgd_subject", "federated")
SCREEN_LINES = 40


def _names(specs: MetricSpecs) -> list[str]:
    """Every current metric name the declarations can produce (families expanded over their members)."""
    out: list[str] = []
    for spec in specs:
        if spec.deprecated_alias_of is not None:
            continue
        if "{pii_type}" in spec.pattern:
            out += [spec.pattern.replace("{pii_type}", t) for t in PII_TYPES]
        elif "{hardness}" in spec.pattern:
            out += [spec.pattern.replace("{hardness}", str(h)) for h in range(1, 6)]
        elif "{" not in spec.pattern:
            out.append(spec.pattern)
    return out


def _result(attack: str, target: str, specs: MetricSpecs | None = None, **provenance) -> AttackResult:
    declared = specs if specs is not None else get_attack(attack).metrics
    metrics = {}
    for i, name in enumerate(_names(declared)):
        kind = declared.find(name).kind
        hits = [j < i % 7 for j in range(20)]
        metrics[name] = point_value(float(i)) if kind in ("point", "count") else \
            clustered_proportion(hits, [j // 2 for j in range(20)])
    return AttackResult(attack=attack, target=target, records=pd.DataFrame(), metrics=metrics, specs=specs,
                        provenance=dict(provenance))


def demo_results() -> list[AttackResult]:
    base, ft, chat = "hf:/runs/demo/setup/public_base", "hf:/runs/demo/setup/finetuned", "smollm2-135m"
    return [_result("pii", base), _result("pii", ft), _result("membership", ft), _result("bias", chat),
            _result("attributes", chat),
            _result("compare", "defenses", compare_metric_specs(VARIANTS), variants=list(VARIANTS))]


def _render(results, tmp_path: Path, **kwargs) -> list[str]:
    buf = io.StringIO()
    print_summary(results, tmp_path, console=Console(file=buf, width=120, highlight=False), **kwargs)
    return buf.getvalue().splitlines()


def test_the_demos_results_fit_on_one_screen_with_gate_status(tmp_path: Path) -> None:
    results = demo_results()
    total = sum(len(r.metrics) for r in results)
    assert total > 150  # the problem: every declared metric reported
    gate = {"checks": [{"attack": "pii", "metric": "exact_match_rate", "target": results[1].target, "status": "fail"},
                       {"attack": "membership", "metric": "auc", "target": results[2].target, "status": "pass"}]}

    lines = _render(results, tmp_path, gate=gate)

    assert len(lines) <= SCREEN_LINES, "\n".join(lines)
    text = "\n".join(lines)
    for title in ("pii on public_base, finetuned", "membership on finetuned", "bias on smollm2-135m",
                  "attributes on smollm2-135m", "compare: 5 defense variants"):
        assert title in text, text
    assert re.search(r"exact_match_rate\s+finetuned\s+\S+\s+\[\S+, \S+\]\s+20\s+FAIL", text), text
    assert re.search(r"^auc\s+finetuned .* PASS", text, re.M), text
    assert "exact_match_rate.email" not in text  # a breakdown, not a headline
    for variant in VARIANTS:
        assert re.search(rf"^{variant}\s", text, re.M), text
    assert lines[-1] == f"run folder: {tmp_path}"


def test_verbose_prints_every_metric(tmp_path: Path) -> None:
    results = demo_results()
    lines = _render(results, tmp_path, verbose=True)
    text = "\n".join(lines)
    assert "exact_match_rate.email" in text and "top1.hardness5" in text
    not_compare = sum(len(r.metrics) for r in results if r.attack != "compare")
    assert len(lines) > not_compare


def test_names_are_shown_as_text_not_markup_or_terminal_escapes(tmp_path: Path) -> None:
    hostile = _result("pii", "hf:/m/[bold]x\x1b[31m")
    lines = _render([hostile], tmp_path)
    assert "\x1b" not in "\n".join(lines)
    assert "[bold]x\\x1b[31m" in lines[0]
