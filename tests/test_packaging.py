"""One import namespace: attacks/, defenses/ and reports/ install as privaudit.* (editable and wheel)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NAMESPACED = ("privaudit.attacks", "privaudit.defenses", "privaudit.reports")


def test_editable_install_maps_folders_into_the_namespace():
    for name in NAMESPACED:
        module = __import__(name, fromlist=["_"])
        folder = name.split(".")[1]
        assert Path(module.__file__).resolve().parent == REPO / folder


@pytest.mark.slow
def test_wheel_installs_one_namespace_without_generic_top_level_names(tmp_path):
    wheel_dir, site = tmp_path / "wheel", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheel_dir), str(REPO)], check=True, capture_output=True)
    (wheel,) = wheel_dir.glob("privaudit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names if not n.startswith("privaudit-")}
    assert top_level == {"privaudit"}, top_level
    assert "privaudit/attacks/base.py" in names and "privaudit/reports/json.py" in names
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    code = "import sys, privaudit.attacks as a, privaudit.defenses as d, privaudit.reports as r; print(a.__file__, d.__file__, r.__file__)"
    # -S: no .pth processing, so the editable install's finder is out of the way; the wheel's copy
    # comes first and third-party dependencies still resolve from site-packages.
    path = f"{site}:{sysconfig.get_paths()['purelib']}"
    out = subprocess.run([sys.executable, "-S", "-c", code], env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin"}, cwd=tmp_path,
                         check=True, capture_output=True, text=True).stdout.split()
    assert all(path.startswith(str(site)) for path in out), out
