"""`privaudit diff RUN_A RUN_B`: the same audit on the demo's public base and on its fine-tune.

Two real run folders (the memorized setup the demo builds), the diff through the CLI: the
fine-tune leaks more than the base (paired change, exit 1 under `max_increase = 0.0`), the
fine-tune against itself changes nothing (exit 0), malformed thresholds and runs of different
audits are one-line input errors (exit 2), and a run folder that did not finish is refused (exit 3).
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import tomli_w
from click.testing import CliRunner

from privaudit.cli import main

THRESHOLDS = '[thresholds]\n"pii.exact_match_rate" = {max_increase = 0.0}\n"pii.likelihood_top1_rate" = {max_increase = 0.0}\n'


@pytest.fixture(scope="module")
def runs(memorized_setup, tmp_path_factory) -> dict[str, Path]:
    """The same audit (pii with likelihood on the email field, membership) on base and fine-tune."""
    root = tmp_path_factory.mktemp("diff")
    out: dict[str, Path] = {}
    attacks = {"pii": {"subjects": str(memorized_setup.subjects_path), "likelihood": True, "pii_types": ["email"],
                       "max_new_tokens": 24},
               "membership": {"corpus": str(memorized_setup.corpus_path), "canaries": False, "bootstrap": 100}}
    for name, target in (("base", memorized_setup.base_spec), ("finetuned", memorized_setup.finetuned_spec)):
        path = root / f"{name}.toml"
        path.write_text(tomli_w.dumps({"targets": [target], "out": str(root / name), "seed": 0, "attacks": attacks}),
                        encoding="utf-8")
        result = CliRunner().invoke(main, ["-q", "run", str(path)])
        assert result.exit_code == 0, result.output
        out[name] = root / name
    (root / "diff.toml").write_text(THRESHOLDS, encoding="utf-8")
    out["config"] = root / "diff.toml"
    return out


def _subject_field_hits(run: Path) -> dict[tuple[str, str], tuple[float, str]]:
    """(subject, field) -> (1.0 when some template produced the email verbatim, subject): from the records."""
    hits: dict[tuple[str, str], float] = {}
    for line in (run / "results.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec.get("attack") == "pii" and rec.get("kind") == "extract":
            key = (rec["subject_id"], rec["pii_type"])
            hits[key] = max(hits.get(key, 0.0), float(bool(rec["exact"])))
    return {k: (v, k[0]) for k, v in hits.items()}


@pytest.mark.slow
def test_the_fine_tune_leaks_more_than_its_base_paired_by_probe_exit_1(runs, tmp_path: Path) -> None:
    from privaudit.metrics import paired_difference

    result = CliRunner().invoke(main, ["diff", str(runs["base"]), str(runs["finetuned"]), "--config",
                                       str(runs["config"]), "--json", str(tmp_path / "d.json"),
                                       "--junit", str(tmp_path / "d.xml")])

    assert result.exit_code == 1, result.output
    assert "diff: FAIL" in result.output
    report = json.loads((tmp_path / "d.json").read_text(encoding="utf-8"))
    change = {(c["attack"], c["metric"]): c for c in report["changes"]}
    exact = change[("pii", "exact_match_rate")]
    assert exact["paired"] and exact["status"] == "fail" and exact["headline"]
    summaries = [json.loads((runs[r] / "summary.json").read_text(encoding="utf-8")) for r in ("base", "finetuned")]
    value = [next(x for x in s["results"] if x["attack"] == "pii")["metrics"]["exact_match_rate"]["value"]
             for s in summaries]
    assert exact["a"] == value[0] and exact["b"] == value[1]
    assert exact["change"]["value"] == pytest.approx(value[1] - value[0])
    # the interval is the paired one over the same (subject, field) units, clustered by subject
    a, b = _subject_field_hits(runs["base"]), _subject_field_hits(runs["finetuned"])
    keys = sorted(set(a) & set(b))
    want = paired_difference([b[k][0] for k in keys], [a[k][0] for k in keys], [a[k][1] for k in keys])
    assert (exact["change"]["low"], exact["change"]["high"], exact["change"]["n"]) == \
        pytest.approx((want.low, want.high, want.n))
    assert exact["change"]["low"] > 0  # the fine-tune leaks more, significantly: the gate fails
    # AUC has no per-document decomposition: the conservative difference of the two intervals
    auc = change[("membership", "auc")]
    assert not auc["paired"] and auc["change"]["method"] == "interval_difference"
    cases = ET.parse(tmp_path / "d.xml").getroot().iter("testcase")
    assert any(c.find("failure") is not None and "exact_match_rate" in c.get("name") for c in cases)


@pytest.mark.slow
def test_the_fine_tune_against_itself_changes_nothing_and_passes_exit_0(runs, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["diff", str(runs["finetuned"]), str(runs["finetuned"]), "--config",
                                       str(runs["config"]), "--json", str(tmp_path / "d.json")])

    assert result.exit_code == 0, result.output
    assert "diff: PASS (0 of 2 checked changes failed)" in result.output
    changes = json.loads((tmp_path / "d.json").read_text(encoding="utf-8"))["changes"]
    assert changes and all(c["change"]["value"] == 0 for c in changes)
    exact = next(c for c in changes if c["metric"] == "exact_match_rate")
    assert exact["paired"] and exact["change"]["low"] < 0 < exact["change"]["high"]  # 20 units cannot show 0


@pytest.mark.slow
@pytest.mark.parametrize("thresholds, message", [
    ('"pii.exact_match_rte" = {max_increase = 0.0}', "attack 'pii' has no metric 'exact_match_rte'"),
    ('"pii.exact_match_rate" = {max_increase = -0.1}', "max_increase: expected a number >= 0"),
    ('"pii.exact_match_rate" = {max_incr = 0.1}', "max_incr: unknown key"),
    ('"pii.exact_match_rate" = "<= 0.1"', "expected a table like {max_increase = 0.0}"),
])
def test_malformed_change_thresholds_are_one_line_errors_exit_2(runs, tmp_path: Path, thresholds, message) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f"[thresholds]\n{thresholds}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["diff", str(runs["base"]), str(runs["finetuned"]), "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert message in result.output and str(path) in result.output
    assert len(result.output.strip().splitlines()) == 1


def _copy_with_manifest(run: Path, dest: Path, **changes) -> Path:
    shutil.copytree(run, dest)
    manifest = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
    for key, value in changes.items():
        if key == "seed":
            manifest["config"]["seed"] = value
        else:
            manifest[key] = value
    (dest / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return dest


@pytest.mark.slow
def test_runs_of_different_audits_are_refused_exit_2(runs, tmp_path: Path) -> None:
    other = _copy_with_manifest(runs["finetuned"], tmp_path / "other", seed=1)
    result = CliRunner().invoke(main, ["diff", str(runs["base"]), str(other)])
    assert result.exit_code == 2, result.output
    assert "are not runs of the same audit: seed differ" in result.output


@pytest.mark.slow
def test_a_run_that_did_not_finish_is_refused_exit_3(runs, tmp_path: Path) -> None:
    stopped = _copy_with_manifest(runs["finetuned"], tmp_path / "stopped", status="interrupted")
    result = CliRunner().invoke(main, ["diff", str(runs["base"]), str(stopped), "--config", str(runs["config"])])
    assert result.exit_code == 3, result.output
    assert "the run is 'interrupted'" in result.output


def test_a_rate_is_paired_by_its_unit_and_a_member_keeps_its_own_records() -> None:
    """exact_match_rate: one unit per (subject, field), a hit when any template hit; `.email` keeps email."""
    import pandas as pd

    from privaudit.diff import metric_change
    from privaudit.metrics import paired_difference

    def records(hits: dict[tuple[str, str, str], bool]) -> pd.DataFrame:
        return pd.DataFrame([{"kind": "extract", "item": f"extract|{s}|{f}|{t}", "subject_id": s, "pii_type": f,
                              "template_id": t, "exact": h} for (s, f, t), h in hits.items()])

    subjects = [f"s{i}" for i in range(6)]
    a = records({(s, f, t): False for s in subjects for f in ("email", "phone") for t in ("t1", "t2")})
    b_hits = {(s, f, t): False for s in subjects for f in ("email", "phone") for t in ("t1", "t2")}
    b_hits.update({("s0", "email", "t2"): True, ("s1", "email", "t1"): True, ("s1", "email", "t2"): True,
                   ("s2", "phone", "t1"): True})
    b = records(b_hits)
    est_a = {"value": 0.0, "low": 0.0, "high": 0.3, "n": 12, "kind": "proportion"}
    est_b = {"value": 0.25, "low": 0.1, "high": 0.5, "n": 12, "kind": "proportion"}

    overall, paired = metric_change("pii", "exact_match_rate", est_a, est_b, a, b)
    email, _ = metric_change("pii", "exact_match_rate.email", est_a, est_b, a, b)
    probes, _ = metric_change("pii", "probe_exact_match_rate", est_a, est_b, a, b)

    assert paired and overall.n == 12 and overall.value == pytest.approx(3 / 12)  # s1's two hits are one unit
    units_b = [1.0 if (s, f) in {("s0", "email"), ("s1", "email"), ("s2", "phone")} else 0.0
               for s in subjects for f in ("email", "phone")]
    want = paired_difference(units_b, [0.0] * 12, [s for s in subjects for _ in ("email", "phone")])
    assert (overall.low, overall.high) == pytest.approx((want.low, want.high))
    assert email.n == 6 and email.value == pytest.approx(2 / 6)
    assert probes.n == 24 and probes.value == pytest.approx(4 / 24)
    # without records (an AUC, a maximum): the conservative difference of the two intervals
    unpaired, was_paired = metric_change("membership", "auc", est_a, est_b)
    assert not was_paired and unpaired.method == "interval_difference"
    assert (unpaired.low, unpaired.high) == pytest.approx((0.1 - 0.3, 0.5 - 0.0))
