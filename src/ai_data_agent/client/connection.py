"""One daemon as the client's runs and sessions both see it: the HTTP exchange and the
daemon's limits, read once.

    connection = Connection("http://127.0.0.1:8000", token="s3cret", timeout=30)
    connection.info().max_input_file_bytes            # GET /v1/info, on first use only
    connection.transport.request("GET", "/v1/sessions")
    connection.close()

`Client` (runs) and `RemoteSession` (a session's calls) hold the same
`Connection`, so a session made by a client shares its connection pool and the
limits it read.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Self

import httpx

from ai_data_agent.api_models import ServerInfo
from ai_data_agent.client.transport import Transport
from ai_data_agent.client.wire import parse

__all__ = ["Connection"]


class Connection:
    """Requests to one daemon and its ``/v1/info``. Thread-safe.

    Args:
        base_url: the daemon, e.g. ``http://127.0.0.1:8000``.
        token: bearer token, if the daemon requires one.
        timeout: seconds for connecting and for every call that does not wait for
            code to run (those compute their own read timeout from the limits).
        transport: an httpx transport to use instead of the network (tests).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self.transport = Transport(base_url, token, timeout=timeout, transport=transport)
        self._info: ServerInfo | None = None
        self._info_lock = threading.Lock()

    def info(self) -> ServerInfo:
        """The daemon's version, limits, caps and features (``GET /v1/info``).

        Fetched on first use and kept for the life of this connection.

        Raises:
            AiDataAgentError: as for any call (`Unauthorized`, `ServerUnreachable`, ...).
        """
        with self._info_lock:
            if self._info is None:
                self._info = parse(self.transport.request("GET", "/v1/info"), ServerInfo)
            return self._info

    def read_timeout(self, read_s: float | None) -> httpx.Timeout:
        """Connect within the usual timeout, then wait ``read_s`` for the answer (None: ever)."""
        return httpx.Timeout(self.timeout, read=read_s)

    def close(self) -> None:
        """Release the connection pool. Idempotent."""
        self.transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
