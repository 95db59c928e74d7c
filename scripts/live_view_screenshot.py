"""The README's screenshot of the live view: a finished replay of a simulated MoS₂ island with the
shipped model's value map, photographed in headless Chromium (Debian's, through Selenium).

    .venv/bin/python scripts/live_view_screenshot.py --out docs/live-view.png
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from scan_client import ScanClient, run_scan
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from scan_server.emulation.local_server import LocalServer
from scan_server.emulation.recorded import RecordedMicroscope, spec_for
from scan_server.io.canonical import read_recording
from scan_server.physics.simulate import preset, simulate_recording
from scan_server.policy import DEFAULT_MODEL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--strategy", default="value-map")
    parser.add_argument("--positions", type=int, default=250)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="live-view-"))
    try:
        simulate_recording(preset("paper", family="island"), 50001, work / "island.h5", progress=False)
        acquisition = read_recording(work / "island.h5")
        with LocalServer(work / "sessions", work / "server.log", models_dir="models", model=DEFAULT_MODEL,
                         device="cpu") as server, ScanClient(server.url, server.token, timeout_s=120) as client:
            opened: list = []
            run_scan(RecordedMicroscope(acquisition), client,
                     spec_for(acquisition, args.strategy, args.positions, 50, 0, label="live view"), opened.append)
            options = webdriver.ChromeOptions()
            options.binary_location = shutil.which("chromium")
            for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1060,800"):
                options.add_argument(argument)
            browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
            try:
                browser.get(opened[0].live_view_url())
                WebDriverWait(browser, 60).until(
                    lambda b: b.execute_script("return window.viewState.imageVersion") >= 0)
                browser.save_screenshot(str(args.out))
            finally:
                browser.quit()
        print(f"wrote {args.out} ({args.strategy}, {args.positions} positions)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
