"""Tenants, tokens, the audit log and the owners of runs and sessions: one contract, on
SQLite and on PostgreSQL."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ai_data_agent.errors import RequestRejected
from ai_data_agent.models import RunRequest
from ai_data_agent.service.audit import AuditLog
from ai_data_agent.service.audit_store import AuditStore
from ai_data_agent.service.auth import new_secret, token_digest
from ai_data_agent.service.cluster import schema
from ai_data_agent.service.cluster.db import Database
from ai_data_agent.service.cluster.pg_sessions import PgSessionRegistry
from ai_data_agent.service.cluster.pg_store import PgRunStore
from ai_data_agent.service.cluster.pg_tenants import PgAuditStore, PgTenantStore
from ai_data_agent.service.records import (
    AuditQuery,
    AuditRecords,
    RunRecords,
    SessionRegistry,
    TenantRecords,
)
from ai_data_agent.service.session_store import SessionStore
from ai_data_agent.service.store import RunStore
from ai_data_agent.service.tenant_store import TenantStore
from ai_data_agent.session_models import SessionInfo, SessionStatus
from ai_data_agent.settings import Settings
from ai_data_agent.tenant_models import (
    ADMIN_TENANT,
    AuditEntry,
    Quotas,
    Role,
    Tenant,
    TokenInfo,
)

from .postgres import Postgres, pg_bin

pytestmark = pytest.mark.cluster
NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass
class Stores:
    tenants: TenantRecords
    audit: AuditRecords
    runs: RunRecords
    sessions: SessionRegistry


@pytest.fixture(params=["sqlite", "postgres"])
def stores(
    request: pytest.FixtureRequest, tmp_path: Path, cluster_settings: Callable[..., Settings]
) -> Iterator[Stores]:
    if request.param == "sqlite":
        made = Stores(
            TenantStore(tmp_path / "tenants.sqlite3"),
            AuditStore(tmp_path / "audit.sqlite3"),
            RunStore(tmp_path / "runs.sqlite3"),
            SessionStore(tmp_path / "sessions.sqlite3", node="n1"),
        )
    else:
        runs = PgRunStore(Database(cluster_settings("api"), role="api"), migrate=True)
        runs.open()
        made = Stores(
            PgTenantStore(runs.db),
            PgAuditStore(runs.db),
            runs,
            PgSessionRegistry(runs.db, node="n1", prunes=True),
        )
    for store in (made.runs, made.tenants, made.audit, made.sessions):
        store.open()
    yield made
    for store in (made.sessions, made.audit, made.tenants, made.runs):
        store.close()


def tenant(name: str, role: Role = Role.AGENT, **quotas: object) -> Tenant:
    return Tenant(name=name, role=role, quotas=Quotas.model_validate(quotas), created_at=NOW)


def token(name: str, tenant_name: str, **fields: object) -> TokenInfo:
    return TokenInfo.model_validate(
        {"name": name, "tenant": tenant_name, "created_at": NOW, **fields}
    )


def test_the_builtin_admin_exists_and_tenants_are_unique(stores: Stores) -> None:
    tenants = stores.tenants
    tenants.open()  # again: idempotent
    admin = tenants.get_tenant(ADMIN_TENANT)
    assert admin is not None and admin.role is Role.ADMIN and admin.builtin
    tenants.add_tenant(tenant("team-a", concurrent_sessions=2, egress_allow=["example.org"]))
    with pytest.raises(RequestRejected, match="exists"):
        tenants.add_tenant(tenant("team-a"))
    found = tenants.get_tenant("team-a")
    assert found is not None and found.quotas.concurrent_sessions == 2
    assert found.quotas.egress_allow == ["example.org"] and not found.builtin
    assert [t.name for t in tenants.tenants()] == ["admin", "team-a"]
    changed = found.model_copy(update={"quotas": Quotas(cpu_seconds_per_hour=60.0)})
    assert tenants.update_tenant(changed)
    again = tenants.get_tenant("team-a")
    assert again is not None and again.quotas == Quotas(cpu_seconds_per_hour=60.0)
    assert not tenants.update_tenant(tenant("nobody"))
    with pytest.raises(RequestRejected, match="built-in"):
        tenants.remove_tenant(ADMIN_TENANT)
    assert tenants.remove_tenant("team-a") and not tenants.remove_tenant("team-a")


def test_tokens_are_found_by_digest_revoked_touched_and_go_with_their_tenant(
    stores: Stores,
) -> None:
    tenants = stores.tenants
    assert not tenants.has_tokens()
    tenants.add_tenant(tenant("team-a"))
    secret, digest = new_secret()
    assert secret.startswith("ada_") and digest == token_digest(secret) and secret not in digest
    tenants.add_token(token("ci", "team-a", expires_at=NOW + timedelta(days=1)), digest)
    with pytest.raises(RequestRejected, match="exists"):
        tenants.add_token(token("ci", "team-a"), token_digest("other"))
    with pytest.raises(RequestRejected, match="no tenant"):
        tenants.add_token(token("lost", "nobody"), token_digest("lost"))
    assert tenants.has_tokens()
    found = tenants.token(digest)
    assert found is not None
    info, owner = found
    assert (info.name, owner.name, info.expires_at) == ("ci", "team-a", NOW + timedelta(days=1))
    assert tenants.token(token_digest("wrong")) is None
    tenants.touch_token("ci", now=NOW.timestamp() + 5)
    revoked = tenants.revoke_token("ci", now=NOW.timestamp() + 10)
    assert revoked is not None and revoked.revoked_at == NOW + timedelta(seconds=10)
    again = tenants.revoke_token("ci", now=NOW.timestamp() + 20)  # idempotent: the first time
    assert again is not None and again.revoked_at == NOW + timedelta(seconds=10)
    assert tenants.revoke_token("nobody", now=0) is None
    [listed] = tenants.tokens(tenant="team-a")
    assert listed.last_used_at == NOW + timedelta(seconds=5)
    assert tenants.tokens(tenant="admin") == []
    tenants.remove_tenant("team-a")
    assert tenants.token(digest) is None and tenants.tokens() == []
    assert tenants.has_tokens() is False  # the rows went with the tenant


def entry(
    action: str, tenant_name: str | None, at: datetime = NOW, status: int = 200
) -> AuditEntry:
    return AuditEntry(at=at, tenant=tenant_name, token="ci", action=action, status=status)


def test_the_audit_log_filters_pages_and_expires(stores: Stores) -> None:
    audit = stores.audit
    audit.append([entry("run.create", "a", NOW + timedelta(seconds=n)) for n in range(5)])
    audit.append([entry("run.get", "b", NOW + timedelta(seconds=10), 404)])
    audit.append([])
    newest = audit.query(AuditQuery(limit=3))
    assert [e.action for e in newest] == ["run.get", "run.create", "run.create"]
    assert newest[0].status == 404 and newest[0].seq is not None
    rest = audit.query(AuditQuery(before=newest[-1].seq, limit=10))
    last = newest[-1].seq
    assert len(rest) == 3 and all(e.seq is not None and e.seq < last for e in rest)
    assert len(audit.query(AuditQuery(tenant="a"))) == 5
    assert len(audit.query(AuditQuery(action="run.get"))) == 1
    assert len(audit.query(AuditQuery(action="run."))) == 6  # a family: a prefix
    assert audit.query(AuditQuery(action="run")) == [] == audit.query(AuditQuery(action="ru."))
    since = (NOW + timedelta(seconds=3)).timestamp()
    until = (NOW + timedelta(seconds=10)).timestamp()
    assert len(audit.query(AuditQuery(since=since, until=until))) == 2
    assert audit.delete_before(since) == 3
    assert len(audit.query(AuditQuery())) == 3


def test_a_burst_of_writers_loses_no_entry(stores: Stores) -> None:
    log = AuditLog(stores.audit, retention_s=3600)
    log.start()
    try:
        futures = []

        def burst(n: int) -> None:
            futures.extend(log.add(entry(f"burst.{n}", "a")) for _ in range(30))

        threads = [threading.Thread(target=burst, args=(n,)) for n in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for future in futures:
            future.result(timeout=30)
    finally:
        log.stop()
    stores.audit.open()
    assert len(stores.audit.query(AuditQuery(tenant="a", limit=1000))) == 300


def test_runs_and_sessions_name_their_tenant_and_list_by_it(stores: Stores) -> None:
    stores.runs.insert("r1", RunRequest(code="x"), tenant="a")
    stores.runs.insert("r2", RunRequest(code="x"), tenant="b")
    stores.runs.insert("r3", RunRequest(code="x"))
    record = stores.runs.get("r1")
    assert record is not None and record.tenant == "a"
    admins = stores.runs.get("r3")
    assert admins is not None and admins.tenant == ADMIN_TENANT
    items, total = stores.runs.list(tenant="b")
    assert total == 1 and [r.id for r in items] == ["r2"]
    assert stores.runs.list()[1] == 3
    for sid, owner in (("s1", "a"), ("s2", "b")):
        stores.sessions.put(
            SessionInfo(
                id=sid,
                tenant=owner,
                status=SessionStatus.IDLE,
                created_at=NOW,
                last_activity_at=NOW,
            )
        )
    assert [s.id for s in stores.sessions.recent(tenant="a")] == ["s1"]
    assert {s.id for s in stores.sessions.recent()} == {"s1", "s2"}
    theirs = stores.sessions.get("s2")
    assert theirs is not None and theirs.tenant == "b"


def test_a_schema_before_tenants_moves_on_with_every_row_the_admins(
    pg: Postgres, database: str, cluster_settings: Callable[..., Settings]
) -> None:
    db = Database(cluster_settings("api"), role="api")
    db.open()
    try:
        with db.connection() as conn:
            assert schema.migrate(conn, target=2) == [1, 2]
            conn.execute(
                "INSERT INTO runs (id, status, created_at, request) "
                "VALUES ('old', 'succeeded', 1, '{\"code\": \"x\"}')"
            )
            conn.execute(
                "INSERT INTO sessions (id, node, status, info) VALUES ('olds', 'w', 'closed', %s)",
                (
                    '{"id": "olds", "status": "closed", "created_at": "2030-01-01T00:00:00Z", '
                    '"last_activity_at": "2030-01-01T00:00:00Z"}',
                ),
            )
            assert schema.migrate(conn) == [n for n, _ in schema.MIGRATIONS if n >= 3]
        runs = PgRunStore(db, migrate=True)
        record = runs.get("old")
        assert record is not None and record.tenant == ADMIN_TENANT
        assert runs.list(tenant=ADMIN_TENANT)[1] == 1
        old = PgSessionRegistry(db, node="w").get("olds")
        assert old is not None and old.tenant == ADMIN_TENANT
    finally:
        db.close()


def test_a_token_secret_is_nowhere_in_a_pg_dump(
    pg: Postgres, database: str, cluster_settings: Callable[..., Settings]
) -> None:
    runs = PgRunStore(Database(cluster_settings("api"), role="api"), migrate=True)
    runs.open()
    try:
        tenants = PgTenantStore(runs.db)
        tenants.open()
        tenants.add_tenant(tenant("team-a"))
        secret, digest = new_secret()
        tenants.add_token(token("ci", "team-a"), digest)
    finally:
        runs.close()
    dump = subprocess.run(
        [pg_bin("pg_dump"), "--dbname", pg.url("api", database)],
        capture_output=True,
        check=True,
    ).stdout
    assert digest.encode() in dump and secret.encode() not in dump
