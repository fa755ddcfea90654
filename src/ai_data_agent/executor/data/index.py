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

import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from ai_data_agent.executor.engine_index import EngineIndex

__all__ = ["DataIndex", "FilledVolume"]

TOUCH_EVERY_S = 60.0
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


class DataIndex(EngineIndex):
    """Filled dataset volumes on one engine; safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA)

    def lock(self, digest: str) -> AbstractContextManager[None]:
        """Held while ``digest`` is looked up and filled, by one thread of one process."""
        return self.key_lock(f"data-{digest[:32]}")

    def get(self, digest: str) -> FilledVolume | None:
        now = time.time()
        with self._db() as db:  # written (synced) at most once a minute: eviction needs no more
            db.execute(
                "UPDATE volumes SET last_used = ? WHERE digest = ? AND last_used < ?",
                (now, digest, now - TOUCH_EVERY_S),
            )
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
