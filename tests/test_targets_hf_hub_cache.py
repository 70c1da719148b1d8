"""`hf:ORG/NAME` model ids, resolved offline from a Hugging Face cache the test builds in the hub's
own layout (`models--ORG--NAME/{blobs,snapshots/REV,refs/main}`, snapshot files symlinked to blobs)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from privaudit.engine.identity import RunIdentityError, check_resume
from privaudit.errors import InputError
from privaudit.targets.base import GenerationConfig, load_target, spec_fingerprint
from privaudit.targets.hf import HFTarget
from privaudit.targets.hf_hub_cache import hub_cache_dir, is_model_id

PROMPTS = ["Alice Johnson's email is", "Bob Smith lives at"]
REV_A = "a" * 40
REV_B = "b" * 40


def cache_model(cache: Path, repo_id: str, source: Path, revision: str) -> Path:
    """Put the files of `source` into `cache` as `hf download` would, and point refs/main at them."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    blobs, snapshot = repo / "blobs", repo / "snapshots" / revision
    blobs.mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True)
    for f in sorted(source.iterdir()):
        if f.is_file():
            blob = blobs / hashlib.sha256(f.read_bytes()).hexdigest()
            if not blob.exists():
                shutil.copyfile(f, blob)
            (snapshot / f.name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


@pytest.fixture()
def hub_cache(tmp_path, monkeypatch, tiny_model_dir) -> Path:
    cache = tmp_path / "hub"
    cache_model(cache, "org/tiny", tiny_model_dir, REV_A)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def test_a_cached_model_id_loads_offline_and_generates_like_its_folder(hub_cache, tiny_model_dir):
    target = load_target("hf:org/tiny")
    assert isinstance(target, HFTarget)
    assert target.name == "hf:org/tiny" and target.model_id == "org/tiny"
    assert target.model_path == hub_cache / "models--org--tiny" / "snapshots" / REV_A
    local = HFTarget(tiny_model_dir)
    cfg = GenerationConfig(max_new_tokens=6)
    assert target.generate(PROMPTS, cfg) == local.generate(PROMPTS, cfg)
    assert target.fingerprint() == local.fingerprint()  # same bytes, same identity, wherever they live
    target.close()
    local.close()


def test_an_uncached_id_is_a_one_line_input_error_naming_the_cache(hub_cache):
    with pytest.raises(InputError) as info:
        load_target("hf:meta-llama/Llama-3.1-8B-Instruct")
    message = str(info.value)
    assert "\n" not in message
    assert "meta-llama/Llama-3.1-8B-Instruct" in message and str(hub_cache) in message
    assert "never downloads" in message


def test_the_cli_reports_an_uncached_id_in_one_line_with_exit_2(hub_cache):
    from privaudit.cli import main

    result = CliRunner().invoke(main, ["targets", "check", "hf:org/absent"])
    assert result.exit_code == 2
    assert "org/absent" in result.output and str(hub_cache) in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_a_broken_snapshot_is_a_one_line_input_error(hub_cache):
    (hub_cache / "models--org--tiny" / "snapshots" / REV_A / "config.json").unlink()
    with pytest.raises(InputError, match="no config.json"):
        load_target("hf:org/tiny")


def test_a_local_path_wins_over_an_id_of_the_same_spelling(hub_cache, tmp_path, monkeypatch, tiny_model_dir):
    from safetensors.torch import load_file, save_file

    local = tmp_path / "work" / "org" / "tiny"
    shutil.copytree(tiny_model_dir, local)
    weights = load_file(local / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 1e-3
    save_file(weights, local / "model.safetensors", metadata={"format": "pt"})
    monkeypatch.chdir(tmp_path / "work")
    target = load_target("hf:org/tiny")
    assert target.model_id is None and target.model_path == Path("org/tiny")
    assert target.fingerprint() == HFTarget(local).fingerprint() != HFTarget(tiny_model_dir).fingerprint()
    target.close()


def test_resume_fingerprints_of_an_id_follow_refs_main(hub_cache, tmp_path, tiny_model_dir):
    """A resumed run checks `hf:ORG/NAME` from files alone; a new snapshot under refs/main is a change."""
    from safetensors.torch import load_file, save_file

    first = spec_fingerprint("hf:org/tiny")
    loaded = load_target("hf:org/tiny")
    assert first == loaded.fingerprint() == HFTarget.spec_fingerprint("org/tiny")
    loaded.close()
    manifest = {"target_fingerprints": {"hf:org/tiny": first}, "data_files": {}}
    check_resume(tmp_path, manifest, ["hf:org/tiny"], [], has_results=True)  # unchanged: resumes

    changed = tmp_path / "changed"
    shutil.copytree(tiny_model_dir, changed)
    weights = load_file(changed / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] * 1.5
    save_file(weights, changed / "model.safetensors", metadata={"format": "pt"})
    cache_model(hub_cache, "org/tiny", changed, REV_B)  # a newer download: refs/main now names REV_B
    assert spec_fingerprint("hf:org/tiny") != first
    with pytest.raises(RunIdentityError, match="target hf:org/tiny changed"):
        check_resume(tmp_path, manifest, ["hf:org/tiny"], [], has_results=True)


def test_cache_folder_follows_the_hub_environment_variables(monkeypatch, tmp_path):
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    assert hub_cache_dir() == Path.home() / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "explicit"))
    assert hub_cache_dir() == tmp_path / "explicit"


@pytest.mark.parametrize("text, expected", [
    ("meta-llama/Llama-3.1-8B-Instruct", True), ("gpt2", True), ("HuggingFaceTB/SmolLM2-135M", True),
    ("/models/llama", False), ("./llama", False), ("../llama", False), ("~/llama", False),
    ("a/b/c", False), ("org/..", False), ("", False),
])
def test_only_hub_shaped_locations_are_looked_up_as_ids(text, expected):
    assert is_model_id(text) is expected


def test_importing_the_hf_backend_leaves_the_environment_alone():
    """Regression: `privaudit.targets.hf` used to force HF_HUB_OFFLINE=1 on whoever imported it."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    code = ("import os, privaudit.targets.hf, privaudit.targets.builtin; "
            "print(os.environ.get('HF_HUB_OFFLINE'), os.environ.get('TRANSFORMERS_OFFLINE'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "None"]
