"""The live view: its JSON and event stream (authenticated like every route), and the page in a
real browser (headless Debian Chromium through Selenium) following a scan batch by batch."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from service_helpers import CREDENTIALS, TOKEN, acquire, open_session


@pytest.mark.parametrize("dose", ["from the spec", "from the counts"])
def test_live_state_follows_the_scan_and_needs_the_token(server, wire, recording, dose):
    extra = {} if dose == "from the spec" else {"electrons_per_pattern": None}
    opened = open_session(server, recording, strategy="halton", total=30, subsequence=10, **extra)
    sid = opened["session_id"]
    with server.http(token=None) as anonymous:
        assert anonymous.get(f"/sessions/{sid}/live").status_code == 401
        assert anonymous.get(f"/sessions/{sid}/events").status_code == 401
        assert anonymous.get("/sessions").status_code == 401
        page = anonymous.get(f"/sessions/{sid}/view")      # the page itself holds no data
        assert page.status_code == 200 and "view.js" in page.text and sid not in page.text
    used = np.zeros(recording.count, dtype=bool)
    frames, actual = acquire(recording, used, np.asarray(opened["positions_angstrom"]))
    reply = wire.batch(sid, 0, frames, actual)
    with server.http() as client:
        live = client.get(f"/sessions/{sid}/live").json()
        assert live["positions_acquired"] == 10 and live["acquired_step"] == [0] * 10
        np.testing.assert_allclose(live["acquired_angstrom"], actual)
        np.testing.assert_allclose(live["next_positions_angstrom"], reply["positions_angstrom"])
        assert live["steps"][0]["total_ms"] == pytest.approx(reply["timings"]["total_ms"])
        spec = client.get(f"/sessions/{sid}").json()["spec"]
        area = np.prod(spec["field_of_view_angstrom"])
        if spec["electrons_per_pattern"] is None:
            expected, source = frames.sum(dtype=np.float64) / area, "detected counts"
        else:
            expected, source = spec["electrons_per_pattern"] * 10 / area, "spec"
        assert live["dose_electrons_per_angstrom2"] == pytest.approx(expected) and live["dose_source"] == source
        assert sid in [s["session_id"] for s in client.get("/sessions").json()]


def test_the_event_stream_sends_a_state_after_each_batch(server, wire, recording):
    opened = open_session(server, recording, strategy="halton", total=20, subsequence=10)
    sid = opened["session_id"]
    used = np.zeros(recording.count, dtype=bool)
    positions = np.asarray(opened["positions_angstrom"])
    seen = []
    with server.http() as client:
        with client.stream("GET", f"/sessions/{sid}/events") as stream:
            lines = stream.iter_lines()
            for seq in range(2):
                frames, actual = acquire(recording, used, positions)
                positions = np.asarray(wire.batch(sid, seq, frames, actual)["positions_angstrom"])
            for line in lines:
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                    if seen[-1]["status"] != "open":
                        break
    assert [s["positions_acquired"] for s in seen][-1] == 20 and seen[-1]["status"] == "finished"
    assert all(a["version"] < b["version"] for a, b in zip(seen, seen[1:]))


def _browser():
    """Headless Chromium through Selenium, or a skip that says what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (make test installs it)")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("no browser: Debian's chromium and chromium-driver are not installed (make test installs them "
                    "where apt-get can; see the Makefile's `browser` target)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1100,800"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_the_page_shows_the_positions_and_updates_after_each_batch(server, wire, recording):
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _browser()
    try:
        opened = open_session(server, recording, strategy="halton", total=30, subsequence=10)
        sid = opened["session_id"]
        browser.get(f"{server.url}/sessions/{sid}/view#token={TOKEN}&session={CREDENTIALS[sid]}")
        wait = WebDriverWait(browser, 30)
        text = lambda element: browser.find_element("id", element).text  # noqa: E731
        wait.until(lambda _: text("status") == "open")
        assert "token" not in browser.current_url and "session=" not in browser.current_url   # out of the address bar
        used = np.zeros(recording.count, dtype=bool)
        positions = np.asarray(opened["positions_angstrom"])
        for seq, expected in ((0, 10), (1, 20)):
            frames, actual = acquire(recording, used, positions)
            positions = np.asarray(wire.batch(sid, seq, frames, actual)["positions_angstrom"])
            wait.until(lambda _: text("acquired") == str(expected))
            drawn = browser.execute_script("return window.viewState.view.acquired_angstrom.length")
            assert drawn == expected and text("steps") == str(seq + 1)
            assert browser.execute_script("return window.viewState.view.next_positions_angstrom.length") == 10
        wait.until(lambda _: browser.execute_script("return window.viewState.imageVersion") >= 0)   # the phase
        assert "e⁻/Å²" in text("dose")
    finally:
        browser.quit()


def test_replay_is_given_each_session_and_builds_its_live_view_url(server, recording):
    """What ``scan-client replay --view`` opens: the page of the session just opened, the server
    token and the session's credential only in the fragment."""
    from scan_client import ScanClient, run_scan

    from scan_server.emulation.recorded import RecordedMicroscope, spec_for

    opened: list = []
    with ScanClient(server.url, TOKEN) as client:
        result = run_scan(RecordedMicroscope(recording), client, spec_for(recording, "halton", 20, 10, 0),
                          on_open=opened.append)
        session = opened[0]
        assert session.id == result.session_id and session.token
        assert session.live_view_url() == \
            f"{server.url}/sessions/{session.id}/view#token={TOKEN}&session={session.token}"
        assert session.live_view_url(with_token=False) == f"{server.url}/sessions/{session.id}/view"
        assert client.live_view_url() == f"{server.url}/view#token={TOKEN}"
