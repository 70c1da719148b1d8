"""Open a report in headless Chromium: the rendered DOM and a PNG screenshot, with no network.

Used by the browser tests (charts and tables really render, hostile output stays text) and by
docs/make_screenshot.py. Chromium runs with a fresh throw-away profile and an unreachable proxy
(127.0.0.1:9), so a report that tried to load anything from the network would render without it,
and nothing leaves the machine. A test passes `proxy` (a local server that records what reaches
it, loopback included) to see whether the page asked for anything.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DEAD_PROXY = "127.0.0.1:9"  # the discard port: nothing listens, every proxied request fails


def find_chromium() -> str | None:
    """Path of the first Chromium-like binary on PATH, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(args: list[str], timeout_s: float, proxy: str = DEAD_PROXY) -> subprocess.CompletedProcess[str]:
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("no chromium binary on PATH (install the Debian 'chromium' package)")
    with tempfile.TemporaryDirectory(prefix="privaudit-chromium-") as profile:
        cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
               "--no-first-run", "--no-default-browser-check", "--disable-extensions",
               # less of Chromium's own background traffic (some service calls remain: see tests/browser_sink.py)
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-default-apps", "--no-pings", "--disable-domain-reliability",
               "--disable-client-side-phishing-detection", "--safebrowsing-disable-auto-update",
               "--metrics-recording-only", "--no-service-autorun", "--password-store=basic",
               "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate,MediaRouter,"
               "DialMediaRouteProvider,AutofillServerCommunication,CertificateTransparencyComponentUpdater",
               f"--proxy-server={proxy}", "--proxy-bypass-list=<-loopback>", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        raise RuntimeError(f"chromium exited {proc.returncode}: {' | '.join(tail)}")
    return proc


def dump_dom(html_path: Path, timeout_s: float = 90, proxy: str = DEAD_PROXY) -> str:
    """The document's DOM after Chromium parsed and rendered it (`--dump-dom`), every proxied
    request (loopback included, `<-loopback>`) sent to `proxy`."""
    return _run(["--dump-dom", Path(html_path).resolve().as_uri()], timeout_s, proxy).stdout


def screenshot(html_path: Path, png_path: Path, width: int = 1280, height: int = 2000, timeout_s: float = 90) -> Path:
    """A PNG of the top `width` x `height` pixels of the rendered report."""
    png_path = Path(png_path).resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--screenshot={png_path}", f"--window-size={width},{height}", "--hide-scrollbars",
          Path(html_path).resolve().as_uri()], timeout_s)
    if not png_path.is_file() or png_path.read_bytes()[:8] != PNG_MAGIC:
        raise RuntimeError(f"chromium wrote no PNG at {png_path}")
    return png_path
