"""Resume that is safe and run status that tells the truth (issue 14, items 5 and 6).

A run folder's results belong to the models and data files they were computed from. The in-place
model swap of the issue (the same `hf:DIR`, other weights) and an edited subjects file must be
refused on resume, in one line naming what changed, before any model loads; `--fresh` starts over
and gives the new model's results. Everything runs for real: tiny transformers models, a real
OpenAI-compatible server on 127.0.0.1, real SIGINT to a real process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from conftest import TINY_TEXTS
from privaudit.attacks.base import RunContext
from privaudit.audit import REPORT_FILES, AuditSpec, run_audit
from privaudit.cli import main
from privaudit.data.subjects import generate_subjects, write_subjects
from privaudit.engine.cache import CachedTarget, SqliteCache
from privaudit.engine.hashing import file_sha256
from privaudit.engine.identity import MANIFEST_DATA, MANIFEST_TARGETS, RunIdentityError, TargetLedger
from privaudit.engine.store import RunStore
from privaudit.errors import EXIT_USAGE
from privaudit.serve import OpenAIApp
from privaudit.targets.base import load_target, register_target, spec_fingerprint

from reliability.char_target import CharBigramTarget
from reliability.fault_server import FaultServer, slow
from reliability.sigint import default_sigint

CHAR = "resume-char"


@register_target(CHAR)
def _char_target(location: str, options) -> CharBigramTarget:
    """A real (character bigram) model per location, so two locations are two different models."""
    return CharBigramTarget(corpus=f"{location} " * 20 + "Hello there, how are you?")


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, ["--quiet", *args])


def one_line_error(result: Result) -> str:
    assert result.exit_code == EXIT_USAGE, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("privaudit: error: "), result.output
    return lines[0]


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def outputs_by_item(out: Path) -> dict[str, list[str]]:
    """Each probe's outputs by its item key (the target name, a folder path, is not part of it)."""
    return {r["item"]: r["outputs"] for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())
            if "outputs" in r}


@pytest.fixture()
def subjects(tmp_path: Path) -> Path:
    path = tmp_path / "subjects.jsonl"
    write_subjects(path, generate_subjects(2, seed=0))
    return path


