"""Headless Chromium driven by Selenium: Debian's ``chromium`` and ``chromium-driver``.

    driver = chromium(tmp_path / "profile")
    driver.get("http://127.0.0.1:8000/console/runs")
    driver.quit()

The packages are installed by ``scripts/install-chromium.sh`` (``make chromium``,
a prerequisite of ``make test``); a machine without them fails the tests that need
a browser with that hint, as a missing Docker engine does. Each driver gets a
fresh profile and the flags that run here (no sandbox: the tests run as root).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

__all__ = ["FLAGS", "chromium", "output_dir"]

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
ROOT = Path(__file__).resolve().parents[2]


def output_dir(name: str) -> Path:
    """``test-output/<name>`` in the checkout (gitignored): screenshots to look at."""
    path = ROOT / "test-output" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def chromium(profile: Path, *, width: int = 1280, height: int = 900) -> webdriver.Chrome:
    browser = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.fail(
            "the console's browser tests need Debian's chromium and chromium-driver: "
            "run `make chromium` (scripts/install-chromium.sh) as root",
            pytrace=False,
        )
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))
