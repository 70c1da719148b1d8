"""Open a report in headless Chromium: the rendered DOM and a PNG screenshot, with no network.

Used by the browser test (charts and tables really render) and by docs/make_screenshot.py.
Chromium runs with a fresh throw-away profile and an unreachable proxy (127.0.0.1:9), so a
report that tried to load anything from the network would render without it, and nothing leaves
the machine.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def find_chromium() -> str | None:
    """Path of the first Chromium-like binary on PATH, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(args: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("no chromium binary on PATH (install the Debian 'chromium' package)")
    with tempfile.TemporaryDirectory(prefix="privaudit-chromium-") as profile:
        cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
               "--no-first-run", "--no-default-browser-check", "--disable-extensions",
               "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        raise RuntimeError(f"chromium exited {proc.returncode}: {' | '.join(tail)}")
    return proc


def dump_dom(html_path: Path, timeout_s: float = 90) -> str:
    """The document's DOM after Chromium parsed and rendered it (`--dump-dom`)."""
    return _run(["--dump-dom", Path(html_path).resolve().as_uri()], timeout_s).stdout


def screenshot(html_path: Path, png_path: Path, width: int = 1280, height: int = 2000, timeout_s: float = 90) -> Path:
    """A PNG of the top `width` x `height` pixels of the rendered report."""
    png_path = Path(png_path).resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--screenshot={png_path}", f"--window-size={width},{height}", "--hide-scrollbars",
          Path(html_path).resolve().as_uri()], timeout_s)
    if not png_path.is_file() or png_path.read_bytes()[:8] != PNG_MAGIC:
        raise RuntimeError(f"chromium wrote no PNG at {png_path}")
    return png_path
