"""The operator console in a real browser (headless Chromium) against a real daemon with real runs.

One daemon and one browser for the module (the tests run in order: the last one
removes the browser's token and sees it signed out). A session with pandas and
matplotlib starts in the background at the beginning, while the runs are tested.
Screenshots of each page go to test-output/console/ for a person to look at.

Security cases: output, artifact names and HTML (an artifact, a cell's
``_repr_html_``) that would set a canary on the console page if any of it ran
in the console's origin; a form posted from another origin without the CSRF token.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.browser import chromium, output_dir
from tests.support.console import (
    CANARY,
    CONSOLE_TOKEN,
    FAILING,
    HEIGHT,
    HOSTILE,
    HOSTILE_SHOWN,
    RAN,
    WIDTH,
)
from tests.support.daemon import Daemon
from tests.support.wait import poll

pytestmark = pytest.mark.integration

LIVE = "import time\nfor i in range(40):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.1)\n"
# A 160x90 bar chart as a PNG, made with the standard library only: no install needed.
PNG = (
    "import struct, zlib\n"
    "def chunk(kind, data):\n"
    "    body = kind + data\n"
    "    return struct.pack('>I', len(data)) + body + struct.pack('>I', zlib.crc32(body))\n"
    "heights = [30, 70, 50, 85]\n"
    "def pixel(x, y):\n"
    "    bar = x // 40\n"
    "    inside = 8 < x % 40 < 32 and 90 - y <= heights[bar]\n"
    "    return b'\\x1f\\x5f\\xbf' if inside else b'\\xff\\xff\\xff'\n"
    "rows = b''.join(b'\\x00' + b''.join(pixel(x, y) for x in range(160)) for y in range(90))\n"
    "png = (b'\\x89PNG\\r\\n\\x1a\\n'\n"
    "       + chunk(b'IHDR', struct.pack('>IIBBBBB', 160, 90, 8, 2, 0, 0, 0))\n"
    "       + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))\n"
    "open('outputs/chart.png', 'wb').write(png)\n"
    "print('wrote the chart')\n"
)
SALES_CSV = b"region,units\nnorth,7\nsouth,5\n<b>east</b>,3\n"
READ_SALES = "print(open('/data/sales/sales.csv').read())"
SESSION_CELLS = (
    "import pandas as pd\nimport matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
    "df = pd.DataFrame({'region': ['north', 'south', 'east'], 'units': [7, 5, 3]})",
    "df",
    "ax = df.plot.bar(x='region', y='units', legend=False)\nax.set_title('Units by region')\nplt.show()",
    "class Evil:\n    def _repr_html_(self):\n"
    "        return ('<b id=evil>evil</b><script>parent.document.body.dataset.pwned = \"cell\"'\n"
    "                '</script><img src=x onerror=\"parent.document.body.dataset.pwned = 3\">')\n"
    "Evil()",
)


def _start_session(daemon: Daemon) -> str:
    """A session with a table, a chart and hostile HTML among its cells; its id."""
    with daemon.client(timeout=300) as http:
        created = http.post("/v1/sessions", json={"requirements": ["pandas", "matplotlib"]})
        assert created.status_code == 201, created.text
        session_id: str = created.json()["id"]
        for code in SESSION_CELLS:
            cell = http.post(f"/v1/sessions/{session_id}/cells", json={"code": code})
            assert cell.status_code == 200 and cell.json()["status"] == "succeeded", cell.text
    return session_id


@pytest.fixture(scope="module")
def session_id(daemon: Daemon) -> Iterator[Future[str]]:
    """The session's id, made in the background from the module's start."""
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(_start_session, daemon)
        yield future
        if future.done() and future.exception() is None:
            daemon.client().delete(f"/v1/sessions/{future.result()}")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"), width=WIDTH, height=HEIGHT)
    try:
        yield driver
    finally:
        driver.quit()


class Console:
    """The browser on the daemon's console, with the module's waits and screenshots."""

    def __init__(self, driver: WebDriver, daemon: Daemon) -> None:
        self.driver = driver
        self.daemon = daemon
        self.shots = output_dir("console")

    def open(self, path: str) -> None:
        self.driver.get(f"{self.daemon.url}/console{path}")

    def wait(self, check: Callable[[], Any], what: str, timeout_s: float = 30) -> Any:
        return poll(
            check,
            timeout_s=timeout_s,
            what=what,
            interval_s=0.1,
            diagnostics=lambda: f"at {self.driver.current_url}:\n{self.text()[-3000:]}",
        )

    def text(self) -> str:
        try:
            return str(self.driver.find_element(By.TAG_NAME, "body").text)
        except (NoSuchElementException, StaleElementReferenceException):
            return ""  # between two pages: the next has no body yet, or replaced it meanwhile

    def text_of(self, element_id: str) -> str:
        """The element's text; "" while the page that has it is loading or being replaced."""
        try:
            return str(self.driver.find_element(By.ID, element_id).text)
        except (NoSuchElementException, StaleElementReferenceException):
            return ""

    def has(self, selector: str) -> bool:
        return bool(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def shoot(self, name: str) -> None:
        """A screenshot of the whole page (the window grows to fit it, up to a bound)."""
        height = self.driver.execute_script(
            "return document.documentElement.scrollHeight + window.outerHeight - window.innerHeight"
        )
        self.driver.set_window_size(WIDTH, min(max(int(height), HEIGHT), 4000))
        try:
            self.driver.save_screenshot(str(self.shots / f"{name}.png"))
        finally:
            self.driver.set_window_size(WIDTH, HEIGHT)

    def click(self, selector: str, what: str) -> None:
        """Click the element once it is there, again if a refresh replaced it meanwhile."""

        def clicked() -> bool:
            try:
                found = self.driver.find_elements(By.CSS_SELECTOR, selector)
                if found:
                    found[0].click()
                return bool(found)
            except StaleElementReferenceException:
                return False

        self.wait(clicked, what)

    def canary(self) -> object:
        return self.driver.execute_script(f"return {CANARY}")

    def submit(self, code: str, **fields: Any) -> str:
        return self.daemon.submit(code, **fields)


@pytest.fixture(scope="module")
def console(browser: WebDriver, daemon: Daemon, session_id: Future[str]) -> Console:
    return Console(browser, daemon)


def test_sign_in_with_a_token(console: Console) -> None:
    console.open("/runs")
    console.wait(lambda: "/console/login" in console.driver.current_url, "the login page")
    console.shoot("login")
    field = console.driver.find_element(By.ID, "token")
    field.send_keys("not-a-token\n")
    console.wait(lambda: "not accepted" in console.text(), "the refusal")
    console.driver.find_element(By.ID, "token").send_keys(CONSOLE_TOKEN + "\n")
    console.wait(lambda: console.driver.current_url.endswith("/console/runs"), "the runs page")
    assert "(admin, config-" in console.text() and "Sign out" in console.text()


def test_a_failed_run_shows_its_traceback(console: Console) -> None:
    run_id = console.submit(FAILING)
    console.daemon.wait_terminal(run_id)
    console.open("/runs?status=failed")
    console.wait(lambda: console.has(f"a[href$='/runs/{run_id}']"), "the failed run listed")
    console.shoot("runs")
    console.driver.find_element(By.CSS_SELECTOR, f"a[href$='/runs/{run_id}']").click()
    console.wait(lambda: "ZeroDivisionError" in console.text(), "the traceback")
    stderr = console.driver.find_element(By.ID, "stderr").text
    assert "Traceback (most recent call last)" in stderr and "divide(1, 0)" in stderr
    assert console.driver.find_element(By.ID, "run-status").text == "failed"
    assert console.has("pre.code span.k")  # the code is highlighted
    console.shoot("run-failed")


def test_a_running_run_shows_its_output_live(console: Console) -> None:
    run_id = console.submit(LIVE)
    console.open(f"/runs/{run_id}")
    assert console.has("[data-events]"), "the page of an active run follows its events"
    console.wait(lambda: "tick 5" in console.text_of("stdout"), "output")
    # Still the same page (no reload yet), still running: the output arrived live.
    assert console.has("[data-events]")
    assert console.driver.find_element(By.ID, "run-status").text == "running"
    console.shoot("run-live")
    console.wait(lambda: not console.has("[data-events]"), "the final page", timeout_s=60)
    assert console.driver.find_element(By.ID, "run-status").text == "succeeded"
    assert "tick 39" in console.driver.find_element(By.ID, "stdout").text


def test_a_png_artifact_is_shown_and_opens(console: Console) -> None:
    run_id = console.submit(PNG)
    console.daemon.wait_terminal(run_id)
    console.open(f"/runs/{run_id}")
    image = console.wait(
        lambda: console.driver.find_elements(By.CSS_SELECTOR, ".preview img"), "the preview"
    )[0]
    console.wait(
        lambda: console.driver.execute_script("return arguments[0].naturalWidth", image) == 160,
        "the image decoded",
    )
    console.shoot("run-artifact")
    console.driver.find_element(By.CSS_SELECTOR, "a.preview").click()
    console.wait(lambda: console.driver.current_url.endswith("/preview/chart.png"), "the image")
    assert console.driver.execute_script("return document.images[0].naturalWidth") == 160


def test_hostile_output_names_and_html_run_nothing(console: Console) -> None:
    run_id = console.submit(HOSTILE)
    console.daemon.wait_terminal(run_id)
    console.open(f"/runs/{run_id}")
    frame = console.wait(lambda: console.driver.find_elements(By.CSS_SELECTOR, "iframe"), "frame")
    console.driver.switch_to.frame(frame[0])
    console.wait(lambda: console.has("#hello"), "the HTML artifact in its frame")
    assert console.driver.execute_script(f"return {RAN}") is None
    console.driver.switch_to.default_content()
    assert all(shown in console.text() for shown in HOSTILE_SHOWN)  # as text
    assert console.canary() is None
    console.shoot("run-hostile")
    # Opened on its own, the HTML is still sandboxed: its script does not run.
    console.open(f"/runs/{run_id}/preview/evil.html")
    console.wait(lambda: console.has("#hello"), "the HTML artifact alone")
    assert console.driver.execute_script(f"return {RAN}") is None


class _Attacker(http.server.BaseHTTPRequestHandler):
    page = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_cross_site_post_is_refused_and_cancel_works(console: Console) -> None:
    run_id = console.submit("import time\nprint('waiting', flush=True)\ntime.sleep(50)")
    console.open(f"/runs/{run_id}")
    console.wait(lambda: console.text_of("run-status") == "running", "the run running")
    # Another origin (same site: a different port) posts the cancel form without a token.
    target = f"{console.daemon.url}/console/runs/{run_id}/cancel"
    _Attacker.page = (
        f'<form id="f" method="post" action="{target}"><input name="x" value="1"></form>'
        "<script>document.getElementById('f').submit()</script>"
    ).encode()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Attacker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        console.driver.get(f"http://127.0.0.1:{server.server_address[1]}/")
        console.wait(lambda: "refused" in console.text(), "the refusal")
    finally:
        server.shutdown()
        server.server_close()
    assert console.daemon.record(run_id)["status"] == "running"
    console.open(f"/runs/{run_id}")
    console.click("#cancel", "the cancel button")
    console.wait(lambda: console.text_of("run-status") == "cancelled", "cancelled")
    assert console.daemon.record(run_id)["status"] == "cancelled"
    console.shoot("run-cancelled")


def test_a_session_shows_its_table_and_chart(console: Console, session_id: Future[str]) -> None:
    found = session_id.result(timeout=300)
    console.open("/sessions")
    console.wait(lambda: console.has(f"a[href$='/sessions/{found}']"), "the session listed")
    console.shoot("sessions")
    console.driver.find_element(By.CSS_SELECTOR, f"a[href$='/sessions/{found}']").click()
    console.wait(lambda: console.has("img.figure") and console.has("iframe.frame"), "outputs")
    figure = console.driver.find_element(By.CSS_SELECTOR, "img.figure")
    console.wait(
        lambda: console.driver.execute_script("return arguments[0].naturalWidth", figure) > 100,
        "the chart decoded",
    )
    frames = console.driver.find_elements(By.CSS_SELECTOR, "iframe.frame")
    assert len(frames) == 2  # the DataFrame and the hostile HTML
    console.driver.switch_to.frame(frames[0])
    console.wait(lambda: "north" in console.text() and console.has("table"), "the DataFrame")
    console.driver.switch_to.default_content()
    console.driver.switch_to.frame(frames[1])
    console.wait(lambda: console.has("#evil"), "the hostile HTML in its frame")
    console.driver.switch_to.default_content()
    assert console.canary() is None
    console.shoot("session")


def test_a_session_pauses_and_resumes_from_its_page(
    console: Console, session_id: Future[str]
) -> None:
    found = session_id.result(timeout=300)
    console.open(f"/sessions/{found}")
    console.wait(lambda: console.has("pre.cell-code span.k"), "the cells' code, highlighted")
    assert "df = pd.DataFrame" in console.text()
    console.click("#pause", "the pause button")
    console.wait(lambda: "paused: checkpointed" in console.text(), "paused", timeout_s=120)
    assert console.daemon.client().get(f"/v1/sessions/{found}").json()["status"] == "paused"
    assert not console.has("#pause")
    console.shoot("session-paused")
    console.click("#resume", "the resume button")
    console.wait(lambda: "live: a container" in console.text(), "resumed", timeout_s=120)
    with console.daemon.client(timeout=120) as http:
        cell = http.post(f"/v1/sessions/{found}/cells", json={"code": "int(df.units.sum())"})
    assert cell.json()["result"]["data"]["text/plain"] == "15", cell.text  # df came back
    audit = console.daemon.client().get("/v1/audit", params={"action": "session."}).json()
    actions = [(e["action"], e["object_id"]) for e in audit["items"]]
    assert ("session.pause", found) in actions and ("session.resume", found) in actions


def test_health_page(console: Console) -> None:
    console.open("/health")
    console.wait(
        lambda: "docker" in console.text() and "queued" in console.text().lower(), "health"
    )
    assert "ready" in console.text()
    console.shoot("health")


def test_a_dataset_is_listed_with_its_versions_files_and_preview(console: Console) -> None:
    with console.daemon.client() as http:
        put = http.post(
            "/v1/datasets/sales/versions",
            params={"path": "sales.csv"},
            content=SALES_CSV,
            headers={"content-type": "application/octet-stream"},
        )
    assert put.status_code == 201, put.text
    console.open("/datasets")
    console.wait(lambda: console.has("a[href$='/datasets/sales?tenant=admin']"), "listed")
    console.shoot("datasets")
    console.driver.find_element(By.CSS_SELECTOR, "a[href$='/datasets/sales?tenant=admin']").click()
    console.wait(lambda: "version 1" in console.text(), "its versions")
    console.driver.find_element(By.LINK_TEXT, "version 1").click()
    console.wait(lambda: "sales.csv" in console.text() and console.has("#describe"), "its files")
    assert put.json()["digest"] in console.text()
    console.shoot("dataset-version")
    console.driver.find_element(By.ID, "describe").click()
    console.wait(lambda: console.has("table.preview-rows"), "the preview", timeout_s=120)
    cells = [c.text for c in console.driver.find_elements(By.CSS_SELECTOR, ".preview-rows td")]
    assert "<b>east</b>" in cells and "north" in cells  # a value shown as text
    assert "3 rows" in console.text() and console.canary() is None
    console.shoot("dataset-describe")
    run_id = console.submit(READ_SALES, datasets=["sales"])
    assert console.daemon.wait_terminal(run_id)["status"] == "succeeded"
    console.open(f"/runs/{run_id}")
    mounts = console.wait(lambda: console.driver.find_elements(By.ID, "datasets"), "mounts")
    assert "/data/sales" in mounts[0].text and "version 1" in mounts[0].text


def _sign_in(console: Console, token: str) -> None:
    console.driver.delete_all_cookies()
    console.open("/login")
    console.driver.find_element(By.ID, "token").send_keys(token + "\n")
    console.wait(lambda: console.driver.current_url.endswith("/console/runs"), "the runs page")


def test_another_tenant_sees_nothing_and_a_revoked_token_signs_out(console: Console) -> None:
    admins_run = console.submit("print('the admin tenant')")
    with console.daemon.client() as http:
        assert http.post("/v1/tenants", json={"name": "team-b"}).status_code == 201
        made = http.post("/v1/tokens", json={"tenant": "team-b", "name": "team-b-1"})
        assert made.status_code == 201, made.text
    _sign_in(console, made.json()["secret"])
    assert "team-b" in console.text() and "0 runs" in console.text()
    assert admins_run[:12] not in console.text()
    console.shoot("tenant-runs")
    console.open(f"/runs/{admins_run}")
    console.wait(lambda: "no run with id" in console.text(), "the admin's run is not found")
    console.open("/sessions")
    console.wait(lambda: "0 live, 0 listed" in console.text(), "no sessions of another tenant")
    console.open("/datasets")
    console.wait(lambda: "No datasets." in console.text(), "no datasets of another tenant")
    for path in ("/datasets/sales", "/datasets/sales/versions/1", "/datasets/sales?tenant=admin"):
        console.open(path)
        console.wait(lambda: "no dataset 'sales'" in console.text(), f"{path}: not found")
    console.open("/runs")
    with console.daemon.client() as http:
        assert http.delete("/v1/tokens/team-b-1").status_code == 200
    console.wait(lambda: "/console/login" in console.driver.current_url, "the login page")
    assert "no longer accepted" in console.text()
    _sign_in(console, CONSOLE_TOKEN)  # the admin again, for the tests that follow
    assert admins_run[:12] in console.text() and "Tenant" in console.text()


def test_the_admins_pages_tenants_and_audit(console: Console) -> None:
    console.open("/tenants")
    console.wait(lambda: "team-b-1" in console.text(), "the tenants page with the tokens")
    assert "revoked" in console.text()  # team-b-1, by the test before
    console.shoot("tenants")
    console.driver.find_element(By.ID, "new-name").send_keys("browser-made\n")
    console.wait(lambda: "this once" in console.text(), "the new token's secret")
    secret = console.driver.find_element(By.ID, "secret").text
    with console.daemon.client() as http:
        answer = http.get("/v1/runs", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 200
    console.open("/audit?action=console.")
    console.wait(lambda: "console.login" in console.text(), "the sign-ins in the audit log")
    console.shoot("audit")


def test_removing_the_token_signs_the_browser_out(console: Console, token_file: Path) -> None:
    console.open("/runs")
    console.wait(lambda: "Sign out" in console.text(), "signed in")
    token_file.write_text("")
    # The runs page refreshes itself: its next refresh finds the token gone.
    console.wait(lambda: "/console/login" in console.driver.current_url, "the login page")
    assert "no longer accepted" in console.text()
    console.open("/runs")
    console.wait(lambda: "/console/login" in console.driver.current_url, "still signed out")
