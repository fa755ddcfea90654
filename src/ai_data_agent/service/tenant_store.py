"""Tenants and their tokens in SQLite, beside the run records: `records.TenantRecords`.

    store = TenantStore(settings.data_dir / "tenants.sqlite3")
    store.open()                                   # the built-in admin tenant exists now
    store.add_tenant(Tenant(name="team-a", role=Role.AGENT, created_at=now))
    store.add_token(TokenInfo(name="ci", tenant="team-a", created_at=now), digest)
    found = store.token(digest)                    # (TokenInfo, Tenant) or None

A token's row holds the digest of its secret (`auth.token_digest`), never the
secret. Every method is blocking and thread-safe; writes are autocommitted in
WAL mode with ``synchronous=FULL``, so a revocation is on disk when it returns,
and every process that opens the file (the daemon, ``ai-data-agent token``)
sees it at its next read.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ai_data_agent.errors import RequestRejected
from ai_data_agent.service.sqlite import SqliteFile
from ai_data_agent.tenant_models import ADMIN_TENANT, Quotas, Role, Tenant, TokenInfo

__all__ = [
    "TENANTS_FILENAME",
    "TenantStore",
    "builtin_admin",
    "tenant_of_row",
    "token_of_row",
]

TENANTS_FILENAME = "tenants.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL,                 -- admin, agent
    quotas     TEXT NOT NULL,                 -- Quotas JSON
    created_at REAL NOT NULL,
    builtin    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tokens (
    name         TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL REFERENCES tenants (name),
    digest       TEXT NOT NULL UNIQUE,        -- sha256 of the secret, hex
    created_at   REAL NOT NULL,
    last_used_at REAL,
    expires_at   REAL,
    revoked_at   REAL
);
"""
TENANT_COLUMNS = "name, role, quotas, created_at, builtin"
TOKEN_COLUMNS = "name, tenant, created_at, last_used_at, expires_at, revoked_at"  # noqa: S105


def builtin_admin(now: float) -> tuple[Any, ...]:
    """The built-in admin tenant's row."""
    return (ADMIN_TENANT, Role.ADMIN.value, Quotas().model_dump_json(), now, 1)


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def tenant_of_row(row: tuple[Any, ...]) -> Tenant:
    """A `Tenant` of a row of `TENANT_COLUMNS` (both stores)."""
    name, role, quotas, created, builtin = row
    return Tenant(
        name=name,
        role=Role(role),
        quotas=Quotas.model_validate_json(quotas),
        created_at=datetime.fromtimestamp(created, UTC),
        builtin=bool(builtin),
    )


def token_of_row(row: tuple[Any, ...]) -> TokenInfo:
    """A `TokenInfo` of a row of `TOKEN_COLUMNS` (both stores)."""
    name, tenant, created, used, expires, revoked = row
    return TokenInfo(
        name=name,
        tenant=tenant,
        created_at=datetime.fromtimestamp(created, UTC),
        last_used_at=_time(used),
        expires_at=_time(expires),
        revoked_at=_time(revoked),
    )


