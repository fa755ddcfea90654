"""A started sandbox container on Docker: its attach socket (stdin, stdout, stderr) and its end.

    sandbox = DockerSandbox(client, container_id, socket, spec, run_id, on_remove_failed, usage_ns)
    sandbox.send(b"..."); sandbox.read(0.25); sandbox.detach_network(); sandbox.remove()

Docker multiplexes stdout and stderr on the attach socket in frames with an
8-byte header; `read` takes them apart. docker-py and requests exceptions are
translated here into `ExecutorError` with the run id, container id and step.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import docker
import docker.errors
import requests.exceptions

from ai_data_agent.errors import ExecutorError
from ai_data_agent.executor.backend import ExitState
from ai_data_agent.executor.spec import ContainerSpec

__all__ = ["DOCKER_ERRORS", "DockerSandbox"]

DOCKER_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)
HEADER_SIZE = 8


class DockerSandbox:
    """A started sandbox container with its attach socket (stdin, stdout, stderr)."""

    def __init__(
        self,
        client: docker.DockerClient,
        container_id: str,
        sock: Any,
        spec: ContainerSpec,
        run_id: str,
        on_remove_failed: Callable[[str], None],
        usage_ns: Callable[[str], int | None],
    ) -> None:
        self._on_remove_failed = on_remove_failed
        self._api = client.api
        self._id = container_id
        self._response_holder = sock  # keeps the HTTP response (and socket) alive
        self._sock: socket.socket = getattr(sock, "_sock", sock)
        self._spec = spec
        self._run_id = run_id
        self._buffer = bytearray()
        self._eof = False
        self._removed = False
        self._usage_ns = usage_ns

    @property
    def container_id(self) -> str:
        return self._id

    def _error(self, message: str, step: str, exc: BaseException) -> ExecutorError:
        return ExecutorError(
            f"{message}: {type(exc).__name__}: {exc}",
            run_id=self._run_id,
            container_id=self._id,
            step=step,
        )

    def send(self, data: bytes) -> None:
        try:
            self._sock.settimeout(30)
            self._sock.sendall(data)
        except OSError as exc:
            raise self._error("cannot write to the sandbox", "attach", exc) from exc

    def close_stdin(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the container may already be gone; nothing to close then

    def _take_frame(self) -> tuple[int, bytes] | None:
        if len(self._buffer) < HEADER_SIZE:
            return None
        size = int.from_bytes(self._buffer[4:8], "big")
        if len(self._buffer) < HEADER_SIZE + size:
            return None
        stream = self._buffer[0]
        data = bytes(self._buffer[HEADER_SIZE : HEADER_SIZE + size])
        del self._buffer[: HEADER_SIZE + size]
        return stream, data

    def read(self, timeout_s: float) -> tuple[int, bytes] | None:
        while True:
            frame = self._take_frame()
            if frame is not None:
                return frame
            if self._eof:
                return 0, b""
            try:
                self._sock.settimeout(max(timeout_s, 0.001))
                chunk = self._sock.recv(65536)
            except TimeoutError:
                return None
            except OSError as exc:
                raise self._error("lost the sandbox's output stream", "execute", exc) from exc
            if not chunk:
                self._eof = True
            self._buffer += chunk

    def cpu_ns(self) -> int | None:
        return self._usage_ns(self._id)

    def detach_network(self) -> None:
        network = self._spec.network
        if network is None:
            return
        try:
            self._api.disconnect_container_from_network(self._id, network, force=True)
            attached = self._api.inspect_container(self._id)["NetworkSettings"]["Networks"] or {}
        except DOCKER_ERRORS as exc:
            raise self._error("cannot detach the install network", "network", exc) from exc
        if attached:
            raise ExecutorError(
                f"networks {sorted(attached)} still attached after disconnect",
                run_id=self._run_id,
                container_id=self._id,
                step="network",
            )

    def kill(self) -> None:
        # Nothing reads the stream after a kill: close it first, or the engine, blocked
        # writing what the container sent into it, would hold the kill and the exit up.
        self._close_stream()
        try:
            self._api.kill(self._id)
        except DOCKER_ERRORS:
            pass  # already stopped (or gone): the goal is reached either way

    def exit_state(self, timeout_s: float) -> ExitState:
        try:
            status = self._api.wait(self._id, timeout=max(int(timeout_s), 1))
            state = self._api.inspect_container(self._id)["State"]
        except requests.exceptions.ReadTimeout:
            self.kill()
            return ExitState(exit_code=None, oom_killed=False)
        except DOCKER_ERRORS as exc:
            raise self._error("cannot read the sandbox's exit state", "collect", exc) from exc
        code = status.get("StatusCode")
        return ExitState(exit_code=code, oom_killed=bool(state.get("OOMKilled")))

    def _close_stream(self) -> None:
        for closable in (self._sock, self._response_holder):
            try:
                closable.close()
            except OSError:
                pass

    def remove(self) -> None:
        if self._removed:
            return
        self._close_stream()
        try:
            self._api.remove_container(self._id, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            # Someone else (a sweep) is removing it already: the goal is reached.
            if exc.status_code != 409 or "already in progress" not in str(exc):
                self._on_remove_failed(self._id)
                raise self._error("cannot remove the sandbox", "remove", exc) from exc
        except DOCKER_ERRORS as exc:
            self._on_remove_failed(self._id)
            raise self._error("cannot remove the sandbox", "remove", exc) from exc
        self._removed = True
