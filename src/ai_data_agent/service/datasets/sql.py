"""The dataset store's statements, written once for SQLite and PostgreSQL.

    class DatasetStore(SqlDatasets):           # SQLite: BEGIN IMMEDIATE under the file's lock
        def _tx(self): ...
    class PgDatasetStore(SqlDatasets):         # PostgreSQL: a pooled connection's transaction
        def _tx(self): ...

Each database gives a transaction (`_tx`) over a `Conn` that takes ``?``
placeholders, and the tenant's lock (`_lock_tenant`: nothing on SQLite, whose
writers are serialised already; an advisory lock on PostgreSQL); everything
else, so every guarantee of `records.DatasetRecords`, is here once. Times are
unix seconds; the two schemas differ only in their types.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Protocol

from ai_data_agent.dataset_models import (
    DatasetFile,
    DatasetInfo,
    DatasetSummary,
    DatasetVersion,
)
from ai_data_agent.service.datasets.records import DatasetUsage, NewVersion, StorageQuota

__all__ = ["MAX_LISTED_FILES", "Conn", "SqlDatasets"]

MAX_LISTED_FILES = 10_000
VERSION_COLUMNS = "name, version, digest, size, files, created_at, source, source_id"
SUMMARIES = (
    "SELECT tenant, name, MAX(version), COUNT(*), SUM(size), MAX(created_at) FROM dataset_versions "
)


class Rows(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Conn(Protocol):
    """A connection inside a transaction; SQL with ``?`` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


def _version(row: Sequence[Any], files: list[DatasetFile] | None = None) -> DatasetVersion:
    name, version, digest, size, count, created, source, source_id = row
    return DatasetVersion(
        name=name,
        version=version,
        digest=digest,
        size=size,
        file_count=count,
        created_at=datetime.fromtimestamp(created, UTC),
        source=source,
        source_id=source_id,
        files=files,
    )


