"""The real app in a real browser: `streamlit run app.py` driven by Playwright in headless Chromium.

Visits every page in one browser session (so state flows between pages as it
does for a user), clicks each page's main action on the default dataset with
tiny settings (EXPLORER_TINY=1 shrinks the defaults), checks that results
appear and that no exception box is shown, and saves a screenshot of each page
to test-artifacts/.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
EXCEPTION = '[data-testid="stException"]'
VIEW = {"width": 1400, "height": 1000}
LONG = 180_000  # ms: a tiny training on a busy 2-core CI machine


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    home = tmp_path_factory.mktemp("runs")
    env = {**os.environ, "EXPLORER_HOME": str(home), "EXPLORER_TINY": "1", "OMP_NUM_THREADS": "2"}
    log = open(tmp_path_factory.mktemp("log") / "streamlit.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless",
                             "true", "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
        if proc.poll() is not None:
            break
    else:
        proc.kill()
        log.seek(0)
        pytest.fail("streamlit did not start:\n" + log.read()[-3000:])
    if proc.poll() is not None:
        log.seek(0)
        pytest.fail("streamlit exited:\n" + log.read()[-3000:])
    yield url, home
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def page(server):
    exe = chromium_path()
    if exe is None:
        reason = "no Chromium binary found (install the Debian package `chromium`; scripts/test.sh does)"
        if os.environ.get("CI"):  # CI must run the real browser, never skip it
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport=VIEW)
        pg.set_default_timeout(60_000)
        yield pg
        browser.close()


def settle(pg) -> None:
    """Wait until the script run has finished (the status widget shows no 'running')."""
    pg.wait_for_selector('[data-testid="stApp"]')
    time.sleep(0.5)
    pg.wait_for_function("""() => { const w = document.querySelector('[data-testid="stStatusWidget"]');
                                   return !w || !w.innerText.includes('Running'); }""", timeout=LONG)
    time.sleep(0.5)


def go_to(pg, title: str) -> None:
    pg.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    pg.get_by_role("heading", name=title, exact=True).first.wait_for()
    settle(pg)


def snap(pg, name: str) -> None:
    """Screenshot of the whole page: Streamlit scrolls inside its main block, so the window grows to fit it."""
    ARTIFACTS.mkdir(exist_ok=True)
    assert pg.locator(EXCEPTION).count() == 0, pg.locator(EXCEPTION).first.inner_text()
    height = pg.evaluate("""() => { const m = document.querySelector('[data-testid="stMain"]');
                                   return m ? m.scrollHeight : document.body.scrollHeight; }""")
    pg.set_viewport_size({"width": VIEW["width"], "height": max(VIEW["height"], min(int(height), 9000))})
    time.sleep(1.0)  # charts re-layout to the new size
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    pg.set_viewport_size(VIEW)


def test_every_page_in_a_real_browser(server, page):
    url, home = server
    pg = page
    # A deep link as a fresh server's first request must still get app.py's frame and
    # navigation (Streamlit's legacy pages/ mode would list the page files instead).
    pg.goto(f"{url}/train")
    pg.get_by_role("heading", name="Train", exact=True).first.wait_for()
    settle(pg)
    links = pg.locator('[data-testid="stSidebarNav"] a')
    titles = [links.nth(i).inner_text().split("\n")[-1].strip() for i in range(links.count())]
    assert titles == ["Data", "Train", "Task relatedness", "Explain", "Models"], titles
    pg.goto(url)
    pg.get_by_role("heading", name="Data", exact=True).wait_for()
    settle(pg)
    pg.locator('[data-testid="stPlotlyChart"]').nth(1).wait_for()  # coverage and class balance
    snap(pg, "1-data")

    go_to(pg, "Train")
    pg.get_by_role("button", name="Train", exact=True).first.click()
    pg.get_by_text("Δm (mean gain over tasks)").wait_for(timeout=LONG)
    pg.locator('[data-testid="stPlotlyChart"]').nth(1).wait_for()  # gain bars and scores
    pg.get_by_text("Kept in the run store").wait_for(timeout=LONG)  # models saved for Explain and Models
    settle(pg)
    snap(pg, "2-train")
    assert len([p for p in home.iterdir() if p.is_dir()]) == 5  # together + each of the 4 default news tasks alone

    go_to(pg, "Task relatedness")
    pg.get_by_role("button", name="Run sweep").click()
    pg.get_by_text("Best grouping for a budget of k models").wait_for(timeout=LONG)
    settle(pg)
    snap(pg, "3-relatedness")

    go_to(pg, "Explain")
    pg.get_by_text("Word attributions per task").wait_for(timeout=LONG)
    pg.get_by_text("Single-task vs multi-task").wait_for(timeout=LONG)
    settle(pg)
    snap(pg, "4-explain")

    go_to(pg, "Models")
    pg.get_by_text("Primary test score per task").first.wait_for()
    settle(pg)
    snap(pg, "5-models")
