"""The dataset store of one node: `records.DatasetRecords` in a SQLite file of its data dir.

    store = DatasetStore(settings.data_dir / DATASETS_FILENAME)
    store.open()
    version = store.add_version("admin", "sales", NewVersion(files), quota=quota)

Every statement of `sql.SqlDatasets` runs in a ``BEGIN IMMEDIATE`` transaction
under the file's lock (`SqliteFile`), with ``synchronous=FULL``: a version
acknowledged to a client is on disk. One process uses the file, so the blob
lock is a lock of this process.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from ai_data_agent.service.datasets.sql import Conn, SqlDatasets
from ai_data_agent.service.sqlite import SqliteFile

__all__ = ["DATASETS_FILENAME", "DatasetStore"]

DATASETS_FILENAME = "datasets.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    tenant       TEXT NOT NULL,
    name         TEXT NOT NULL,
    created_at   REAL NOT NULL,
    next_version INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE IF NOT EXISTS dataset_versions (
    tenant     TEXT NOT NULL,
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    digest     TEXT NOT NULL,                 -- the manifest
    size       INTEGER NOT NULL,
    files      INTEGER NOT NULL,
    created_at REAL NOT NULL,
    source     TEXT NOT NULL,                 -- upload, session, run
    source_id  TEXT,
    PRIMARY KEY (tenant, name, version)
);
CREATE INDEX IF NOT EXISTS dataset_versions_by_digest ON dataset_versions (digest);
CREATE TABLE IF NOT EXISTS manifests (
    digest      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    files       INTEGER NOT NULL,
    description TEXT                          -- DatasetDescription JSON, once computed
);
CREATE TABLE IF NOT EXISTS manifest_files (
    digest TEXT NOT NULL,
    path   TEXT NOT NULL,
    size   INTEGER NOT NULL,
    sha256 TEXT NOT NULL,                     -- the blob
    PRIMARY KEY (digest, path)
);
CREATE INDEX IF NOT EXISTS manifest_files_by_blob ON manifest_files (sha256);
"""


class _SqliteConn:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)


class DatasetStore(SqliteFile, SqlDatasets):
    """Datasets in one SQLite file; see the module docstring."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            path, what="the dataset store", schema=SCHEMA, pragmas=("synchronous=FULL",)
        )
        self._blobs = threading.Lock()

    @contextmanager
    def _transaction(self) -> Iterator[Conn]:
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteConn(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _tx(self) -> AbstractContextManager[Conn]:
        return self._transaction()

    def blob_lock(self) -> AbstractContextManager[None]:
        return _held(self._blobs)


@contextmanager
def _held(lock: threading.Lock) -> Iterator[None]:
    with lock:
        yield
