"""A small SQLite file per engine, shared by every controller of one user on that engine.

    class EnvIndex(EngineIndex): ...          # the environment cache's index
    class DataIndex(EngineIndex): ...         # the dataset copies' index
    with index.key_lock("pandas-key"): ...    # one holder across threads and processes

Each thread has its own connection (WAL mode, autocommit); `key_lock` holds a
lock of this process and a file lock beside the database, so concurrent
controllers do one thing (an install, a copy) once.
"""

from __future__ import annotations

import fcntl
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["EngineIndex"]


class EngineIndex:
    """A SQLite file with ``schema``, safe across threads and processes."""

    def __init__(self, path: Path, schema: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        with self._db() as db:
            db.executescript(schema)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        yield conn

    @contextmanager
    def key_lock(self, name: str) -> Iterator[None]:
        """Held by one thread of one process at a time (``name``: a file name's stem)."""
        with self._locks_guard:
            lock = self._locks.setdefault(name, threading.Lock())
        lock_dir = self.path.parent / "locks"
        lock_dir.mkdir(exist_ok=True)
        with lock, (lock_dir / f"{name}.lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
