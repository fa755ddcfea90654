"""What every store does, whichever database holds it: the seam between the nodes and storage.

    store: RunRecords = RunStore(path)                        # one node: SQLite in data_dir
    store: RunRecords = PgRunStore(database)                  # a cluster: the shared PostgreSQL
    registry: SessionRegistry = SessionStore(path, node=...)  # sessions: SQLite
    registry: SessionRegistry = PgSessionRegistry(db, node=...)   # or PostgreSQL

Each protocol keeps the same guarantees on both databases, checked by one
contract test run against each (tests/cluster/test_store_contract.py for
runs, tests/cluster/test_session_store_contract.py for sessions). Runs: a
record is durable before `insert` returns; a run gets exactly one terminal
state (`finish` is conditional on the run still being active, so concurrent
finishers agree on one winner); reads see every committed write. Sessions:
a session ended (closed, expired, lost) is never written back to live; a node
that starts again marks the sessions it held as lost. Every method blocks;
call them from threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from ai_data_agent.api_models import ACTIVE_RUN_STATUSES, ActiveStatus, RunRecord
from ai_data_agent.models import RunRequest, RunResult, RunStatus
from ai_data_agent.session_models import CellResult, SessionInfo

__all__ = ["Outcome", "RunRecords", "SessionRegistry", "record_from_row", "result_of"]


@dataclass(frozen=True)
class Outcome:
    """How a run ended: the terminal state its record is given, once."""

    status: RunStatus
    result: RunResult | None = None  # None when no container ran to the end
    error: str | None = None


class RunRecords(Protocol):
    """Durable run records. See the module docstring for the guarantees."""

    def open(self) -> None:
        """Make the store usable (schema included). Idempotent."""

    def close(self) -> None: ...

    def insert(self, run_id: str, request: RunRequest, *, now: float | None = None) -> RunRecord:
        """Record a new ``queued`` run; durable when this returns."""

    def mark_running(self, run_id: str, *, now: float | None = None) -> bool:
        """``queued`` -> ``running``; False when the run is no longer queued."""

    def finish(self, run_id: str, outcome: Outcome, *, now: float | None = None) -> bool:
        """Give an active run its one terminal state; False when it already had one."""

    def interrupt_active(self, reason: str, *, now: float | None = None) -> list[str]:
        """Mark every active run ``interrupted``; return their ids."""

    def apply_retention(self, *, max_age_s: float, max_runs: int, now: float | None = None) -> int:
        """Delete finished records beyond the age or count bounds; return how many."""

    def probe_writable(self) -> None:
        """Write once, as the readiness check; raises when the store cannot be written."""

    def get(self, run_id: str) -> RunRecord | None: ...

    def known(self, run_ids: list[str]) -> set[str]:
        """Which of ``run_ids`` still have a record."""

    def list(
        self,
        *,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
        since: float | None = None,
    ) -> tuple[list[RunRecord], int]:
        """A page of records, newest first, and the total matching ``status`` and created
        at or after ``since`` (unix seconds), when given."""


class SessionRegistry(Protocol):
    """The sessions' records, as one node writes them. See the module docstring."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def put(self, info: SessionInfo) -> None:
        """Record a session's latest state, as held by this node (an ended one stays ended)."""

    def get(self, session_id: str) -> SessionInfo | None: ...

    def recent(self, *, limit: int = 100) -> list[SessionInfo]:
        """Live sessions first, then the newest."""

    def lose_live(self, reason: str) -> list[str]:
        """Mark ``lost`` every live session this node holds; return their ids."""

    def put_cell(self, result: CellResult) -> None: ...

    def get_cell(self, session_id: str, n: int) -> CellResult | None: ...

    def delete_before(self, keep: int) -> int:
        """Keep the newest ``keep`` ended sessions (and their cells); return how many went."""


def result_of(record: RunRecord) -> RunResult:
    """A terminal record's result, or one saying why there is none."""
    if record.result is not None:
        return record.result
    return RunResult(id=record.id, status=RunStatus(record.status), error=record.error)


def record_from_row(row: tuple[Any, ...]) -> RunRecord:
    """The `RunRecord` of a row of both stores' columns: id, status, created_at, started_at,
    finished_at, request, result, error (times in unix seconds, models as JSON)."""
    run_id, status, created, started, finished, request, result, error = row
    return RunRecord(
        id=run_id,
        status=ActiveStatus(status) if status in ACTIVE_RUN_STATUSES else RunStatus(status),
        created_at=datetime.fromtimestamp(created, UTC),
        started_at=_time(started),
        finished_at=_time(finished),
        request=RunRequest.model_validate_json(request),
        result=None if result is None else RunResult.model_validate_json(result),
        error=error,
    )


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)
