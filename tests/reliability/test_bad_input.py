"""The bad-input catalog (issue 10, item 1), each case through the real CLI.

Every case must end in exactly one line `privaudit: error: ...` naming the file, line, key or
field at fault, exit code 2, no traceback, and no run folder that looks finished (no summary or
report, manifest never marked complete). Data-file cases run against an in-process character
bigram target so they cost no model load; model-folder cases use real tiny transformers models.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from privaudit.cli import main
from privaudit.data.subjects import generate_subjects, write_subjects
from privaudit.errors import EXIT_USAGE
from privaudit.targets.base import register_target

from reliability.char_target import CharBigramTarget

SCHEME = "badinput-char"
FINISHED_OUTPUTS = ("summary.json", "report.html", "junit.xml", "summary.md")


@register_target(SCHEME)
def _char_target(location: str, options) -> CharBigramTarget:
    return CharBigramTarget()


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, ["--quiet", *args])


def assert_not_finished(out: Path, error: str | None = None) -> None:
    """A failed run may leave a folder, but nothing in it may look like a finished audit: no summary
    or report, and a manifest (where the run got far enough to write one) that says `failed` with
    the one-line error, the very line the CLI printed when `error` is given."""
    if not out.exists():
        return
    for name in FINISHED_OUTPUTS:
        assert not (out / name).exists(), f"{name} written by a failed run"
    manifest = out / "manifest.json"
    if manifest.exists():
        data = json.loads(manifest.read_text())
        assert data.get("status") == "failed", data.get("status")
        assert isinstance(data.get("error"), str) and data["error"] and "\n" not in data["error"]
        assert "finished" not in data
        if error is not None:
            assert data["error"] == error


def assert_one_line_error(result: Result, *needles: str, out: Path | None = None) -> str:
    """Exit 2, the whole output is one `privaudit: error:` line holding every needle."""
    text = result.output
    assert result.exit_code == EXIT_USAGE, text
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # handled, not a crash
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("privaudit: error: "), text
    assert len(lines[0]) < 1500, "error message not kept short"
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    if out is not None:
        assert_not_finished(out, error=lines[0].removeprefix("privaudit: error: "))
    return lines[0]


@pytest.fixture()
def subjects_file(tmp_path: Path) -> Path:
    path = tmp_path / "subjects.jsonl"
    write_subjects(path, generate_subjects(2, seed=0))
    return path


def attack_pii(tmp_path: Path, subjects: Path | str, target: str = f"{SCHEME}:m") -> tuple[Result, Path]:
    out = tmp_path / "run"
    return cli("attack", "pii", "--target", target, "--subjects", str(subjects), "--out", str(out),
               "--max-new-tokens", "4"), out


# --- data files ------------------------------------------------------------------------------------
VALID = '{"id": "a", "name": "Ann Lee", "email": "ann@example.com"}\n'

DATA_CASES = {
    # name: (file bytes, substrings the error must contain)
    "empty-file": (b"", ["empty file"]),
    "blank-lines-only": (b"\n \n\n", ["empty file"]),
    "non-utf8": (VALID.encode() + b'{"id": "b", "name": "B\xff\xfe"}\n', [":2:", "not UTF-8"]),
    "malformed-json-line": (VALID.encode() + b'\n{"id": "c", "name": \n', [":3:", "invalid JSON"]),
    "json-not-an-object": (VALID.encode() + b"[1, 2]\n", [":2:", "expected a JSON object"]),
    "nan-is-not-json": (b'{"id": "a", "name": NaN}\n', [":1:", "NaN"]),
    "duplicate-id": (VALID.encode() + b'{"id": "a", "name": "Bo Ray"}\n', [":2:", "'id'", "duplicate id 'a'", "line 1"]),
    "empty-pii-field": (b'{"id": "a", "name": "Ann Lee", "email": "  "}\n', [":1:", "'email'", "empty value"]),
    "missing-name": (b'{"id": "a", "email": "a@b.c"}\n', [":1:", "'name'", "missing"]),
    "wrong-type": (b'{"id": "a", "name": "Ann Lee", "phone": 5550101}\n', [":1:", "'phone'", "expected a string"]),
    "absurdly-long-field": (('{"id": "a", "name": "%s"}\n' % ("n" * 5_000_000)).encode(), [":1:", "'name'", "too long"]),
    "absurdly-long-key": (('{"id": "a", "name": "Ann Lee", "%s": "x"}\n' % ("k" * 100_000)).encode(), [":1:", "field names"]),
    "deeply-nested": (b'{"id": "a", "name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", [":1:"]),
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_subjects_file_is_one_line_error_naming_file_and_line(tmp_path: Path, case: str):
    content, needles = DATA_CASES[case]
    path = tmp_path / "subjects.jsonl"
    path.write_bytes(content)
    result, out = attack_pii(tmp_path, path)
    assert_one_line_error(result, "subjects.jsonl", *needles, out=out)


def test_missing_subjects_file_is_one_line_error(tmp_path: Path):
    result, out = attack_pii(tmp_path, tmp_path / "nope.jsonl")
    assert_one_line_error(result, "nope.jsonl", "no such file", out=out)


def test_subjects_path_that_is_a_folder_is_one_line_error(tmp_path: Path):
    result, out = attack_pii(tmp_path, tmp_path)
    assert_one_line_error(result, "directory", out=out)


def test_data_validate_reports_a_malformed_corpus_line(tmp_path: Path):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"record": "document", "id": "d1", "kind": "email", "split": "train", "text": "hi"}\n'
                    '{"record": "document", "id": "d2", "kind": "letter", "split": "train", "text": "x"}\n')
    assert_one_line_error(cli("data", "validate", str(path)), "corpus.jsonl:", "'kind'")


# --- the audit TOML ----------------------------------------------------------------------------------
def write_audit(tmp_path: Path, subjects: Path, body: str = "", attack_body: str = "", *,
                target: str = f"{SCHEME}:m") -> tuple[Path, Path]:
    out = tmp_path / "run"
    audit = tmp_path / "audit.toml"
    audit.write_text(f'targets = ["{target}"]\nout = "{out}"\n{body}\n'
                     f'[attacks.pii]\nsubjects = "{subjects}"\nmax_new_tokens = 4\n{attack_body}\n')
    return audit, out


TOML_CASES = {
    # name: (top-level lines, [attacks.pii] lines, substrings the error must contain)
    "wrong-type-top-level": ('seed = "abc"', "", ["audit.toml: seed:", "expected an integer"]),
    "wrong-type-nested": ("", 'num_samples = "3"', ["audit.toml: attacks.pii.num_samples:", "expected an integer"]),
    "bool-is-not-an-int": ("batch_size = true", "", ["audit.toml: batch_size:"]),
    "float-is-not-an-int": ("", "num_samples = 2.5", ["attacks.pii.num_samples:"]),
    "list-where-string": ("", "temperature = [1]", ["attacks.pii.temperature:"]),
    "unknown-key-top-level": ("bogus = 1", "", ["audit.toml: bogus:", "unknown key"]),
    "unknown-key-nested": ("", "num_sample = 3", ["audit.toml: attacks.pii.num_sample:", "unknown key"]),
    "out-of-range": ("batch_size = 0", "", ["batch_size", ">= 1"]),
    "absurdly-long-key": ("", "k" * 100_000 + " = 1", ["attacks.pii.", "unknown key", "more characters"]),
}


@pytest.mark.parametrize("case", sorted(TOML_CASES))
def test_bad_audit_toml_names_the_key_path(tmp_path: Path, subjects_file: Path, case: str):
    body, attack_body, needles = TOML_CASES[case]
    audit, out = write_audit(tmp_path, subjects_file, body, attack_body)
    assert_one_line_error(cli("run", str(audit)), *needles)
    assert not out.exists(), "config errors must fail before a run folder is created"


def test_unknown_attack_table_is_one_line_error(tmp_path: Path, subjects_file: Path):
    audit, out = write_audit(tmp_path, subjects_file, attack_body="[attacks.nosuch]\nx = 1")
    assert_one_line_error(cli("run", str(audit)), "unknown attack 'nosuch'")
    assert not out.exists()


@pytest.mark.parametrize("content,needles", [
    (None, ["no such file"]),
    (b"", ["targets", "required key is missing"]),
    (b'targets = ["x:y"]\n# caf\xe9\n', ["not UTF-8"]),
    (b'targets = ["x:y"\n[attacks.pii]\n', ["invalid TOML", "line"]),
    (b"targets = 3\n[attacks.pii]\n", ["targets:", "expected a list"]),
], ids=["missing", "empty", "non-utf8", "syntax-error", "targets-not-a-list"])
def test_unreadable_audit_toml_is_one_line_error(tmp_path: Path, content: bytes | None, needles: list[str]):
    audit = tmp_path / "audit.toml"
    if content is not None:
        audit.write_bytes(content)
    assert_one_line_error(cli("run", str(audit)), "audit.toml", *needles)


# --- targets -------------------------------------------------------------------------------------
def test_unknown_target_scheme_fails_before_any_run_folder_exists(tmp_path: Path, subjects_file: Path):
    audit, out = write_audit(tmp_path, subjects_file, target="nosuch:model")
    assert_one_line_error(cli("run", str(audit)), "unknown target scheme 'nosuch'", "known:")
    assert not out.exists()


def test_unknown_target_scheme_in_a_later_target_fails_before_the_first_runs(tmp_path: Path, subjects_file: Path):
    out = tmp_path / "run"
    result = cli("attack", "pii", "--target", "nosuch:model", "--subjects", str(subjects_file), "--out", str(out))
    assert_one_line_error(result, "nosuch")
    assert not out.exists()
    audit = tmp_path / "two.toml"
    audit.write_text(f'targets = ["{SCHEME}:m", "typo:m"]\nout = "{out}"\n'
                     f'[attacks.pii]\nsubjects = "{subjects_file}"\nmax_new_tokens = 4\n')
    assert_one_line_error(cli("run", str(audit)), "'typo'")
    assert not out.exists()


NESTED_CASES = {
    # name: (attack tables of the audit TOML, the key path the error must name)
    "pii-baseline_target": ('[attacks.pii]\nsubjects = "{subjects}"\nbaseline_target = "nosuch:base"\n',
                            "attacks.pii.baseline_target"),
    "membership-reference": ('[attacks.membership]\ncorpus = "{subjects}"\nreference = "nosuch:base"\n',
                             "attacks.membership.reference"),
    "bias-judge": ('[attacks.bias]\njudge = "nosuch:judge"\n', "attacks.bias.judge"),
}


@pytest.mark.parametrize("case", sorted(NESTED_CASES))
def test_unknown_scheme_in_a_nested_target_spec_fails_before_any_run_folder_exists(
        tmp_path: Path, subjects_file: Path, case: str):
    tables, key = NESTED_CASES[case]
    out = tmp_path / "run"
    audit = tmp_path / "audit.toml"
    audit.write_text(f'targets = ["{SCHEME}:m"]\nout = "{out}"\n' + tables.format(subjects=subjects_file))
    assert_one_line_error(cli("run", str(audit)), f"audit.toml: {key}:", "unknown target scheme 'nosuch'", "known:")
    assert not out.exists()


def test_nested_spec_without_scheme_on_the_command_line_names_the_option(tmp_path: Path, subjects_file: Path):
    out = tmp_path / "run"
    result = cli("attack", "pii", "--target", f"{SCHEME}:m", "--subjects", str(subjects_file), "--out", str(out),
                 "--baseline", "justaname")
    assert_one_line_error(result, "attacks.pii.baseline_target", "has no scheme")
    assert not out.exists()


def test_target_spec_without_scheme_is_one_line_error(tmp_path: Path, subjects_file: Path):
    result, out = attack_pii(tmp_path, subjects_file, target="justaname")
    assert_one_line_error(result, "has no scheme", out=out)


def test_absurdly_long_model_path_is_one_line_error_not_an_oserror(tmp_path: Path, subjects_file: Path):
    result, out = attack_pii(tmp_path, subjects_file, target="hf:" + "x" * 100_000)
    line = assert_one_line_error(result, "more characters", out=out)
    assert "too long" in line


def test_absurdly_long_output_path_is_one_line_error(tmp_path: Path, subjects_file: Path):
    result = cli("attack", "pii", "--target", f"{SCHEME}:m", "--subjects", str(subjects_file),
                 "--out", str(tmp_path / ("o" * 5000)))
    assert_one_line_error(result, "too long")


def test_output_path_that_is_a_file_is_one_line_error(tmp_path: Path, subjects_file: Path):
    result = cli("attack", "pii", "--target", f"{SCHEME}:m", "--subjects", str(subjects_file),
                 "--out", str(subjects_file))
    assert_one_line_error(result, "not a folder")


def test_missing_model_folder_is_one_line_error(tmp_path: Path, subjects_file: Path):
    result, out = attack_pii(tmp_path, subjects_file, target=f"hf:{tmp_path / 'nomodel'}")
    assert_one_line_error(result, "nomodel", "does not exist", out=out)


def test_model_folder_without_tokenizer_is_one_line_error(tmp_path: Path, subjects_file: Path, tiny_model_dir: Path):
    bare = tmp_path / "bare_model"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        os.symlink(tiny_model_dir / name, bare / name)
    result, out = attack_pii(tmp_path, subjects_file, target=f"hf:{bare}")
    assert_one_line_error(result, "bare_model", "no tokenizer", out=out)


def test_model_folder_without_config_is_one_line_error(tmp_path: Path, subjects_file: Path):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a model")
    result, out = attack_pii(tmp_path, subjects_file, target=f"hf:{folder}")
    assert_one_line_error(result, "junk", "config.json", out=out)


@pytest.fixture(scope="module")
def foreign_adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter saved for a *different* tiny Llama (hidden size 48, not the base's 128)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from privaudit.models.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("foreign")
    other = build_tiny_model(["Another model's own little corpus.", "Hello there."], root / "other_model", seed=1, hidden_size=48, num_layers=1,
                             num_heads=2, vocab_size=300)
    model = AutoModelForCausalLM.from_pretrained(other, local_files_only=True)
    adapter = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    adapter.save_pretrained(root / "adapter")
    return root / "adapter"


def test_adapter_for_another_base_is_one_line_error_in_a_real_process(
    tmp_path: Path, subjects_file: Path, tiny_model_dir: Path, foreign_adapter: Path
):
    """Subprocess, not CliRunner: what a user sees includes library warnings printed to stderr."""
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "privaudit.cli", "--quiet", "attack", "pii",
         "--target", f"hf:{tiny_model_dir}:adapter={foreign_adapter}",
         "--subjects", str(subjects_file), "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert proc.stdout == ""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("privaudit: error: ")
    assert "adapter does not match base model" in lines[0] and str(foreign_adapter) in lines[0]
    assert_not_finished(out, error=lines[0].removeprefix("privaudit: error: "))


def test_adapter_folder_without_adapter_config_is_one_line_error(tmp_path: Path, subjects_file: Path,
                                                                 tiny_model_dir: Path):
    empty = tmp_path / "not_an_adapter"
    empty.mkdir()
    result, out = attack_pii(tmp_path, subjects_file, target=f"hf:{tiny_model_dir}:adapter={empty}")
    assert_one_line_error(result, "not_an_adapter", "adapter_config.json", out=out)
