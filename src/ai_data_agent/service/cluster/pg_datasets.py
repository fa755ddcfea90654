"""The cluster's dataset store: `records.DatasetRecords` in the shared PostgreSQL.

    store = PgDatasetStore(db)               # the node opens the database (and migrates it)
    version = store.add_version("admin", "sales", NewVersion(files), quota=quota)
    with store.blob_lock(): ...              # one holder across every node

The statements are `sql.SqlDatasets`', each call one transaction on a pooled
connection. A tenant's additions are serialised by a transaction advisory lock
on its name, so two API nodes adding versions at once never pass its quota
together; the blob lock is a session advisory lock held on a connection of
its own for as long as the caller needs it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg

from ai_data_agent.service.cluster.db import Database
from ai_data_agent.service.datasets.sql import Conn, Rows, SqlDatasets

__all__ = ["BLOB_LOCK", "TENANT_LOCK_SPACE", "PgDatasetStore"]

BLOB_LOCK = 0x61646133  # pg_advisory_lock key of blob records and deletions ("ada3")
TENANT_LOCK_SPACE = 0x61646134  # first key of a tenant's pg_advisory_xact_lock ("ada4")


class _PgConn:
    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    @staticmethod
    def _sql(sql: str) -> str:
        # The statements are literals of `sql`; only their placeholders change.
        return sql.replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        return self._conn.execute(self._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self._conn.cursor() as cursor:
                cursor.executemany(self._sql(sql), [tuple(row) for row in rows])


class PgDatasetStore(SqlDatasets):
    """Datasets in PostgreSQL; see the module docstring."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def open(self) -> None:
        """The node opens the database and migrates it; nothing to do here."""

    def close(self) -> None:
        """The node closes the database."""

    @contextmanager
    def _transaction(self) -> Iterator[Conn]:
        with self.db.connection() as conn, conn.transaction():
            yield _PgConn(conn)

    def _tx(self) -> AbstractContextManager[Conn]:
        return self._transaction()

    def _lock_tenant(self, conn: Conn, tenant: str) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(?, hashtext(?))", (TENANT_LOCK_SPACE, tenant))

    @contextmanager
    def _blob_lock(self) -> Iterator[None]:
        with self.db.connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (BLOB_LOCK,))
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (BLOB_LOCK,))

    def blob_lock(self) -> AbstractContextManager[None]:
        return self._blob_lock()
