"""The operator console in headless Firefox ESR against a real daemon with real runs.

A smoke test of the same console in the other engine: sign in through the login form
(typed on the keyboard), a failed run found in the list and its traceback on its page,
and the hostile run (``<script>`` in its output and artifact names, an HTML artifact
with a script) running nothing in the console's origin. Firefox is driven over
WebDriver BiDi (tests/support/firefox.py). test_console_browser.py covers every
page in Chromium. Screenshots go to test-output/console-firefox/.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import pytest

from tests.support.browser import output_dir
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
from tests.support.firefox import BiDiError, Firefox, firefox
from tests.support.wait import poll

pytestmark = pytest.mark.integration

ENTER = "\ue007"


class Console:
    """Firefox on the daemon's console, with the module's waits and screenshots."""

    def __init__(self, browser: Firefox, daemon: Daemon) -> None:
        self.browser = browser
        self.daemon = daemon
        self.shots = output_dir("console-firefox")

    def open(self, path: str) -> None:
        self.browser.navigate(f"{self.daemon.url}/console{path}")

    def value(self, expression: str, context: str | None = None) -> object:
        """The expression's value; None while the page that has it loads or is replaced."""
        try:
            return self.browser.evaluate(expression, context)
        except BiDiError:
            return None

    def text(self) -> str:
        return str(self.value("document.body.innerText") or "")

    def path(self) -> str:
        return str(self.value("location.pathname") or "")

    def has(self, selector: str, context: str | None = None) -> bool:
        return (
            self.value(f"document.querySelector({json.dumps(selector)}) !== null", context) is True
        )

    def wait(self, check: Callable[[], Any], what: str, timeout_s: float = 30) -> Any:
        return poll(
            check,
            timeout_s=timeout_s,
            what=what,
            interval_s=0.1,
            diagnostics=lambda: f"at {self.value('location.href')}:\n{self.text()[-3000:]}",
        )

    def click(self, selector: str, what: str) -> None:
        """Click the element once it is there, again if a refresh replaced it meanwhile."""

        def clicked() -> bool:
            try:
                self.browser.click(selector)
            except BiDiError:
                return False
            return True

        self.wait(clicked, what)

    def sign_in(self, token: str) -> None:
        self.click("#token", "the token field")
        self.browser.type_keys(token + ENTER)

    def shoot(self, name: str) -> None:
        self.browser.screenshot(self.shots / f"{name}.png")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Future[Firefox]]:
    """Firefox, started in the background while the daemon starts; stopped at the end.

    The pool is left first: its thread has entered the browser's context (or failed
    to) before the stack closes it.
    """
    profile = tmp_path_factory.mktemp("firefox") / "profile"
    with ExitStack() as stack, ThreadPoolExecutor(1) as pool:
        yield pool.submit(stack.enter_context, firefox(profile, width=WIDTH, height=HEIGHT))


@pytest.fixture(scope="module")
def console(browser: Future[Firefox], daemon: Daemon) -> Console:
    return Console(browser.result(timeout=120), daemon)


def test_sign_in_with_a_token(console: Console) -> None:
    console.open("/runs")
    console.wait(lambda: console.path() == "/console/login", "the login page")
    console.shoot("login")
    console.sign_in("not-a-token")
    console.wait(lambda: "not accepted" in console.text(), "the refusal")
    console.sign_in(CONSOLE_TOKEN)
    console.wait(lambda: console.path() == "/console/runs", "the runs page")
    assert "(admin, config-" in console.text() and "Sign out" in console.text()


def test_a_failed_run_shows_its_traceback(console: Console) -> None:
    run_id = console.daemon.submit(FAILING)
    console.daemon.wait_terminal(run_id)
    console.open("/runs?status=failed")
    link = f"a[href$='/runs/{run_id}']"
    console.wait(lambda: console.has(link), "the failed run listed")
    console.shoot("runs")
    console.click(link, "the failed run's link")
    console.wait(lambda: "ZeroDivisionError" in console.text(), "the traceback")
    stderr = str(console.value("document.getElementById('stderr').innerText"))
    assert "Traceback (most recent call last)" in stderr and "divide(1, 0)" in stderr
    assert console.value("document.getElementById('run-status').innerText") == "failed"
    assert console.has("pre.code span.k")  # the code is highlighted
    console.shoot("run-failed")


def test_hostile_output_names_and_html_run_nothing(console: Console) -> None:
    run_id = console.daemon.submit(HOSTILE)
    console.daemon.wait_terminal(run_id)
    console.open(f"/runs/{run_id}")
    frame = console.wait(console.browser.frames, "the HTML artifact's frame")[0]
    console.wait(lambda: console.has("#hello", frame), "the HTML artifact in its frame")
    assert console.browser.evaluate(RAN, frame) is None
    assert all(shown in console.text() for shown in HOSTILE_SHOWN)  # as text
    assert console.browser.evaluate(CANARY) is None
    console.shoot("run-hostile")
    # Opened on its own, the HTML is still sandboxed: its script does not run.
    console.open(f"/runs/{run_id}/preview/evil.html")
    console.wait(lambda: console.has("#hello"), "the HTML artifact alone")
    assert console.browser.evaluate(RAN) is None
