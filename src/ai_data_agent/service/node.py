"""What the HTTP app needs of the node behind it: one node with SQLite, or a cluster's API node.

    node: ServiceNode = Daemon(settings, executor)          # one node: admits and executes
    node: ServiceNode = ClusterNode(settings, executor)     # PostgreSQL: admits, maybe executes

The routes (``app``, ``session_routes``) see only these protocols, so the two
kinds of node answer the same API with the same shapes and errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from ai_data_agent.checks import Check
from ai_data_agent.models import Limits, RunRequest
from ai_data_agent.service.auth import TokenAuth
from ai_data_agent.service.cells import CellHandle
from ai_data_agent.service.dispatcher import RunHandle
from ai_data_agent.service.metrics import ServiceMetrics
from ai_data_agent.service.records import RunRecords
from ai_data_agent.session_models import (
    CellRequest,
    CellResult,
    PackagesResult,
    SessionFile,
    SessionInfo,
    SessionRequest,
)
from ai_data_agent.settings import Settings

__all__ = ["ArtifactBody", "RunDispatcher", "ServiceNode", "SessionService"]

ArtifactBody = Path | Iterator[bytes]


class RunDispatcher(Protocol):
    """Admission and the handles of active runs (blocking methods: call them in threads)."""

    @property
    def accepting(self) -> bool: ...

    @property
    def in_flight(self) -> int:
        """Runs a drain waits for before the daemon stops listening."""

    def submit(self, request: RunRequest, limits: Limits) -> RunHandle:
        """Record and queue ``request``; raises `QueueFull` or `NotReady`."""

    def find(self, run_id: str) -> RunHandle | None:
        """The handle of an active run (its live events and completion), or None."""

    def cancel(self, run_id: str) -> RunHandle | None:
        """Cancel an active run; its handle to wait on, or None when it is not active."""


class SessionService(Protocol):
    """The sessions API's operations (all blocking but `wait_cell` on the handle)."""

    def create(self, request: SessionRequest) -> SessionInfo: ...

    def get(self, session_id: str) -> SessionInfo | None: ...

    def sessions(self) -> list[SessionInfo]: ...

    def close(self, session_id: str) -> SessionInfo | None: ...

    def submit_cell(self, session_id: str, request: CellRequest) -> CellHandle: ...

    def cell(self, session_id: str, count: int) -> CellHandle | CellResult | None: ...

    def interrupt(self, session_id: str) -> bool: ...

    def restart(self, session_id: str) -> SessionInfo: ...

    def install(self, session_id: str, requirements: list[str]) -> PackagesResult: ...

    def upload(self, session_id: str, path: str, data: bytes) -> str: ...

    def download(self, session_id: str, path: str) -> bytes: ...

    def files(self, session_id: str) -> list[SessionFile]: ...


class ServiceNode(Protocol):
    settings: Settings
    auth: TokenAuth
    metrics: ServiceMetrics
    started: bool
    startup_error: Exception | None

    @property
    def store(self) -> RunRecords: ...

    @property
    def dispatcher(self) -> RunDispatcher: ...

    @property
    def sessions(self) -> SessionService: ...

    def start(self) -> None: ...

    def begin_shutdown(self) -> None: ...

    def stop(self) -> None: ...

    def probes(self) -> dict[str, Callable[[], Check]]:
        """Readiness checks that may block (run in threads, with a timeout), by name."""

    def instant_checks(self) -> list[Check]:
        """Readiness checks that answer at once (prewarm progress, accepting)."""

    def details(self) -> list[Check]:
        """What an operator sees beside readiness (the console's health page: cached
        environments, a cluster's workers), never part of ``/readyz``. Blocking."""

    def artifact_body(self, run_id: str, path: str) -> ArtifactBody | None:
        """A listed artifact's bytes (a checked file, or chunks); None when absent."""
