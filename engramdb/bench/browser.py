"""A real headless Chromium (the system package, driven by Selenium through the system
chromedriver) for the inspector's benchmark and its tests. Nothing downloads a browser:
when Chromium is missing, this fails with the line that installs it (`make test` runs it)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..errors import MissingDependencyError

CHROMIUM = os.environ.get("ENGRAM_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("ENGRAM_CHROMEDRIVER", "/usr/bin/chromedriver")
INSTALL = "apt-get install -y chromium chromium-driver"
# The network is closed, and this browser talks to 127.0.0.1 only.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--disable-extensions", "--disable-default-apps", "--hide-scrollbars",
         "--force-device-scale-factor=1")


class Browser:
    """One Chromium with a fresh profile, quit (and the profile removed) by close()."""

    def __init__(self, width: int = 1200, height: int = 800) -> None:
        for path in (CHROMIUM, CHROMEDRIVER):
            if not Path(path).exists():
                raise MissingDependencyError(f"{path} is missing: install the browser with `{INSTALL}` "
                                             "(make test does)")
        try:
            from selenium import webdriver
            from selenium.webdriver.chrome.service import Service
        except ModuleNotFoundError:
            raise MissingDependencyError("driving the browser needs Selenium: pip install 'engramdb[test]'") from None
        os.environ.setdefault("SE_AVOID_STATS", "true")  # Selenium Manager is never needed: both paths are given
        self.profile = tempfile.mkdtemp(prefix="engram-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        options.add_argument(f"--window-size={width},{height}")
        self.driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
        self.driver.set_page_load_timeout(30)

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)
