"""Where ``tenant``, ``token`` and ``audit`` act: a daemon over HTTP, or the stores themselves.

    with admin_for(server) as admin:          # --server URL: HTTP; else this host's stores
        admin.add_tenant(TenantCreate(name="team-a"))

Without a server the commands open the same stores a daemon of these settings
uses: the data dir's SQLite files, or the cluster's database (``database_url``,
migrated first, as an API node does); a running daemon sees the change at its
next request. A change made here is written to the audit log as the built-in
admin's, from ``cli``. Over HTTP the token must be an admin's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Protocol

from ai_data_agent.cli.common import client_for, fail, load_settings, setup_logging
from ai_data_agent.cli.exits import EXIT_INFRASTRUCTURE
from ai_data_agent.client import Client
from ai_data_agent.errors import AiDataAgentError
from ai_data_agent.service.records import AuditQuery, AuditRecords, TenantRecords
from ai_data_agent.service.tenant_admin import TenantAdmin
from ai_data_agent.settings import Settings
from ai_data_agent.tenant_models import (
    ADMIN_TENANT,
    AuditEntry,
    NewToken,
    Tenant,
    TenantCreate,
    TenantUpdate,
    TokenCreate,
    TokenInfo,
)

__all__ = ["Admin", "admin_for"]

CLI_CLIENT = "cli"  # the client address of a change made on this host's stores


class Admin(Protocol):
    def add_tenant(self, create: TenantCreate) -> Tenant: ...

    def tenants(self) -> list[Tenant]: ...

    def update_tenant(self, name: str, update: TenantUpdate) -> Tenant: ...

    def remove_tenant(self, name: str) -> None: ...

    def new_token(self, create: TokenCreate) -> NewToken: ...

    def tokens(self, tenant: str | None) -> list[TokenInfo]: ...

    def revoke(self, name: str) -> TokenInfo: ...

    def audit(self, query: AuditQuery) -> list[AuditEntry]: ...


class _Remote:
    """`Admin` over a daemon's ``/v1/tenants``, ``/v1/tokens`` and ``/v1/audit``."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def add_tenant(self, create: TenantCreate) -> Tenant:
        return self.client.tenants.add(create.name, role=create.role, quotas=create.quotas)

    def tenants(self) -> list[Tenant]:
        return self.client.tenants.list()

    def update_tenant(self, name: str, update: TenantUpdate) -> Tenant:
        return self.client.tenants.update(name, role=update.role, quotas=update.quotas)

    def remove_tenant(self, name: str) -> None:
        self.client.tenants.remove(name)

    def new_token(self, create: TokenCreate) -> NewToken:
        return self.client.tokens.new(create.tenant, create.name, expires_in_s=create.expires_in_s)

    def tokens(self, tenant: str | None) -> list[TokenInfo]:
        return self.client.tokens.list(tenant)

    def revoke(self, name: str) -> TokenInfo:
        return self.client.tokens.revoke(name)

    def audit(self, query: AuditQuery) -> list[AuditEntry]:
        page = self.client.audit.page(
            tenant=query.tenant,
            action=query.action,
            since=_when(query.since),
            until=_when(query.until),
            before=query.before,
            limit=query.limit,
        )
        return page.items


def _when(stamp: float | None) -> datetime | None:
    return None if stamp is None else datetime.fromtimestamp(stamp, UTC)


class _Local:
    """`Admin` on the stores themselves; each change gets its audit entry."""

    def __init__(self, tenants: TenantRecords, audit: AuditRecords) -> None:
        self.admin = TenantAdmin(tenants)
        self.log = audit

    def _audited(self, action: str, object_id: str) -> None:
        entry = AuditEntry(
            at=datetime.fromtimestamp(time.time(), UTC),
            tenant=ADMIN_TENANT,
            action=action,
            object_id=object_id,
            status=200,
            client=CLI_CLIENT,
        )
        self.log.append([entry])

    def add_tenant(self, create: TenantCreate) -> Tenant:
        tenant = self.admin.add_tenant(create)
        self._audited("tenant.add", create.name)
        return tenant

    def tenants(self) -> list[Tenant]:
        return self.admin.tenants()

    def update_tenant(self, name: str, update: TenantUpdate) -> Tenant:
        tenant = self.admin.update_tenant(name, update)
        self._audited("tenant.set", name)
        return tenant

    def remove_tenant(self, name: str) -> None:
        self.admin.remove_tenant(name)
        self._audited("tenant.rm", name)

    def new_token(self, create: TokenCreate) -> NewToken:
        token = self.admin.new_token(create)
        self._audited("token.new", create.name)
        return token

    def tokens(self, tenant: str | None) -> list[TokenInfo]:
        return self.admin.tokens(tenant)

    def revoke(self, name: str) -> TokenInfo:
        token = self.admin.revoke(name)
        self._audited("token.revoke", name)
        return token

    def audit(self, query: AuditQuery) -> list[AuditEntry]:
        return self.log.query(query)


@contextmanager
def _local(settings: Settings) -> Iterator[Admin]:
    if settings.clustered:
        with _cluster(settings) as admin:
            yield admin
        return
    from ai_data_agent.service.audit_store import AUDIT_FILENAME, AuditStore
    from ai_data_agent.service.tenant_store import TENANTS_FILENAME, TenantStore

    tenants = TenantStore(settings.data_dir / TENANTS_FILENAME)
    audit = AuditStore(settings.data_dir / AUDIT_FILENAME)
    try:
        tenants.open()
        audit.open()
        yield _Local(tenants, audit)
    finally:
        audit.close()
        tenants.close()


@contextmanager
def _cluster(settings: Settings) -> Iterator[Admin]:
    import psycopg

    from ai_data_agent.service.cluster import schema
    from ai_data_agent.service.cluster.db import Database
    from ai_data_agent.service.cluster.pg_tenants import PgAuditStore, PgTenantStore

    db = Database(settings, role="cli", max_size=1)
    try:
        db.open()
        db.wait_ready(10.0)
        with db.connection() as conn:
            schema.migrate(conn)
        tenants = PgTenantStore(db)
        tenants.open()
        yield _Local(tenants, PgAuditStore(db))
    except psycopg.Error as exc:
        raise fail(f"the database failed: {exc}", EXIT_INFRASTRUCTURE) from exc
    finally:
        db.close()


@contextmanager
def admin_for(server: str | None) -> Iterator[Admin]:
    """The `Admin` of ``server`` (or ``AI_DATA_AGENT_SERVER``), else of this host's stores.

    Errors of the tree stop the command (`common.exit_for`).
    """
    settings = load_settings()
    setup_logging(settings, "WARNING")
    url = server or settings.server
    try:
        if url is not None:
            with client_for(url, settings) as client:
                yield _Remote(client)
        else:
            with _local(settings) as admin:
                yield admin
    except AiDataAgentError as exc:
        from ai_data_agent.cli.common import exit_for

        raise exit_for(exc, settings.token) from exc
