"""What every store does, whichever database holds it: the seam between the nodes and storage.

    store: RunRecords = RunStore(path)                        # one node: SQLite in data_dir
    store: RunRecords = PgRunStore(database)                  # a cluster: the shared PostgreSQL
    registry: SessionRegistry = SessionStore(path, node=...)  # sessions: SQLite
    registry: SessionRegistry = PgSessionRegistry(db, node=...)   # or PostgreSQL
    tenants: TenantRecords = TenantStore(path)   # or PgTenantStore(db): tenants and tokens
    audit: AuditRecords = AuditStore(path)       # or PgAuditStore(db): the audit log

Each protocol keeps the same guarantees on both databases, checked by one
contract test run against each (tests/cluster/test_store_contract.py for
runs, tests/cluster/test_session_store_contract.py for sessions,
tests/cluster/test_tenant_store_contract.py for tenants, tokens and the audit
log). Every run and session record names its tenant (`ADMIN_TENANT` for rows
older than tenants); a listing may be limited to one. Runs: a
record is durable before `insert` returns; a run gets exactly one terminal
state (`finish` is conditional on the run still being active, so concurrent
finishers agree on one winner); reads see every committed write. Sessions:
a session ended (closed, expired, lost) is never written back to live; a node
that starts again marks the sessions it held as lost. Every method blocks;
call them from threads. Tenants: names are unique, the built-in admin
tenant always exists and cannot be removed; a token is found by the digest of
its secret only (the secret is never stored). The audit log: `append` is one
transaction, durable when it returns; entries are never changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from ai_data_agent.api_models import ACTIVE_RUN_STATUSES, ActiveStatus, RunRecord
from ai_data_agent.models import RunRequest, RunResult, RunStatus
from ai_data_agent.session_models import CellResult, SessionInfo
from ai_data_agent.tenant_models import ADMIN_TENANT, AuditEntry, Tenant, TokenInfo

__all__ = [
    "AuditQuery",
    "AuditRecords",
    "Outcome",
    "RunRecords",
    "SessionRegistry",
    "TenantRecords",
    "record_from_row",
    "result_of",
]


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

    def insert(
        self,
        run_id: str,
        request: RunRequest,
        *,
        tenant: str = ADMIN_TENANT,
        now: float | None = None,
    ) -> RunRecord:
        """Record a new ``queued`` run of ``tenant``; durable when this returns."""

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
        tenant: str | None = None,
        limit: int = 50,
        offset: int = 0,
        since: float | None = None,
    ) -> tuple[list[RunRecord], int]:
        """A page of records, newest first, and the total matching ``status``, ``tenant``
        (None: any) and created at or after ``since`` (unix seconds), when given."""


class SessionRegistry(Protocol):
    """The sessions' records, as one node writes them. See the module docstring."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def put(self, info: SessionInfo) -> None:
        """Record a session's latest state, as held by this node (an ended one stays ended)."""

    def get(self, session_id: str) -> SessionInfo | None: ...

    def recent(self, *, tenant: str | None = None, limit: int = 100) -> list[SessionInfo]:
        """Live sessions first, then the newest (of ``tenant``; None: any)."""

    def lose_live(self, reason: str) -> list[str]:
        """Mark ``lost`` every live session this node holds; return their ids."""

    def put_cell(self, result: CellResult, code: str | None = None) -> None:
        """Record a cell's result and the code that made it (None: not known)."""

    def get_cell(self, session_id: str, n: int) -> CellResult | None: ...

    def cell_code(self, session_id: str, n: int) -> str | None:
        """The code of a recorded cell; None when no cell or no code is recorded."""

    def delete_before(self, keep: int) -> int:
        """Keep the newest ``keep`` ended sessions (and their cells); return how many went."""


class TenantRecords(Protocol):
    """Tenants and their tokens. See the module docstring."""

    def open(self) -> None:
        """Make the store usable (schema, the built-in admin tenant). Idempotent."""

    def close(self) -> None: ...

    def add_tenant(self, tenant: Tenant) -> None:
        """Raises `RequestRejected` when the name is taken."""

    def get_tenant(self, name: str) -> Tenant | None: ...

    def tenants(self) -> list[Tenant]:
        """Every tenant, by name."""

    def update_tenant(self, tenant: Tenant) -> bool:
        """Store ``tenant``'s role and quotas; False when there is no such tenant."""

    def remove_tenant(self, name: str) -> bool:
        """Remove a tenant and its tokens (its records stay, under its name); False when
        there is none. Raises `RequestRejected` for the built-in admin tenant."""

    def add_token(self, info: TokenInfo, digest: str) -> None:
        """Raises `RequestRejected` when the name is taken or the tenant does not exist."""

    def token(self, digest: str) -> tuple[TokenInfo, Tenant] | None:
        """The token whose secret has ``digest``, and its tenant (revoked and expired ones
        too: the caller refuses them)."""

    def tokens(self, *, tenant: str | None = None) -> list[TokenInfo]: ...

    def revoke_token(self, name: str, *, now: float) -> TokenInfo | None:
        """Revoke a token now (idempotent); None when there is none."""

    def touch_token(self, name: str, *, now: float) -> None:
        """Record its last use."""

    def has_tokens(self) -> bool:
        """Whether any token was ever made (revoked and expired ones count)."""


@dataclass(frozen=True)
class AuditQuery:
    """A filter over the audit log: every field None is no filter; ``before`` pages by seq."""

    tenant: str | None = None
    action: str | None = None
    since: float | None = None  # unix seconds, inclusive
    until: float | None = None  # exclusive
    before: int | None = None
    limit: int = 100

    @classmethod
    def of(
        cls,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        **fields: Any,
    ) -> AuditQuery:
        """A query with times given as datetimes (the other fields as the class's)."""
        return cls(
            since=None if since is None else since.timestamp(),
            until=None if until is None else until.timestamp(),
            **fields,
        )


class AuditRecords(Protocol):
    """The audit log's storage. See the module docstring."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def append(self, entries: list[AuditEntry]) -> None:
        """Write ``entries`` in one transaction, durable when this returns."""

    def query(self, query: AuditQuery) -> list[AuditEntry]:
        """Matching entries, newest first, each with its ``seq``."""

    def delete_before(self, cutoff: float) -> int:
        """Delete the entries older than ``cutoff`` (unix seconds); return how many."""


def result_of(record: RunRecord) -> RunResult:
    """A terminal record's result, or one saying why there is none."""
    if record.result is not None:
        return record.result
    return RunResult(id=record.id, status=RunStatus(record.status), error=record.error)


def record_from_row(row: tuple[Any, ...]) -> RunRecord:
    """The `RunRecord` of a row of both stores' columns: id, status, created_at, started_at,
    finished_at, request, result, error, tenant (times in unix seconds, models as JSON)."""
    run_id, status, created, started, finished, request, result, error, tenant = row
    return RunRecord(
        id=run_id,
        tenant=tenant,
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
