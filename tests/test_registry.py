"""The one Registry type: decorators, lazy built-in modules, entry points and PRIVAUDIT_PLUGINS.

Entry points are found the way pip leaves them: a `NAME-VERSION.dist-info` folder (METADATA and
entry_points.txt) on sys.path, read by importlib.metadata. (tests/test_plugin_distribution.py
pip-installs a real distribution and runs it through the CLI.)
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from privaudit.errors import InputError
from privaudit.registry import PLUGINS_ENV, Registry

GROUP = "privaudit_test.widgets"


def _dist(root: Path, name: str, entry_points: dict[str, str], modules: dict[str, str] | None = None) -> None:
    """An installed distribution as importlib.metadata sees it: dist-info + its modules under `root`."""
    info = root / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n", encoding="utf-8")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{lines}\n", encoding="utf-8")
    for module, text in (modules or {}).items():
        (root / f"{module}.py").write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path for fake installed distributions; their modules are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(PLUGINS_ENV, raising=False)
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("rtest_"):
            sys.modules.pop(name, None)


class Widget:
    def __init__(self, name: str) -> None:
        self.name = name


def test_decorator_lookup_and_one_line_error_listing_known_names() -> None:
    reg: Registry[Widget] = Registry("widget")
    reg.register("a")(Widget("a"))
    reg.register()(Widget("b"))  # by the object's own `name`
    assert reg.get("a").name == "a" and reg.names() == ["a", "b"] and "b" in reg and "c" not in reg
    with pytest.raises(InputError) as exc:
        reg.get("c", where=" in 'spec.toml'")
    assert str(exc.value) == "unknown widget 'c' in 'spec.toml' (known: a, b)"
    reg.remove("a")
    assert reg.names() == ["b"] and reg.find("a") is None


def test_validate_rejects_what_breaks_the_contract() -> None:
    def must_be_widget(name: str, obj: object) -> None:
        if not isinstance(obj, Widget):
            raise TypeError(f"{name}: not a Widget")

    reg: Registry[Widget] = Registry("widget", validate=must_be_widget)
    with pytest.raises(TypeError, match="not a Widget"):
        reg.add("x", "a string")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty name"):
        reg.add("", Widget(""))


BUILTIN_REG: Registry[Widget] = Registry("widget", builtins={"bi": "rtest_builtin_mod"})
MODULE_REG: Registry[Widget] = Registry("widget", GROUP)


def test_builtin_modules_are_listed_without_import_and_imported_on_first_lookup(site: Path) -> None:
    (site / "rtest_builtin_mod.py").write_text(
        "import test_registry as t\nt.BUILTIN_REG.register('bi')(t.Widget('bi'))\n", encoding="utf-8")
    assert BUILTIN_REG.names() == ["bi"] and "bi" in BUILTIN_REG and "rtest_builtin_mod" not in sys.modules
    assert BUILTIN_REG.get("bi").name == "bi" and "rtest_builtin_mod" in sys.modules


def test_entry_point_objects_and_modules_load_lazily_by_name(site: Path) -> None:
    _dist(site, "rtest-plugs", {"w_obj": "rtest_plug_obj:WIDGET", "w_mod": "rtest_plug_mod"}, {
        "rtest_plug_obj": "from test_registry import Widget\nWIDGET = Widget('w_obj')\n",
        "rtest_plug_mod": "import test_registry as t\nt.MODULE_REG.register('w_mod')(t.Widget('w_mod'))\n",
    })
    reg = MODULE_REG
    assert reg.names() == ["w_mod", "w_obj"] and "w_obj" in reg
    assert "rtest_plug_obj" not in sys.modules and "rtest_plug_mod" not in sys.modules  # listing imports nothing
    assert reg.get("w_obj").name == "w_obj" and "rtest_plug_mod" not in sys.modules  # only what is asked for
    assert reg.get("w_mod").name == "w_mod"
    assert list(reg.load_all()) == ["w_mod", "w_obj"]


@pytest.mark.parametrize("env, expected", [
    (None, ["a1", "a2", "b1"]),
    ("none", []),
    ("", []),
    ("a2", ["a2"]),
    ("rtest-dist-b", ["b1"]),  # a distribution's name selects all its entry points
    ("RTest_Dist_A, b1", ["a1", "a2", "b1"]),  # compared as normalized names (PEP 503)
])
def test_privaudit_plugins_limits_outside_plugins(site: Path, monkeypatch, env, expected) -> None:
    text = "from test_registry import Widget\nA1, A2, B1 = Widget('a1'), Widget('a2'), Widget('b1')\n"
    _dist(site / "a", "rtest-dist-a", {"a1": "rtest_env_mod:A1", "a2": "rtest_env_mod:A2"}, {"rtest_env_mod": text})
    _dist(site / "b", "rtest-dist-b", {"b1": "rtest_env_mod:B1"})
    monkeypatch.syspath_prepend(str(site / "b"))
    monkeypatch.syspath_prepend(str(site / "a"))
    if env is not None:
        monkeypatch.setenv(PLUGINS_ENV, env)
    reg: Registry[Widget] = Registry("widget", GROUP, builtins={"core": "rtest_no_such_module"})
    assert reg.names() == sorted(["core", *expected])
    assert [w.name for w in reg.load_all().values()] == expected  # the absent built-in module is skipped
    if "a1" not in expected:
        with pytest.raises(InputError, match=r"unknown widget 'a1' \(known: "):
            reg.get("a1")


def test_a_plugin_cannot_take_a_builtin_name(site: Path) -> None:
    _dist(site, "rtest-shadow", {"core": "rtest_shadow:W"},
          {"rtest_shadow": "from test_registry import Widget\nW = Widget('core')\n"})
    reg: Registry[Widget] = Registry("widget", GROUP, builtins={"core": "rtest_no_such_module"})
    with pytest.warns(RuntimeWarning, match="'core' is a built-in widget"):
        assert reg.names() == ["core"]
    assert reg.find("core") is None and "rtest_shadow" not in sys.modules


def test_broken_misnamed_and_duplicate_plugins_are_one_line_errors(site: Path, monkeypatch) -> None:
    _dist(site / "a", "rtest-bad", {"broken": "rtest_broken:W", "misnamed": "rtest_ok:W", "silent": "rtest_ok",
                                    "twice": "rtest_ok:W"},
          {"rtest_broken": "import rtest_no_such_dependency\n",
           "rtest_ok": "from test_registry import Widget\nW = Widget('other')\n"})
    _dist(site / "b", "rtest-bad-too", {"twice": "rtest_ok:W2"})
    monkeypatch.syspath_prepend(str(site / "b"))
    monkeypatch.syspath_prepend(str(site / "a"))
    reg: Registry[Widget] = Registry("widget", GROUP)
    cases = {
        "broken": "failed to load: ModuleNotFoundError: No module named 'rtest_no_such_dependency'",
        "misnamed": "it names widget 'other'; the entry point's name must be 'other'",
        "silent": "registered no widget named 'silent'",
        "twice": "2 plugins provide widget 'twice'",
    }
    for name, message in cases.items():
        with pytest.raises(InputError) as exc:
            reg.get(name)
        line = str(exc.value)
        assert message in line and "\n" not in line and PLUGINS_ENV in line, line
        assert "rtest-bad" in line  # the distribution to blame


def test_report_formats_keep_the_builtins_when_another_format_registers_first() -> None:
    """The bug: `_register_builtin` returned early once any format existed, dropping json/html/..."""
    code = ("from privaudit.reports import available_formats, report_format, write_summary_formats\n"
            "report_format('txt', 'summary.txt')(lambda s: 'x')\n"
            "print(','.join(available_formats()))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["json,html,junit,markdown,txt"]


def test_registries_list_names_without_importing_heavy_modules() -> None:
    """Checking an audit spec names attacks, schemes and defenses; none may pull torch/opacus/flwr."""
    code = ("import sys\n"
            "from privaudit.attacks.base import ATTACKS\nfrom privaudit.targets.base import TARGETS\n"
            "from privaudit.defenses.registry import DEFENSES\nfrom privaudit.reports import FORMATS\n"
            "assert {'pii', 'membership'} <= set(ATTACKS.names()) and 'hf' in TARGETS and 'dp_sgd' in DEFENSES\n"
            "assert 'html' in FORMATS and TARGETS.get('openai')\n"
            "heavy = ('torch', 'opacus', 'flwr', 'privaudit.defenses.output_filter',\n"
            "         'privaudit.attacks.pii_extraction')\n"
            "print(sorted(m for m in heavy if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_target_registry_names_output_filter_without_importing_defenses() -> None:
    source = (Path(__file__).parents[1] / "privaudit" / "targets" / "base.py").read_text(encoding="utf-8")
    assert "import privaudit.defenses" not in source and "from privaudit.defenses" not in source
    from privaudit.targets.base import TARGETS

    assert TARGETS.builtins["output_filter"] == "privaudit.defenses.output_filter"
    assert callable(TARGETS.get("output_filter"))
