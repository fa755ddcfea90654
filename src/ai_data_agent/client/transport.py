"""The HTTP exchange with one daemon: a connection pool, every failure as the package's errors.

    transport = Transport("http://127.0.0.1:8000", token="s3cret", timeout=30)
    response = transport.request("GET", "/v1/info")       # a 2xx, else the daemon's error
    with transport.stream("GET", "/v1/runs/ID/events", run_id="ID") as response:
        for name, data in read_events(response): ...
    transport.download(url, target, what=artifact.path, size=artifact.size, sha256=artifact.sha256)

A refusal is the class the daemon raised (`error_from_response`); no answer is
`ServerUnreachable`, also when the connection drops in the middle of a stream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from ai_data_agent.client.wire import error_from_response, invalid_response
from ai_data_agent.errors import ServerUnreachable

__all__ = ["Transport"]


class Transport:
    """Requests to one daemon. Thread-safe (httpx's client is)."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    def close(self) -> None:
        """Release the connection pool. Idempotent."""
        self._http.close()

    def request(
        self, method: str, path: str, *, run_id: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One request (``kwargs`` as httpx's); its 2xx response.

        Raises:
            AiDataAgentError: the daemon refused (its class), or `ServerUnreachable`.
        """
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc, run_id) from exc
        if not response.is_success:
            raise error_from_response(response, run_id=run_id)
        return response

    @contextmanager
    def stream(
        self, method: str, path: str, *, run_id: str | None = None, **kwargs: Any
    ) -> Iterator[httpx.Response]:
        """A streamed 2xx response, its body not yet read.

        Raises:
            AiDataAgentError: as for `request`, also while the body is read.
        """
        try:
            with self._http.stream(method, path, **kwargs) as response:
                if not response.is_success:
                    response.read()
                    raise error_from_response(response, run_id=run_id)
                yield response
        except httpx.TransportError as exc:
            raise self._unreachable(exc, run_id) from exc

    def download(
        self,
        path: str,
        target: Path,
        *,
        what: str,
        size: int,
        sha256: str,
        run_id: str | None = None,
    ) -> Path:
        """Save the body of ``GET path`` as ``target``, written next to it and renamed only
        once its size and sha256 are the ones expected.

        Raises:
            ServerError: size or hash differ; nothing is left behind.
            AiDataAgentError: as for `stream`.
        """
        partial = target.with_name(f".{target.name}.part")
        digest = hashlib.sha256()
        received = 0
        try:
            with self.stream("GET", path, run_id=run_id) as response, partial.open("wb") as out:
                for chunk in response.iter_bytes():
                    received += len(chunk)
                    if received > size:
                        break
                    digest.update(chunk)
                    out.write(chunk)
            if received != size or digest.hexdigest() != sha256:
                raise invalid_response(f"{what} arrived with a different size or sha256", response)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        return target

    def _unreachable(self, exc: httpx.TransportError, run_id: str | None) -> ServerUnreachable:
        if isinstance(exc, httpx.TimeoutException):
            return ServerUnreachable(
                f"no answer from {self.base_url} in time ({type(exc).__name__})", run_id=run_id
            )
        return ServerUnreachable(
            f"cannot reach {self.base_url}: {type(exc).__name__}: {exc}", run_id=run_id
        )
