"""CLI basics: version, one-line errors with exit code 2, never a traceback."""

from __future__ import annotations

from click.testing import CliRunner

from privaudit import __version__
from privaudit.cli import main


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_missing_audit_file_is_a_one_line_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["run", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "nope.toml: no such file" in result.output
    assert "Traceback" not in result.output


def test_invalid_toml_key_names_the_key(tmp_path):
    spec = tmp_path / "audit.toml"
    spec.write_text('targets = ["builtin:smollm2-135m"]\nbatchsize = 4\n[attacks.pii]\n')
    result = CliRunner().invoke(main, ["run", str(spec)])
    assert result.exit_code == 2
    assert "audit.toml: batchsize: unknown key" in result.output


def test_unknown_target_scheme_is_a_usage_error(tmp_path):
    from privaudit.errors import InputError
    from privaudit.targets.base import load_target
    import pytest

    with pytest.raises(InputError, match="unknown target scheme 'gguf'"):
        load_target("gguf:/models/x")
    with pytest.raises(InputError, match="has no scheme"):
        load_target("just-a-path")
