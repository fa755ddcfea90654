"""Sessions on a daemon, through the client: the library's `Session` calls, over HTTP.

    with Client(url, token) as client, client.session(requirements=["pandas"]) as s:
        s.upload("data/sales.csv", Path("sales.csv").read_bytes())
        s.run("import pandas as pd; df = pd.read_csv('data/sales.csv')")
        cell = s.run("df.describe()")               # a CellResult, as the library's
        chart = s.download("outputs/chart.png")

Each call is one request to ``/v1/sessions/{id}/...``; errors are the same
classes as the library's (`SessionBusy`, `SessionGone`, `InstallFailed`, ...).
A cell waits for its result in one request; with ``on_output`` it follows the
cell's events instead, and output arrives as it is printed. This module is part
of the client: its requests go through the `Client`'s `Transport`.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx
from pydantic import TypeAdapter, ValidationError

from ai_data_agent.caps import check_input_files
from ai_data_agent.client import Client
from ai_data_agent.client_wire import parse, read_events, segment
from ai_data_agent.errors import RequestRejected, RequestTooLarge, ServerError
from ai_data_agent.models import InputFile
from ai_data_agent.session_models import (
    CellRequest,
    CellResult,
    PackagesRequest,
    PackagesResult,
    SessionFile,
    SessionInfo,
    SessionRequest,
)

__all__ = ["RemoteSession", "list_sessions", "open_session"]

CELL_MARGIN_S = 60.0  # beyond a cell's timeout and grace: answering, a kernel restart
_FILES = TypeAdapter(list[SessionFile])
_SESSIONS = TypeAdapter(list[SessionInfo])


def open_session(client: Client, **fields: Any) -> RemoteSession:
    """``POST /v1/sessions`` with `SessionRequest` ``fields``; the session is live on return.

    Raises:
        RequestRejected: the fields do not validate (nothing was sent).
        RequestTooLarge: the files are over the daemon's caps (nothing was sent).
        SessionLimit, InstallFailed, NotReady: the daemon's refusals.
    """
    try:
        request = SessionRequest(**fields)
    except ValidationError as exc:
        raise RequestRejected.from_errors(exc.errors()) from exc
    body = request.model_dump(mode="json", exclude_defaults=True)
    info = client.info()
    check_input_files(
        request.files,
        max_files=info.max_input_files,
        max_file_bytes=info.max_input_file_bytes,
        max_total_bytes=info.max_input_total_bytes,
    )
    install = info.install_timeout_s if request.requirements else 0.0
    timeout = httpx.Timeout(client.timeout, read=client.timeout + install + CELL_MARGIN_S)
    response = client.transport.request("POST", "/v1/sessions", json=body, timeout=timeout)
    return RemoteSession(client, parse(response, SessionInfo))


def list_sessions(client: Client) -> list[SessionInfo]:
    response = client.transport.request("GET", "/v1/sessions")
    try:
        return _SESSIONS.validate_python(response.json()["items"])
    except (ValidationError, KeyError, TypeError, ValueError) as exc:
        raise ServerError("the answer is not a session list", code="invalid_response") from exc


class RemoteSession:
    """One session on a daemon (see the module docstring). Closing it removes its sandbox."""

    def __init__(self, client: Client, info: SessionInfo) -> None:
        self.client = client
        self.info = info
        self.id = info.id
        self._path = f"/v1/sessions/{segment(info.id)}"

    def __enter__(self) -> RemoteSession:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _call(self, method: str, suffix: str = "", **kwargs: Any) -> httpx.Response:
        return self.client.transport.request(method, self._path + suffix, **kwargs)

    def refresh(self) -> SessionInfo:
        """The session as the daemon knows it now."""
        self.info = parse(self._call("GET"), SessionInfo)
        return self.info

    def close(self) -> SessionInfo:
        """Close the session (its container is removed). Closing a session that ended
        already answers with its record."""
        self.info = parse(self._call("DELETE"), SessionInfo)
        return self.info

    def _cell_timeout(self, timeout_s: float | None) -> httpx.Timeout:
        sessions = self.client.info().sessions
        default = sessions.cell_timeout_s.default if sessions is not None else 60.0
        grace = sessions.interrupt_grace_s if sessions is not None else 0.0
        read = (timeout_s or float(default)) + grace + CELL_MARGIN_S + self.client.timeout
        return httpx.Timeout(self.client.timeout, read=read)

    def run(
        self,
        code: str,
        *,
        timeout_s: float | None = None,
        on_output: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> CellResult:
        """Run one cell; with ``on_output(kind, data)``, see ``stdout``, ``stderr`` and
        ``display`` events as they happen.

        Raises:
            SessionBusy: another call runs in this session.
            SessionGone: the session ended.
        """
        request = CellRequest(code=code, timeout_s=timeout_s, wait=on_output is None)
        body = request.model_dump(mode="json", exclude_defaults=True)
        timeout = self._cell_timeout(timeout_s)
        response = self._call("POST", "/cells", json=body, timeout=timeout)
        if on_output is None:
            return parse(response, CellResult)
        count = int(response.json()["execution_count"])
        return self._follow(count, on_output)

    def _follow(self, count: int, on_output: Callable[[str, dict[str, Any]], None]) -> CellResult:
        url = f"{self._path}/cells/{count}/events"
        timeout = httpx.Timeout(self.client.timeout, read=None)  # a quiet cell sends nothing
        with self.client.transport.stream("GET", url, timeout=timeout) as response:
            for name, data in read_events(response):
                if name in ("stdout", "stderr", "display"):
                    on_output(name, data)
                elif name == "result":
                    return CellResult.model_validate(data)
        return parse(self._call("GET", f"/cells/{count}"), CellResult)

    def cell(self, count: int) -> CellResult | None:
        """A cell's result; None while it runs."""
        response = self._call("GET", f"/cells/{count}")
        return None if response.status_code == 202 else parse(response, CellResult)

    def interrupt(self) -> bool:
        """Interrupt the running cell; False when none runs."""
        return bool(self._call("POST", "/interrupt").json().get("interrupted"))

    def restart(self) -> SessionInfo:
        """A fresh kernel: variables lost, files kept."""
        self.info = parse(self._call("POST", "/restart"), SessionInfo)
        return self.info

    def install(self, requirements: list[str]) -> PackagesResult:
        """Add requirements (installed outside the session's sandbox, then put on its path)."""
        body = PackagesRequest(requirements=requirements).model_dump(mode="json")
        install = self.client.info().install_timeout_s
        timeout = httpx.Timeout(self.client.timeout, read=install + CELL_MARGIN_S)
        return parse(self._call("POST", "/packages", json=body, timeout=timeout), PackagesResult)

    def upload(self, path: str, data: bytes) -> SessionFile:
        """Put ``data`` at ``path`` under the session's working directory.

        Raises:
            RequestRejected: ``path`` breaks the daemon's path rule (nothing was sent).
            RequestTooLarge: ``data`` is larger than the daemon takes (nothing was sent).
        """
        try:
            checked = InputFile.from_bytes(path, b"").path  # the daemon's path rule
        except ValidationError as exc:
            raise RequestRejected.from_errors(exc.errors()) from exc
        cap = self.client.info().max_input_file_bytes
        if len(data) > cap:
            raise RequestTooLarge(f"files.{checked}", f"larger than {cap} bytes")
        response = self._call(
            "PUT",
            f"/files/{urllib.parse.quote(checked)}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},  # the per-file body cap
        )
        return parse(response, SessionFile)

    def download(self, path: str) -> bytes:
        return self._call("GET", f"/files/{urllib.parse.quote(path)}").content

    def files(self) -> list[SessionFile]:
        try:
            return _FILES.validate_python(self._call("GET", "/files").json())
        except (ValidationError, ValueError) as exc:
            raise ServerError("the answer is not a file list", code="invalid_response") from exc