class SqlDatasets:
    """`records.DatasetRecords` over `_tx`; see the module docstring."""

    def _tx(self) -> AbstractContextManager[Conn]:
        raise NotImplementedError

    def _lock_tenant(self, conn: Conn, tenant: str) -> None:
        """Serialise the tenant's additions (its quota) until the transaction ends."""

    # -- writes ---------------------------------------------------------------------
    def add_version(
        self,
        tenant: str,
        name: str,
        new: NewVersion,
        *,
        quota: StorageQuota,
        now: float | None = None,
    ) -> DatasetVersion:
        created = time.time() if now is None else now
        with self._tx() as conn:
            self._lock_tenant(conn, tenant)
            used = conn.execute(
                "SELECT COALESCE(SUM(size), 0) FROM dataset_versions WHERE tenant = ?", (tenant,)
            ).fetchone()[0]
            if used + new.size > quota.limit:
                raise quota.refusal(new.size, used)
            conn.execute(
                "INSERT INTO datasets (tenant, name, created_at, next_version) "
                "VALUES (?, ?, ?, 1) ON CONFLICT DO NOTHING",
                (tenant, name, created),
            )
            number = conn.execute(
                "SELECT next_version FROM datasets WHERE tenant = ? AND name = ?", (tenant, name)
            ).fetchone()[0]
            conn.execute(
                "UPDATE datasets SET next_version = ? WHERE tenant = ? AND name = ?",
                (number + 1, tenant, name),
            )
            self._put_manifest(conn, new)
            row = (name, number, new.digest, new.size, len(new.files), created)
            conn.execute(
                "INSERT INTO dataset_versions (tenant, name, version, digest, size, files, "
                "created_at, source, source_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (tenant, *row, new.source, new.source_id),
            )
        return _version((*row, new.source, new.source_id))

    @staticmethod
    def _put_manifest(conn: Conn, new: NewVersion) -> None:
        known = conn.execute("SELECT 1 FROM manifests WHERE digest = ?", (new.digest,)).fetchone()
        if known is not None:
            return
        conn.execute(
            "INSERT INTO manifests (digest, size, files) VALUES (?, ?, ?)",
            (new.digest, new.size, len(new.files)),
        )
        conn.executemany(
            "INSERT INTO manifest_files (digest, path, size, sha256) VALUES (?, ?, ?, ?)",
            [(new.digest, f.path, f.size, f.sha256) for f in new.files],
        )

    def delete(self, tenant: str, name: str, version: int | None) -> list[DatasetVersion]:
        which = "" if version is None else " AND version = ?"
        params: tuple[Any, ...] = (tenant, name) if version is None else (tenant, name, version)
        with self._tx() as conn:
            rows = conn.execute(
                f"SELECT {VERSION_COLUMNS} FROM dataset_versions "  # noqa: S608 (constants only)
                f"WHERE tenant = ? AND name = ?{which}",
                params,
            ).fetchall()
            conn.execute(
                f"DELETE FROM dataset_versions WHERE tenant = ? AND name = ?{which}",  # noqa: S608
                params,
            )
            left = conn.execute(
                "SELECT COUNT(*) FROM dataset_versions WHERE tenant = ? AND name = ?",
                (tenant, name),
            ).fetchone()[0]
            if not left:
                conn.execute("DELETE FROM datasets WHERE tenant = ? AND name = ?", (tenant, name))
        return [_version(row) for row in rows]

    def set_description(self, digest: str, text: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE manifests SET description = ? WHERE digest = ?", (text, digest))

    def drop_orphan_manifests(self) -> int:
        orphans = (
            "SELECT digest FROM manifests m WHERE NOT EXISTS "
            "(SELECT 1 FROM dataset_versions v WHERE v.digest = m.digest)"
        )
        with self._tx() as conn:
            doomed = [row[0] for row in conn.execute(orphans).fetchall()]
            conn.executemany("DELETE FROM manifest_files WHERE digest = ?", [(d,) for d in doomed])
            conn.executemany("DELETE FROM manifests WHERE digest = ?", [(d,) for d in doomed])
        return len(doomed)

    # -- reads ----------------------------------------------------------------------
    def datasets(self, tenant: str | None) -> list[DatasetSummary]:
        with self._tx() as conn:
            found = (
                conn.execute(SUMMARIES + "GROUP BY tenant, name ORDER BY tenant, name")
                if tenant is None
                else conn.execute(
                    SUMMARIES + "WHERE tenant = ? GROUP BY tenant, name ORDER BY name", (tenant,)
                )
            )
            rows = found.fetchall()
        return [
            DatasetSummary(
                tenant=owner,
                name=name,
                latest=latest,
                versions=count,
                size=size,
                updated_at=datetime.fromtimestamp(updated, UTC),
            )
            for owner, name, latest, count, size, updated in rows
        ]

    def dataset(self, tenant: str, name: str, *, files: bool = False) -> DatasetInfo | None:
        with self._tx() as conn:
            created = conn.execute(
                "SELECT created_at FROM datasets WHERE tenant = ? AND name = ?", (tenant, name)
            ).fetchone()
            rows = conn.execute(
                f"SELECT {VERSION_COLUMNS} FROM dataset_versions "  # noqa: S608 (constants only)
                "WHERE tenant = ? AND name = ? ORDER BY version DESC",
                (tenant, name),
            ).fetchall()
            listed = {row[2]: self._files(conn, row[2]) for row in rows} if files else {}
        if created is None or not rows:
            return None
        versions = [_version(row, listed.get(row[2])) for row in rows]
        return DatasetInfo(
            name=name,
            created_at=datetime.fromtimestamp(created[0], UTC),
            size=sum(v.size for v in versions),
            versions=versions,
        )

    def version(
        self, tenant: str, name: str, version: int | None, *, files: bool = False
    ) -> DatasetVersion | None:
        with self._tx() as conn:
            if version is None:
                row = conn.execute(
                    f"SELECT {VERSION_COLUMNS} FROM dataset_versions "  # noqa: S608
                    "WHERE tenant = ? AND name = ? ORDER BY version DESC LIMIT 1",
                    (tenant, name),
                ).fetchone()
            else:
                row = conn.execute(
                    f"SELECT {VERSION_COLUMNS} FROM dataset_versions "  # noqa: S608
                    "WHERE tenant = ? AND name = ? AND version = ?",
                    (tenant, name, version),
                ).fetchone()
            listed = self._files(conn, row[2]) if row is not None and files else None
        return None if row is None else _version(row, listed)

    @staticmethod
    def _files(conn: Conn, digest: str, limit: int = MAX_LISTED_FILES) -> list[DatasetFile]:
        rows = conn.execute(
            "SELECT path, size, sha256 FROM manifest_files WHERE digest = ? ORDER BY path LIMIT ?",
            (digest, limit),
        ).fetchall()
        return [DatasetFile(path=path, size=size, sha256=sha) for path, size, sha in rows]

    def manifest(self, digest: str) -> list[DatasetFile] | None:
        with self._tx() as conn:
            known = conn.execute("SELECT files FROM manifests WHERE digest = ?", (digest,))
            row = known.fetchone()
            if row is None:
                return None
            return self._files(conn, digest, limit=int(row[0]))

    def tenant_bytes(self, tenant: str) -> int:
        with self._tx() as conn:
            row = conn.execute(
                "SELECT COALESCE(SUM(size), 0) FROM dataset_versions WHERE tenant = ?", (tenant,)
            ).fetchone()
        return int(row[0])

    def description(self, digest: str) -> str | None:
        with self._tx() as conn:
            row = conn.execute(
                "SELECT description FROM manifests WHERE digest = ?", (digest,)
            ).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def unnamed(self, digests: list[str]) -> list[str]:
        with self._tx() as conn:
            return [
                digest
                for digest in digests
                if conn.execute(
                    "SELECT 1 FROM manifest_files WHERE sha256 = ? LIMIT 1", (digest,)
                ).fetchone()
                is None
            ]

    def named_blobs(self) -> set[str]:
        with self._tx() as conn:
            rows = conn.execute("SELECT DISTINCT sha256 FROM manifest_files").fetchall()
        return {row[0] for row in rows}

    def usage(self) -> DatasetUsage:
        with self._tx() as conn:
            datasets = conn.execute("SELECT COUNT(*) FROM datasets").fetchone()[0]
            versions, size = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM dataset_versions"
            ).fetchone()
            manifests = conn.execute("SELECT COUNT(*) FROM manifests").fetchone()[0]
        return DatasetUsage(int(datasets), int(versions), int(size), int(manifests))
