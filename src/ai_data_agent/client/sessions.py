"""Sessions on a daemon, through the client: the library's `Session` calls, over HTTP.

    with Client(url, token) as client, client.session(requirements=["pandas"]) as s:
        s.upload("data/sales.csv", Path("sales.csv").read_bytes())
        s.run("import pandas as pd; df = pd.read_csv('data/sales.csv')")
        cell = s.run("df.plot().figure.savefig('outputs/chart.png')")   # a CellResult
        chart = s.download(cell.artifacts[0])         # the file outputs/chart.png, checked
        table = s.download("data/sales.csv")          # any file, by its path

Each call is one request to ``/v1/sessions/{id}/...``; errors are the same
classes as the library's (`SessionBusy`, `SessionGone`, `InstallFailed`,
`FileNotFound`, ...). A cell waits for its result in one request; with
``on_output`` it follows the cell's events instead, and output arrives as it is
printed.

Paths: a file's path is relative to the session's working directory; an
artifact's (``cell.artifacts[].path``, as a run's) is relative to ``outputs/``
under it, so `download` takes the `Artifact` itself (or its ``file_path``). A
path that is not a normal relative one (``../etc/passwd``, ``a//b``) is refused
here, in both directions, before anything is sent.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx
from pydantic import TypeAdapter, ValidationError

from ai_data_agent.caps import check_input_files
from ai_data_agent.checkpoint_models import (
    CheckpointInfo,
    CheckpointPage,
    ForkRequest,
    RestoreReport,
)
from ai_data_agent.client.connection import Connection
from ai_data_agent.client.wire import invalid_response, parse, read_events, segment
from ai_data_agent.errors import FileNotFound, RequestRejected, RequestTooLarge
from ai_data_agent.models import Artifact
from ai_data_agent.paths import check_relative_path
from ai_data_agent.session_models import (
    CellAccepted,
    CellRequest,
    CellResult,
    Interrupted,
    PackagesRequest,
    PackagesResult,
    SessionFile,
    SessionInfo,
    SessionPage,
    SessionRequest,
)

__all__ = ["CELL_MARGIN_S", "RemoteSession", "file_path", "list_sessions", "open_session"]

CELL_MARGIN_S = 60.0  # beyond a cell's timeout and grace: answering, a kernel restart
STATE_WAIT_S = 600.0  # a checkpoint, a pause, a resume or a fork: a container, the bytes
_FILES = TypeAdapter(list[SessionFile])


def file_path(path: str) -> str:
    """``path`` if it is a normal relative path (the daemon's rule, `check_relative_path`).

    Raises:
        RequestRejected: it is not (``../etc/passwd``, ``/x``, ``a//b``, ``a/``).
    """
    try:
        return check_relative_path(path)
    except ValueError as exc:
        raise RequestRejected("path", str(exc)) from exc


def open_session(connection: Connection, **fields: Any) -> RemoteSession:
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
    info = connection.info()
    check_input_files(
        request.files,
        max_files=info.max_input_files,
        max_file_bytes=info.max_input_file_bytes,
        max_total_bytes=info.max_input_total_bytes,
    )
    install = info.install_timeout_s if request.requirements else 0.0
    timeout = connection.read_timeout(connection.timeout + install + CELL_MARGIN_S)
    response = connection.transport.request("POST", "/v1/sessions", json=body, timeout=timeout)
    return RemoteSession(connection, parse(response, SessionInfo))


def list_sessions(connection: Connection, *, tenant: str | None = None) -> list[SessionInfo]:
    """``GET /v1/sessions``: live sessions first, then those that ended, newest first."""
    params = {} if tenant is None else {"tenant": tenant}
    response = connection.transport.request("GET", "/v1/sessions", params=params)
    return parse(response, SessionPage).items


class RemoteSession:
    """One session on a daemon (see the module docstring). Closing it removes its sandbox.

    Attributes:
        client: the connection it calls through (the `Client` that made it).
        info: the session as last seen.
    """

    def __init__(self, client: Connection, info: SessionInfo) -> None:
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
        return self.client.read_timeout(read)

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
        return self._follow(parse(response, CellAccepted).execution_count, on_output)

    def _follow(self, count: int, on_output: Callable[[str, dict[str, Any]], None]) -> CellResult:
        url = f"{self._path}/cells/{count}/events"
        timeout = self.client.read_timeout(None)  # a quiet cell sends nothing
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
        return parse(self._call("POST", "/interrupt"), Interrupted).interrupted

    def restart(self) -> SessionInfo:
        """A fresh kernel: variables lost, files kept."""
        self.info = parse(self._call("POST", "/restart"), SessionInfo)
        return self.info

    # -- checkpoints: the state kept past the container -------------------------------
    def _slow(self, method: str, suffix: str, **kwargs: Any) -> httpx.Response:
        """A call that may start a container and restore a checkpoint: a long read timeout."""
        timeout = self.client.read_timeout(STATE_WAIT_S + self.client.timeout)
        return self._call(method, suffix, timeout=timeout, **kwargs)

    def checkpoint(self) -> CheckpointInfo:
        """Checkpoint the session now: what was kept and what could not be (and why).

        Raises:
            CheckpointFailed: the serialiser failed or ran out of time (the session is unharmed).
        """
        return parse(self._slow("POST", "/checkpoint"), CheckpointInfo)

    def checkpoints(self) -> list[CheckpointInfo]:
        """The session's checkpoints, newest first."""
        return parse(self._call("GET", "/checkpoints"), CheckpointPage).items

    def pause(self) -> SessionInfo:
        """Checkpoint, then remove the container (``paused``); the next call resumes it."""
        self.info = parse(self._slow("POST", "/pause"), SessionInfo)
        return self.info

    def resume(self) -> RestoreReport:
        """Resume a paused session: which variables came back, which did not."""
        return parse(self._slow("POST", "/resume"), RestoreReport)

    def fork(self, checkpoint: int | None = None) -> RemoteSession:
        """A new session from a checkpoint (default: a fresh one, or the latest)."""
        body = ForkRequest(checkpoint=checkpoint).model_dump()
        return RemoteSession(
            self.client, parse(self._slow("POST", "/fork", json=body), SessionInfo)
        )

    def install(self, requirements: list[str]) -> PackagesResult:
        """Add requirements (installed outside the session's sandbox, then put on its path)."""
        body = PackagesRequest(requirements=requirements).model_dump(mode="json")
        install = self.client.info().install_timeout_s
        timeout = self.client.read_timeout(install + CELL_MARGIN_S)
        return parse(self._call("POST", "/packages", json=body, timeout=timeout), PackagesResult)

    def upload(self, path: str, data: bytes) -> SessionFile:
        """Put ``data`` at ``path`` under the session's working directory.

        Raises:
            RequestRejected: ``path`` breaks the daemon's path rule (nothing was sent).
            RequestTooLarge: ``data`` is larger than the daemon takes (nothing was sent).
        """
        checked = file_path(path)
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

    def download(self, file: str | Artifact) -> bytes:
        """The bytes of a file under the working directory: ``file`` is its path, or a
        cell's `Artifact` (the file ``outputs/<artifact.path>``, checked against the
        artifact's size and sha256).

        Raises:
            RequestRejected: the path breaks the daemon's path rule (nothing was sent).
            FileNotFound: no such file in the session (``path`` says which).
            ServerError: an artifact's bytes differ from its record.
        """
        path = file_path(file.file_path if isinstance(file, Artifact) else file)
        try:
            response = self._call("GET", f"/files/{urllib.parse.quote(path)}")
        except FileNotFound as exc:
            exc.path = path
            raise
        data = response.content
        if isinstance(file, Artifact) and (
            len(data) != file.size or hashlib.sha256(data).hexdigest() != file.sha256
        ):
            raise invalid_response(f"{path} arrived with a different size or sha256", response)
        return data

    def files(self) -> list[SessionFile]:
        """Regular files under the working directory (paths relative to it)."""
        response = self._call("GET", "/files")
        try:
            return _FILES.validate_json(response.content)
        except ValidationError as exc:
            raise invalid_response("the answer is not a file list", response) from exc
