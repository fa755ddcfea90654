"""The console's one view of the node behind it, through the protocols the HTTP routes use.

    backend = Backend(node)              # a `Daemon`, or a cluster's API node
    records, total = await backend.runs(status="failed", since=None, limit=50, offset=0)
    events = await backend.run_events(run_id)   # an active run's live events, or None

Every other console module reaches the node through this one, so one implementation
serves one node and a cluster's API node alike, and a change of the node's protocols
touches one file. Blocking calls run in worker threads; readiness probes run with a
timeout, as ``/readyz`` runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio

from ai_data_agent.api_models import RunRecord, ServerInfo
from ai_data_agent.checks import Check
from ai_data_agent.errors import NotReady
from ai_data_agent.models import Artifact
from ai_data_agent.service import runs
from ai_data_agent.service.events import RunEvents, sse_line
from ai_data_agent.service.handles import CellHandle
from ai_data_agent.service.health import accepting, node_checks, timed
from ai_data_agent.service.info import server_info
from ai_data_agent.service.node import ArtifactBody, ServiceNode
from ai_data_agent.session_models import CellResult, SessionInfo, SessionStatus
from ai_data_agent.settings import Settings
from ai_data_agent.tenant_models import Principal

__all__ = ["ArtifactBody", "Backend", "Cell", "NodeProtocol", "RunEvents", "sse_line"]

PROBE_THREADS = 3  # the console's readiness probes in flight at once
MAX_CELLS = 100  # the newest cells a session's page shows
# Who the console acts as: it signs in only the configured tokens (the built-in admin's).
CONSOLE_PRINCIPAL = Principal.builtin_admin("console")
GAUGES = {
    "queued": "ai_data_agent_queue_depth",
    "running": "ai_data_agent_runs_running",
    "sessions": "ai_data_agent_sessions_active",
}

Cell = CellResult | CellHandle
NodeProtocol = ServiceNode  # what the console is built on (`console_app`)


async def _thread(function: Callable[..., Any], *args: Any) -> Any:
    return await anyio.to_thread.run_sync(function, *args)


class Backend:
    """What the console reads and does, over one `ServiceNode`."""

    def __init__(self, node: ServiceNode) -> None:
        self._node = node
        self._limiter = anyio.CapacityLimiter(PROBE_THREADS)

    @property
    def settings(self) -> Settings:
        return self._node.settings

    # -- tokens -----------------------------------------------------------------------
    @property
    def auth_enabled(self) -> bool:
        return self._node.auth.enabled

    def accepted_tokens(self) -> set[str]:
        """The tokens the API accepts now (the token file is read now). Blocking.

        Raises:
            NotReady: the token file cannot be read.
        """
        try:
            return self._node.settings.accepted_tokens()
        except (OSError, UnicodeDecodeError) as exc:
            raise NotReady("the daemon cannot read its token file") from exc

    # -- runs -------------------------------------------------------------------------
    async def runs(
        self, *, status: str | None, since: float | None, limit: int, offset: int
    ) -> tuple[list[RunRecord], int]:
        store = self._node.store
        found: tuple[list[RunRecord], int] = await _thread(
            lambda: store.list(status=status, since=since, limit=limit, offset=offset)
        )
        return found

    async def run(self, run_id: str) -> RunRecord:
        """A run's record.

        Raises:
            NotFound: no such run.
        """
        return await runs.record_or_404(self._node, CONSOLE_PRINCIPAL, run_id)

    async def cancel(self, run_id: str) -> None:
        """Cancel an active run and wait (a bounded time) for it to end, as the API does."""
        await runs.cancel(self._node, CONSOLE_PRINCIPAL, run_id)

    async def run_events(self, run_id: str) -> RunEvents | None:
        """An active run's events (from its first), or None once it has ended."""
        handle = await _thread(self._node.dispatcher.find, run_id)
        return None if handle is None else handle.events

    async def artifact(self, run_id: str, path: str) -> tuple[Artifact, ArtifactBody]:
        """A listed artifact of a run and its bytes.

        Raises:
            NotFound: no such run, or it lists no such artifact (or its bytes are gone).
        """
        return await runs.listed_artifact(self._node, CONSOLE_PRINCIPAL, run_id, path)

    # -- sessions ---------------------------------------------------------------------
    async def sessions(self) -> list[SessionInfo]:
        found: list[SessionInfo] = await _thread(self._node.sessions.sessions)
        return found

    async def session(self, session_id: str) -> SessionInfo | None:
        info: SessionInfo | None = await _thread(self._node.sessions.get, session_id)
        return info

    async def cell(self, session_id: str, count: int) -> Cell | None:
        found: Cell | None = await _thread(self._node.sessions.cell, session_id, count)
        return found

    async def cells(self, info: SessionInfo) -> list[Cell]:
        """The session's newest cells in order, a running one last; cells the store no
        longer has are left out."""
        last = info.execution_count + (1 if info.status is SessionStatus.BUSY else 0)
        found = [await self.cell(info.id, n) for n in range(max(1, last - MAX_CELLS + 1), last + 1)]
        return [cell for cell in found if cell is not None]

    async def interrupt(self, session_id: str) -> bool:
        interrupted: bool = await _thread(self._node.sessions.interrupt, session_id)
        return interrupted

    async def restart(self, session_id: str) -> None:
        await _thread(self._node.sessions.restart, session_id)

    async def close(self, session_id: str) -> None:
        await _thread(self._node.sessions.close, session_id)

    # -- health -----------------------------------------------------------------------
    def info(self) -> ServerInfo:
        return server_info(self._node.settings)

    async def checks(self) -> list[Check]:
        """The readiness checks of ``/readyz``, each within its timeout, by name."""
        found = await node_checks(self._node, self._limiter, *accepting(self._node))
        return sorted(found.values(), key=lambda check: check.name)

    async def details(self) -> list[Check]:
        """Cached environments and the warm pool, or a cluster's workers: what readiness
        does not judge."""
        return await timed("details", self._node.details, self._limiter)

    def gauges(self) -> dict[str, float | None]:
        """Queue depth, runs running and live sessions, as ``/metrics`` reports them."""
        registry = self._node.metrics.registry
        return {key: registry.get_sample_value(name) for key, name in GAUGES.items()}

    def in_flight(self) -> int:
        return self._node.dispatcher.in_flight