@pytest.fixture(scope="module")
def other_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another tiny model with the same architecture and tokenizer but other weights (seed 1)."""
    from privaudit.models.tiny import build_tiny_model

    return build_tiny_model(TINY_TEXTS, tmp_path_factory.mktemp("tiny_model_b"), seed=1)


def swap_in_place(src: Path, dst: Path) -> None:
    """Replace dst's files by src's, keeping each replaced file's size and mtime (the hardest swap:
    `cp -p` of a same-architecture checkpoint), so only the content and the inode differ."""
    for f in sorted(src.iterdir()):
        target = dst / f.name
        old = target.stat() if target.exists() else None
        tmp = dst / f".{f.name}.new"
        shutil.copyfile(f, tmp)
        os.replace(tmp, target)
        if old is not None and old.st_size == target.stat().st_size:
            os.utime(target, ns=(old.st_atime_ns, old.st_mtime_ns))


def pii_args(target: str, subjects: Path, out: Path, *extra: str) -> list[str]:
    return ["attack", "pii", "--target", target, "--subjects", str(subjects), "--out", str(out),
            "--pii-type", "email", "--level", "1", "--max-new-tokens", "6", *extra]


# --- the in-place model swap --------------------------------------------------------------------------
def test_in_place_model_swap_is_refused_and_fresh_gives_the_new_models_results(
        tmp_path: Path, subjects: Path, tiny_model_dir: Path, other_tiny_model: Path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    run = tmp_path / "run"
    assert cli(*pii_args(f"hf:{model}", subjects, run)).exit_code == 0
    first = manifest(run)
    assert first["status"] == "complete"
    recorded = first[MANIFEST_TARGETS][f"hf:{model}"]
    results_before = (run / "results.jsonl").read_bytes()
    outputs_a = outputs_by_item(run)

    swap_in_place(other_tiny_model, model)
    assert (model / "model.safetensors").stat().st_size == (tiny_model_dir / "model.safetensors").stat().st_size
    line = one_line_error(cli(*pii_args(f"hf:{model}", subjects, run)))
    new = spec_fingerprint(f"hf:{model}")
    assert new != recorded
    assert f"{run}: target hf:{model} changed since this folder's results" in line
    assert f"fingerprint {recorded[:12]}.. -> {new[:12]}.." in line
    assert "--fresh" in line
    # Refused, not mixed: the folder is exactly as the first run left it.
    assert (run / "results.jsonl").read_bytes() == results_before
    assert manifest(run) == first

    assert cli(*pii_args(f"hf:{model}", subjects, run, "--fresh")).exit_code == 0
    reference = tmp_path / "reference"  # the swapped-in model into a new folder
    assert cli(*pii_args(f"hf:{other_tiny_model}", subjects, reference)).exit_code == 0
    outputs_b = outputs_by_item(run)
    assert outputs_b == outputs_by_item(reference)
    assert outputs_b != outputs_a, "the two tiny models generate alike: the test shows nothing"
    assert manifest(run)[MANIFEST_TARGETS] == {f"hf:{model}": new}
    assert manifest(run)["status"] == "complete"


def test_edited_subjects_file_is_refused_and_fresh_probes_the_new_values(tmp_path: Path, subjects: Path):
    run = tmp_path / "run"
    assert cli(*pii_args(f"{CHAR}:m", subjects, run)).exit_code == 0
    old_hash = manifest(run)[MANIFEST_DATA][str(subjects)]
    people = [json.loads(line) for line in subjects.read_text().splitlines()]
    people[0]["email"] = "someone.else@example.net"
    subjects.write_text("".join(json.dumps(p) + "\n" for p in people))

    line = one_line_error(cli(*pii_args(f"{CHAR}:m", subjects, run)))
    assert f"data file {subjects} changed since this folder's results (sha256 {old_hash[:12]}.. ->" in line
    assert cli(*pii_args(f"{CHAR}:m", subjects, run, "--fresh")).exit_code == 0
    truths = {json.loads(r).get("truth") for r in (run / "results.jsonl").read_text().splitlines()}
    assert "someone.else@example.net" in truths
    assert manifest(run)[MANIFEST_DATA][str(subjects)] == file_sha256(subjects) != old_hash


def test_unchanged_rerun_resumes_without_recomputing(tmp_path: Path, subjects: Path):
    run = tmp_path / "run"
    assert cli(*pii_args(f"{CHAR}:m", subjects, run)).exit_code == 0
    before = (run / "results.jsonl").read_bytes()
    assert cli(*pii_args(f"{CHAR}:m", subjects, run)).exit_code == 0
    assert (run / "results.jsonl").read_bytes() == before
    assert manifest(run)["status"] == "complete"


def test_a_changed_audit_is_refused_with_the_fresh_hint(tmp_path: Path, subjects: Path):
    run = tmp_path / "run"
    assert cli(*pii_args(f"{CHAR}:m", subjects, run)).exit_code == 0
    line = one_line_error(cli(*pii_args(f"{CHAR}:m", subjects, run, "--samples", "2")))
    assert "different audit" in line and "--fresh" in line
    assert cli(*pii_args(f"{CHAR}:m", subjects, run, "--samples", "2", "--fresh")).exit_code == 0


def test_fresh_on_privaudit_run_discards_results_cache_and_reports_only(tmp_path: Path, subjects: Path):
    run = tmp_path / "run"
    audit = tmp_path / "audit.toml"
    audit.write_text(f'targets = ["{CHAR}:m"]\nout = "{run}"\n[attacks.pii]\nsubjects = "{subjects}"\n'
                     f'max_new_tokens = 4\npii_types = ["email"]\n')
    assert cli("run", str(audit)).exit_code == 0
    (run / "notes.txt").write_text("the user's own file")
    created = manifest(run)["created"]
    time.sleep(1.1)
    assert cli("run", str(audit), "--fresh").exit_code == 0
    assert (run / "notes.txt").read_text() == "the user's own file"
    assert manifest(run)["created"] != created  # a new manifest, not the old one updated
    assert all((run / name).is_file() for name in REPORT_FILES)


def test_swapped_nested_baseline_is_refused_before_any_model_loads(
        tmp_path: Path, subjects: Path, tiny_model_dir: Path, other_tiny_model: Path, monkeypatch):
    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    spec = AuditSpec(targets=[f"hf:{tiny_model_dir}"], out=tmp_path / "run",
                     attacks={"pii": {"subjects": str(subjects), "pii_types": ["email"], "levels": [1],
                                      "max_new_tokens": 4, "baseline_target": f"hf:{base}"}})
    run_audit(spec)
    recorded = manifest(spec.out)[MANIFEST_TARGETS]
    assert recorded[f"hf:{base}"] == load_target(f"hf:{base}").fingerprint()  # recorded when it loaded
    assert set(recorded) == {f"hf:{tiny_model_dir}", f"hf:{base}"}

    swap_in_place(other_tiny_model, base)
    loads: list[str] = []
    import privaudit.attacks.base as attacks_base
    import privaudit.audit as audit
    import privaudit.engine.identity as identity

    for module in (audit, attacks_base, identity):
        real = module.load_target
        monkeypatch.setattr(module, "load_target", lambda s, _real=real: loads.append(s) or _real(s))
    with pytest.raises(RunIdentityError, match=f"target hf:{base} changed since this folder's results"):
        run_audit(spec)
    assert loads == []  # checked from files alone, before the audited target or the baseline loaded


def test_openai_endpoint_serving_another_model_is_refused(tmp_path: Path, subjects: Path):
    app = OpenAIApp(CharBigramTarget(), model_name="tiny")
    with FaultServer(app) as srv:
        run = tmp_path / "run"
        target = srv.spec("score=false")
        assert cli(*pii_args(target, subjects, run)).exit_code == 0
        app.target = CharBigramTarget(corpus="A different model behind the same URL and name. " * 5)
        line = one_line_error(cli(*pii_args(target, subjects, run)))
        assert f"target {target} changed since this folder's results (fingerprint" in line


def test_folder_from_before_identity_checks_is_refused(tmp_path: Path, subjects: Path):
    run = tmp_path / "run"
    assert cli(*pii_args(f"{CHAR}:m", subjects, run)).exit_code == 0
    old = manifest(run)
    for key in (MANIFEST_TARGETS, MANIFEST_DATA):
        old.pop(key)
    (run / "manifest.json").write_text(json.dumps(old))
    line = one_line_error(cli(*pii_args(f"{CHAR}:m", subjects, run)))
    assert "no target fingerprints" in line and "--fresh" in line


# --- fingerprints without loading ---------------------------------------------------------------------
def test_hf_fingerprint_from_files_equals_the_loaded_targets(tiny_model_dir: Path):
    spec = f"hf:{tiny_model_dir}:device=cpu"
    assert spec_fingerprint(spec) == load_target(spec).fingerprint()
    assert spec_fingerprint(f"hf:{tiny_model_dir}:dtype=bfloat16") != spec_fingerprint(spec)
    assert spec_fingerprint(f"{CHAR}:m") is None  # this scheme is fingerprinted by loading it


def test_file_hash_notices_a_replacement_with_the_same_size_and_mtime(tmp_path: Path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"A" * 4096)
    first = file_sha256(path)
    stat = path.stat()
    tmp = tmp_path / "new.bin"
    tmp.write_bytes(b"B" * 4096)
    os.replace(tmp, path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_mtime_ns == stat.st_mtime_ns and path.stat().st_size == stat.st_size
    assert file_sha256(path) != first


# --- nested targets: one way to load them -------------------------------------------------------------
def test_nested_targets_load_through_the_cache_and_the_ledger(tmp_path: Path):
    with RunStore(tmp_path / "run") as store:
        cache = SqliteCache(tmp_path / "run" / "cache.sqlite")
        ctx = RunContext(store=store, cache=cache, ledger=TargetLedger(store.root, store))
        judge = ctx.load_target(f"{CHAR}:judge")
        assert isinstance(judge, CachedTarget)
        assert store.read_manifest()[MANIFEST_TARGETS] == {f"{CHAR}:judge": judge.fingerprint()}
        ctx2 = RunContext(store=store, cache=cache,
                          ledger=TargetLedger(store.root, store, {f"{CHAR}:judge": "0" * 64}))
        with pytest.raises(RunIdentityError, match=f"target {CHAR}:judge changed"):
            ctx2.load_target(f"{CHAR}:judge")
        cache.close()


# --- run status ------------------------------------------------------------------------------------------
def test_complete_only_after_every_report_is_written(tmp_path: Path, subjects: Path):
    spec = AuditSpec(targets=[f"{CHAR}:m"], out=tmp_path / "run",
                     attacks={"pii": {"subjects": str(subjects), "pii_types": ["email"], "max_new_tokens": 4}})
    seen: list[str] = []

    def outputs(results, final_manifest):
        seen.append(manifest(spec.out)["status"])
        from privaudit.audit import write_outputs

        write_outputs(spec.out, results, final_manifest, spec)
        seen.append(manifest(spec.out)["status"])

    run_audit(spec, outputs=outputs)
    assert seen == ["running", "running"]
    done = manifest(spec.out)
    assert done["status"] == "complete" and "finished" in done and "error" not in done
    summary = json.loads((spec.out / "summary.json").read_text())
    assert summary["manifest"]["status"] == "complete"  # what the reports say matches the end state


def test_a_failure_while_writing_reports_is_failed_and_leaves_no_reports(tmp_path: Path, subjects: Path):
    spec = AuditSpec(targets=[f"{CHAR}:m"], out=tmp_path / "run",
                     attacks={"pii": {"subjects": str(subjects), "pii_types": ["email"], "max_new_tokens": 4}})
    (spec.out / "report.html").mkdir(parents=True)  # the HTML report cannot be written
    with pytest.raises(OSError):
        run_audit(spec)
    failed = manifest(spec.out)
    assert failed["status"] == "failed" and "report.html" in failed["error"] and "finished" not in failed
    assert not (spec.out / "summary.json").exists()
    (spec.out / "report.html").rmdir()
    run_audit(spec)  # the same command again finishes, from the stored records
    assert manifest(spec.out)["status"] == "complete" and "error" not in manifest(spec.out)


def _status(run: Path) -> str | None:
    try:
        return manifest(run).get("status")
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def test_ctrl_c_marks_the_run_interrupted_and_a_rerun_completes_it(tmp_path: Path, subjects: Path):
    """Ctrl-C in the middle of an attack: the run is marked `interrupted`, exits 130, leaves no report,
    and the same command resumes it. The endpoint (a real server on 127.0.0.1) holds the run's first
    completion request until the signal has been sent, so the signal lands mid-attack whatever the
    machine's load; the child gets SIGINT's default disposition back (reliability/sigint.py: under
    a suite started as a background job it was ignored, and the run finished with exit 0)."""
    run = tmp_path / "run"
    app = OpenAIApp(CharBigramTarget(), model_name="tiny")
    with FaultServer(app, [slow(120)]) as srv:
        cmd = [sys.executable, "-m", "privaudit.cli", "--quiet", *pii_args(srv.spec("score=false"), subjects, run),
               "--batch-size", "1"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=default_sigint)
        deadline = time.monotonic() + 120
        while proc.poll() is None and srv.in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None and srv.in_flight == 1, "no request held: " + proc.stdout.read().decode()
        assert _status(run) == "running"
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        output = proc.communicate(timeout=60)[0].decode()
        assert proc.returncode == 130, output
        assert "interrupted" in output
        stopped = manifest(run)
        assert stopped["status"] == "interrupted" and "finished" not in stopped
        assert not any((run / name).exists() for name in REPORT_FILES)

        resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=300)  # the script is spent: OK
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert manifest(run)["status"] == "complete"