def stamp(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


class TenantStore(SqliteFile):
    """See the module docstring."""

    def __init__(self, path: Path) -> None:
        pragmas = ("synchronous=FULL", "foreign_keys=ON")
        super().__init__(path, what="the tenant store", schema=SCHEMA, pragmas=pragmas)

    def open(self) -> None:
        super().open()
        with self._lock:
            self._db().execute(
                "INSERT OR IGNORE INTO tenants (name, role, quotas, created_at, builtin) "
                "VALUES (?, ?, ?, ?, ?)",
                builtin_admin(datetime.now(UTC).timestamp()),
            )

    # -- tenants --------------------------------------------------------------------
    def add_tenant(self, tenant: Tenant) -> None:
        try:
            with self._lock:
                self._db().execute(
                    "INSERT INTO tenants (name, role, quotas, created_at) VALUES (?, ?, ?, ?)",
                    (
                        tenant.name,
                        tenant.role.value,
                        tenant.quotas.model_dump_json(),
                        tenant.created_at.timestamp(),
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise RequestRejected("name", f"a tenant named {tenant.name!r} exists") from exc

    def get_tenant(self, name: str) -> Tenant | None:
        with self._lock:
            row = (
                self._db()
                .execute(f"SELECT {TENANT_COLUMNS} FROM tenants WHERE name = ?", (name,))  # noqa: S608 (a constant)
                .fetchone()
            )
        return None if row is None else tenant_of_row(row)

    def tenants(self) -> list[Tenant]:
        with self._lock:
            rows = (
                self._db()
                .execute(f"SELECT {TENANT_COLUMNS} FROM tenants ORDER BY name")  # noqa: S608 (a constant)
                .fetchall()
            )
        return [tenant_of_row(row) for row in rows]

    def update_tenant(self, tenant: Tenant) -> bool:
        with self._lock:
            cursor = self._db().execute(
                "UPDATE tenants SET role = ?, quotas = ? WHERE name = ?",
                (tenant.role.value, tenant.quotas.model_dump_json(), tenant.name),
            )
        return cursor.rowcount == 1

    def remove_tenant(self, name: str) -> bool:
        if name == ADMIN_TENANT:
            raise RequestRejected("name", "the built-in admin tenant cannot be removed")
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM tokens WHERE tenant = ?", (name,))
                cursor = db.execute("DELETE FROM tenants WHERE name = ?", (name,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return cursor.rowcount == 1

    # -- tokens ---------------------------------------------------------------------
    def add_token(self, info: TokenInfo, digest: str) -> None:
        try:
            with self._lock:
                self._db().execute(
                    "INSERT INTO tokens (name, tenant, digest, created_at, expires_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (
                        info.name,
                        info.tenant,
                        digest,
                        info.created_at.timestamp(),
                        stamp(info.expires_at),
                    ),
                )
        except sqlite3.IntegrityError as exc:
            if self.get_tenant(info.tenant) is None:
                raise RequestRejected("tenant", f"no tenant named {info.tenant!r}") from exc
            raise RequestRejected("name", f"a token named {info.name!r} exists") from exc

    def token(self, digest: str) -> tuple[TokenInfo, Tenant] | None:
        with self._lock:
            row = (
                self._db()
                .execute(
                    "SELECT k.name, k.tenant, k.created_at, k.last_used_at, k.expires_at, "
                    "k.revoked_at, t.name, t.role, t.quotas, t.created_at, t.builtin "
                    "FROM tokens k JOIN tenants t ON t.name = k.tenant WHERE k.digest = ?",
                    (digest,),
                )
                .fetchone()
            )
        return None if row is None else (token_of_row(row[:6]), tenant_of_row(row[6:]))

    def tokens(self, *, tenant: str | None = None) -> list[TokenInfo]:
        with self._lock:
            rows = (
                self._db()
                .execute(
                    f"SELECT {TOKEN_COLUMNS} FROM tokens "  # noqa: S608 (a constant)
                    "WHERE (:tenant IS NULL OR tenant = :tenant) ORDER BY tenant, name",
                    {"tenant": tenant},
                )
                .fetchall()
            )
        return [token_of_row(row) for row in rows]

    def revoke_token(self, name: str, *, now: float) -> TokenInfo | None:
        with self._lock:
            db = self._db()
            db.execute(
                "UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                (now, name),
            )
            row = db.execute(
                f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE name = ?",  # noqa: S608 (a constant)
                (name,),
            ).fetchone()
        return None if row is None else token_of_row(row)

    def touch_token(self, name: str, *, now: float) -> None:
        with self._lock:
            self._db().execute("UPDATE tokens SET last_used_at = ? WHERE name = ?", (now, name))

    def has_tokens(self) -> bool:
        with self._lock:
            row = self._db().execute("SELECT EXISTS (SELECT 1 FROM tokens)").fetchone()
        return bool(row[0])
