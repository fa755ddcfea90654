"""Headless Firefox ESR driven over WebDriver BiDi, which Firefox speaks itself.

    with firefox(tmp_path / "profile") as browser:
        browser.navigate("http://127.0.0.1:8000/console/runs")
        title = browser.evaluate("document.title")
        browser.screenshot(tmp_path / "runs.png")

No geckodriver: Firefox is started with ``--remote-debugging-port 0`` and a fresh
profile, writes the port it chose into the profile (``WebDriverBiDiServer.json``),
and takes commands as JSON over one websocket (``/session``). Debian's ``firefox-esr``
is installed by ``scripts/install-firefox.sh`` (``make firefox``, a prerequisite of
``make test``); a machine without it fails the tests that need it with that hint.
The browser and its content processes are killed when the context ends, whatever
happened.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.support.wait import poll

__all__ = ["BiDiError", "Firefox", "firefox"]

# Only what a throwaway profile needs on top of the prefs Firefox sets itself when it
# is remote-controlled (remote.prefs.recommended): no first-run pages, nothing that
# phones home while a test runs.
PREFS = {
    "remote.active-protocols": 1,  # WebDriver BiDi only
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.aboutwelcome.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.disabledForTesting": True,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "app.normandy.enabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
}
START_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class BiDiError(AssertionError):
    """A command answered with an error, or the script it ran threw."""

    def __init__(self, method: str, error: str, message: str) -> None:
        super().__init__(f"{method}: {error}: {message}")
        self.method = method
        self.error = error
        self.message = message


@dataclass
class Firefox:
    """One BiDi session on the browser's first tab (``context``)."""

    socket: ClientConnection
    context: str = ""
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def command(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command and return its result; events are not subscribed to, so none come.

        Raises:
            BiDiError: the browser answered with an error.
        """
        command_id = next(self._ids)
        self.socket.send(json.dumps({"id": command_id, "method": method, "params": params}))
        while True:
            try:
                message = json.loads(self.socket.recv(timeout=COMMAND_TIMEOUT_S))
            except TimeoutError as exc:
                raise BiDiError(method, "timeout", f"no answer in {COMMAND_TIMEOUT_S:g} s") from exc
            if message.get("id") == command_id:
                break
        if message["type"] == "error":
            raise BiDiError(method, message["error"], message["message"])
        result: dict[str, Any] = message["result"]
        return result

    def navigate(self, url: str) -> None:
        """Open ``url`` in the tab and wait until it has loaded."""
        self.command("browsingContext.navigate", context=self.context, url=url, wait="complete")

    def evaluate(self, expression: str, context: str | None = None) -> object:
        """The value of a JavaScript expression in the page (or in the frame ``context``).

        Raises:
            BiDiError: it threw, or the page is being replaced.
        """
        return _value(self._remote(expression, context))

    def click(self, selector: str) -> None:
        """Click the middle of the first element ``selector`` finds, scrolled into view.

        Raises:
            BiDiError: there is none.
        """
        found = json.dumps(selector)
        element = self._remote(
            f"(e => (e && e.scrollIntoView({{block: 'center'}}), e))(document.querySelector({found}))"
        )
        if element["type"] != "node":
            raise BiDiError("click", "no such element", selector)
        origin = {"type": "element", "element": {"sharedId": element["sharedId"]}}
        pointer = [
            {"type": "pointerMove", "x": 0, "y": 0, "origin": origin},
            {"type": "pointerDown", "button": 0},
            {"type": "pointerUp", "button": 0},
        ]
        actions = [{"type": "pointer", "id": "mouse", "actions": pointer}]
        self.command("input.performActions", context=self.context, actions=actions)

    def frames(self) -> list[str]:
        """The contexts of the frames in the tab's page, in document order."""
        tree = self.command("browsingContext.getTree", root=self.context)
        return [child["context"] for child in tree["contexts"][0]["children"] or []]

    def type_keys(self, text: str) -> None:
        """Type ``text`` with the keyboard into whatever has the focus (``\\ue007``: Enter)."""
        keys = [{"type": kind, "value": char} for char in text for kind in ("keyDown", "keyUp")]
        actions = [{"type": "key", "id": "keyboard", "actions": keys}]
        self.command("input.performActions", context=self.context, actions=actions)

    def resize(self, width: int, height: int) -> None:
        viewport = {"width": width, "height": height}
        self.command("browsingContext.setViewport", context=self.context, viewport=viewport)

    def _remote(self, expression: str, context: str | None = None) -> dict[str, Any]:
        target = {"context": context or self.context}
        answer = self.command(
            "script.evaluate", expression=expression, target=target, awaitPromise=True
        )
        if answer["type"] == "exception":
            raise BiDiError("script.evaluate", "exception", answer["exceptionDetails"]["text"])
        remote: dict[str, Any] = answer["result"]
        return remote

    def screenshot(self, path: Path) -> None:
        """A PNG of the whole page, not only of what the viewport shows."""
        shot = self.command(
            "browsingContext.captureScreenshot", context=self.context, origin="document"
        )
        path.write_bytes(base64.b64decode(shot["data"]))


def _value(remote: dict[str, Any]) -> object:
    """A primitive BiDi remote value as Python; anything else as its serialized dict."""
    kind = remote["type"]
    if kind in ("null", "undefined"):
        return None
    if kind in ("string", "number", "boolean"):
        return remote["value"]
    return remote


def _write_profile(profile: Path) -> None:
    profile.mkdir(parents=True, exist_ok=True)
    lines = (
        f"user_pref({json.dumps(name)}, {json.dumps(value)});" for name, value in PREFS.items()
    )
    (profile / "user.js").write_text("\n".join(lines) + "\n")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Its whole process group (the content processes too): TERM, then KILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
            process.wait(STOP_TIMEOUT_S)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def _listening_port(profile: Path, process: subprocess.Popen[bytes], log: Path) -> int:
    server = profile / "WebDriverBiDiServer.json"

    def port() -> int:
        """The port, 0 until Firefox has written it."""
        if process.poll() is not None:
            raise AssertionError(f"firefox-esr exited ({process.returncode}):\n{log.read_text()}")
        if not server.exists():
            return 0
        try:
            found: int = json.loads(server.read_text())["ws_port"]
        except (ValueError, KeyError):  # being written
            return 0
        return found

    return poll(
        port,
        timeout_s=START_TIMEOUT_S,
        what="firefox-esr's WebDriver BiDi port",
        interval_s=0.1,
        diagnostics=lambda: log.read_text(errors="replace"),
    )


@contextmanager
def firefox(profile: Path, *, width: int = 1280, height: int = 900) -> Iterator[Firefox]:
    """A headless firefox-esr on a fresh ``profile`` dir, in one BiDi session, killed at the end."""
    binary = shutil.which("firefox-esr")
    if binary is None:
        pytest.fail(
            "the console's Firefox test needs Debian's firefox-esr: "
            "run `make firefox` (scripts/install-firefox.sh) as root",
            pytrace=False,
        )
    _write_profile(profile)
    log = profile.with_name(profile.name + ".log")
    # Port 0: Firefox picks a free one and writes it into the profile.
    command = [binary, "--headless", "--no-remote", "--remote-debugging-port", "0"]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "--profile", str(profile), "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a group of its own: _stop ends its content processes
        )
    try:
        with ExitStack() as stack:
            port = _listening_port(profile, process, log)
            socket = stack.enter_context(
                connect(f"ws://127.0.0.1:{port}/session", max_size=None, open_timeout=30)
            )
            browser = Firefox(socket)
            browser.command("session.new", capabilities={})
            tree = browser.command("browsingContext.getTree", maxDepth=0)
            browser.context = tree["contexts"][0]["context"]
            browser.resize(width, height)
            yield browser
    finally:
        _stop(process)
