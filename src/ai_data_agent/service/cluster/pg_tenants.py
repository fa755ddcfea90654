"""Tenants, tokens and the audit log in the shared PostgreSQL: `records.TenantRecords` and
`records.AuditRecords`, with the guarantees (and contract tests) of the SQLite stores.

    tenants = PgTenantStore(db)        # the node opens and migrates the database
    tenants.open()                     # the built-in admin tenant exists now
    audit = PgAuditStore(db)
    audit.append([entry])              # one transaction

Every API node reads the same rows, so a token revoked through one node is
refused by every node at its next request.
"""

from __future__ import annotations

import time

import psycopg

from ai_data_agent.errors import RequestRejected
from ai_data_agent.service.audit_store import (
    ENTRY_COLUMNS,
    entry_of_row,
    query_params,
    row_of_entry,
)
from ai_data_agent.service.cluster.db import Database
from ai_data_agent.service.records import AuditQuery
from ai_data_agent.service.tenant_store import (
    TENANT_COLUMNS,
    TOKEN_COLUMNS,
    builtin_admin,
    stamp,
    tenant_of_row,
    token_of_row,
)
from ai_data_agent.tenant_models import ADMIN_TENANT, AuditEntry, Tenant, TokenInfo

__all__ = ["PgAuditStore", "PgTenantStore"]


class PgTenantStore:
    """See the module docstring. The database is opened (and migrated) by the node."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def open(self) -> None:
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO tenants (name, role, quotas, created_at, builtin) "
                "VALUES (%s, %s, %s, %s, %s::int::boolean) ON CONFLICT (name) DO NOTHING",
                builtin_admin(time.time()),
            )

    def close(self) -> None:
        """The node closes the database."""

    def add_tenant(self, tenant: Tenant) -> None:
        try:
            with self.db.connection() as conn:
                conn.execute(
                    "INSERT INTO tenants (name, role, quotas, created_at) VALUES (%s, %s, %s, %s)",
                    (
                        tenant.name,
                        tenant.role.value,
                        tenant.quotas.model_dump_json(),
                        tenant.created_at.timestamp(),
                    ),
                )
        except psycopg.errors.UniqueViolation as exc:
            raise RequestRejected("name", f"a tenant named {tenant.name!r} exists") from exc

    def get_tenant(self, name: str) -> Tenant | None:
        with self.db.connection() as conn:
            row = conn.execute(
                f"SELECT {TENANT_COLUMNS} FROM tenants WHERE name = %s",  # noqa: S608 (a constant)
                (name,),
            ).fetchone()
        return None if row is None else tenant_of_row(row)

    def tenants(self) -> list[Tenant]:
        with self.db.connection() as conn:
            rows = conn.execute(
                f"SELECT {TENANT_COLUMNS} FROM tenants ORDER BY name"  # noqa: S608 (a constant)
            ).fetchall()
        return [tenant_of_row(row) for row in rows]

    def update_tenant(self, tenant: Tenant) -> bool:
        with self.db.connection() as conn:
            cursor = conn.execute(
                "UPDATE tenants SET role = %s, quotas = %s WHERE name = %s",
                (tenant.role.value, tenant.quotas.model_dump_json(), tenant.name),
            )
        return cursor.rowcount == 1

    def remove_tenant(self, name: str) -> bool:
        if name == ADMIN_TENANT:
            raise RequestRejected("name", "the built-in admin tenant cannot be removed")
        with self.db.connection() as conn, conn.transaction():
            conn.execute("DELETE FROM tokens WHERE tenant = %s", (name,))
            cursor = conn.execute("DELETE FROM tenants WHERE name = %s", (name,))
        return cursor.rowcount == 1

    def add_token(self, info: TokenInfo, digest: str) -> None:
        try:
            with self.db.connection() as conn:
                conn.execute(
                    "INSERT INTO tokens (name, tenant, digest, created_at, expires_at) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (
                        info.name,
                        info.tenant,
                        digest,
                        info.created_at.timestamp(),
                        stamp(info.expires_at),
                    ),
                )
        except psycopg.errors.ForeignKeyViolation as exc:
            raise RequestRejected("tenant", f"no tenant named {info.tenant!r}") from exc
        except psycopg.errors.UniqueViolation as exc:
            raise RequestRejected("name", f"a token named {info.name!r} exists") from exc

    def token(self, digest: str) -> tuple[TokenInfo, Tenant] | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT k.name, k.tenant, k.created_at, k.last_used_at, k.expires_at, "
                "k.revoked_at, t.name, t.role, t.quotas, t.created_at, t.builtin "
                "FROM tokens k JOIN tenants t ON t.name = k.tenant WHERE k.digest = %s",
                (digest,),
            ).fetchone()
        return None if row is None else (token_of_row(row[:6]), tenant_of_row(row[6:]))

    def tokens(self, *, tenant: str | None = None) -> list[TokenInfo]:
        with self.db.connection() as conn:
            rows = conn.execute(
                f"SELECT {TOKEN_COLUMNS} FROM tokens "  # noqa: S608 (a constant)
                "WHERE (%(t)s::text IS NULL OR tenant = %(t)s) ORDER BY tenant, name",
                {"t": tenant},
            ).fetchall()
        return [token_of_row(row) for row in rows]

    def revoke_token(self, name: str, *, now: float) -> TokenInfo | None:
        with self.db.connection() as conn:
            conn.execute(
                "UPDATE tokens SET revoked_at = %s WHERE name = %s AND revoked_at IS NULL",
                (now, name),
            )
            row = conn.execute(
                f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE name = %s",  # noqa: S608 (a constant)
                (name,),
            ).fetchone()
        return None if row is None else token_of_row(row)

    def touch_token(self, name: str, *, now: float) -> None:
        with self.db.connection() as conn:
            conn.execute("UPDATE tokens SET last_used_at = %s WHERE name = %s", (now, name))

    def has_tokens(self) -> bool:
        with self.db.connection() as conn:
            row = conn.execute("SELECT EXISTS (SELECT 1 FROM tokens)").fetchone()
        return bool(row and row[0])


class PgAuditStore:
    """See the module docstring."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def open(self) -> None:
        """The node opens (and migrates) the database."""

    def close(self) -> None:
        """The node closes the database."""

    def append(self, entries: list[AuditEntry]) -> None:
        if not entries:
            return
        with self.db.connection() as conn, conn.transaction(), conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO audit (at, tenant, token, action, object_id, status, code, client) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [row_of_entry(entry) for entry in entries],
            )

    def query(self, query: AuditQuery) -> list[AuditEntry]:
        with self.db.connection() as conn:
            rows = conn.execute(
                f"SELECT {ENTRY_COLUMNS} FROM audit "  # noqa: S608 (a constant)
                "WHERE (%(tenant)s::text IS NULL OR tenant = %(tenant)s) "
                "AND (%(action)s::text IS NULL OR action = %(action)s) "
                "AND (%(family)s::text IS NULL OR left(action, length(%(family)s)) = %(family)s) "
                "AND (%(since)s::float8 IS NULL OR at >= %(since)s) "
                "AND (%(until)s::float8 IS NULL OR at < %(until)s) "
                "AND (%(before)s::bigint IS NULL OR seq < %(before)s) "
                "ORDER BY seq DESC LIMIT %(limit)s",
                query_params(query),
            ).fetchall()
        return [entry_of_row(row) for row in rows]

    def delete_before(self, cutoff: float) -> int:
        with self.db.connection() as conn:
            return conn.execute("DELETE FROM audit WHERE at < %s", (cutoff,)).rowcount
