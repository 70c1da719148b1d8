"""The lazy plugin import shared by the target, attack and defense registries."""

from __future__ import annotations

import sys

import pytest

from privaudit.plugins import import_plugin


def test_an_absent_plugin_module_is_skipped():
    import_plugin("privaudit_no_such_plugin_module")  # no exception: the plugin just stays unregistered


def test_a_missing_dependency_inside_a_present_plugin_is_not_hidden(tmp_path, monkeypatch):
    (tmp_path / "privaudit_broken_plugin.py").write_text("import privaudit_no_such_dependency\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="privaudit_no_such_dependency"):
        import_plugin("privaudit_broken_plugin")
    sys.modules.pop("privaudit_broken_plugin", None)
