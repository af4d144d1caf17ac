"""A real headless browser for the fleet's HTML pages (Debian's `chromium` package).

Tests that need it skip with a one-line reason where it is not installed
(`apt-get install -y chromium`).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


needs_chromium = pytest.mark.skipif(
    chromium() is None, reason="needs chromium (apt-get install -y chromium)"
)


def dump_dom(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran, as chromium's --dump-dom prints it."""
    browser = chromium()
    assert browser is not None
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--no-first-run",
         f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
