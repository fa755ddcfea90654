"""One SQLite file of the daemon behind one lock: the base of its run and session stores.

    class RunStore(SqliteFile):
        def insert(self, ...):
            with self._lock:
                self._db().execute(...)

`open` creates the data directory, the file and its schema (idempotent), adds
the ``columns`` a file of an earlier version lacks, then runs ``after`` (indexes
over them); every
statement then runs on one autocommit connection in WAL mode, serialised by
``_lock``, from worker threads only. `close` is idempotent; a store used
after it raises `sqlite3.ProgrammingError`.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from ai_data_agent.errors import ConfigurationError

__all__ = ["SqliteFile"]


class SqliteFile:
    """See the module docstring. ``what`` names the store in errors ("the run store")."""

    def __init__(
        self,
        path: Path,
        *,
        what: str,
        schema: str,
        pragmas: tuple[str, ...] = (),
        columns: tuple[tuple[str, str, str], ...] = (),
        after: str = "",
    ) -> None:
        self.path = path
        self._what = what
        self._schema = schema
        self._columns = columns  # (table, column, its definition) added to older files
        self._after = after
        self._pragmas = ("journal_mode=WAL", *pragmas)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        """Create the data dir, the database and its schema. Idempotent.

        Raises:
            ConfigurationError: the directory or database cannot be created or written.
        """
        with self._lock:
            if self._conn is not None:
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=30
                )
            except (OSError, sqlite3.Error) as exc:
                raise ConfigurationError(
                    f"cannot open {self._what} {self.path}: {exc}; check "
                    "AI_DATA_AGENT_DATA_DIR and that this user may write there"
                ) from exc
            try:
                for pragma in self._pragmas:
                    conn.execute(f"PRAGMA {pragma}")
                conn.executescript(self._schema)
                _add_columns(conn, self._columns)
                conn.executescript(self._after)
            except sqlite3.Error as exc:
                conn.close()
                raise ConfigurationError(
                    f"cannot initialise {self._what} {self.path}: {exc}"
                ) from exc
            self._conn = conn

    def close(self) -> None:
        """Close the database. Idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _db(self) -> sqlite3.Connection:
        """The connection (lock held by the caller)."""
        if self._conn is None:
            raise sqlite3.ProgrammingError(f"{self._what} is not open")
        return self._conn


def _add_columns(conn: sqlite3.Connection, columns: tuple[tuple[str, str, str], ...]) -> None:
    """Add each column its table lacks (a file written by an earlier version), in one
    transaction. Names and definitions are the stores' constants, never input."""
    missing = [
        (table, column, definition)
        for table, column, definition in columns
        if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    ]
    if not missing:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, column, definition in missing:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
