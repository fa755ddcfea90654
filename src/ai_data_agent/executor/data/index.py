"""Which dataset versions are copied whole onto this engine: one small SQLite file per engine.

    index = DataIndex(path)
    with index.lock(digest):                  # one filler per version, across processes
        index.get(digest) or fill_and(index.put(digest, volume, size))
    index.by_age()                            # least recently used first: what prune sees

It sits beside the environment cache's index (one per engine, under the
user's cache directory), and says only that a volume was filled completely:
the volume itself is the truth of what is there, so a version found here
whose volume is gone is filled again.
"""

from __future__ import annotations

import fcntl
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DataIndex", "FilledVolume"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS volumes (
    digest TEXT PRIMARY KEY, volume TEXT NOT NULL, size INTEGER NOT NULL,
    created REAL NOT NULL, last_used REAL NOT NULL);
"""


@dataclass(frozen=True)
class FilledVolume:
    digest: str
    volume: str
    size: int
    created: float
    last_used: float


class DataIndex:
    """Filled dataset volumes on one engine; safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        with self._db() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        yield conn

    @contextmanager
    def lock(self, digest: str) -> Iterator[None]:
        """Held while ``digest`` is looked up and filled, by one thread of one process."""
        with self._guard:
            lock = self._locks.setdefault(digest, threading.Lock())
        folder = self.path.parent / "locks"
        folder.mkdir(exist_ok=True)
        with lock, (folder / f"data-{digest[:32]}.lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def get(self, digest: str) -> FilledVolume | None:
        with self._db() as db:
            db.execute("UPDATE volumes SET last_used = ? WHERE digest = ?", (time.time(), digest))
            row = db.execute("SELECT * FROM volumes WHERE digest = ?", (digest,)).fetchone()
        return FilledVolume(*row) if row else None

    def put(self, digest: str, volume: str, size: int) -> None:
        now = time.time()
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO volumes VALUES (?, ?, ?, ?, ?)",
                (digest, volume, size, now, now),
            )

    def delete(self, digest: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM volumes WHERE digest = ?", (digest,))

    def by_age(self) -> list[FilledVolume]:
        """Least recently used first."""
        with self._db() as db:
            rows = db.execute("SELECT * FROM volumes ORDER BY last_used").fetchall()
        return [FilledVolume(*row) for row in rows]
