"""Connections to the cluster's PostgreSQL: a pool for statements, one connection for LISTEN.

    db = Database(settings, role="api")
    db.open()
    with db.connection() as conn:          # autocommit; `with conn.transaction():` for more
        conn.execute("SELECT 1")
    listener = Listener(db, ["ada_run"], on_notify, on_reconnect)
    listener.start()                       # a thread; reconnects with backoff
    db.close()

The URL comes from ``database_url``; the password may come from
``database_password_file`` and TLS from ``database_sslmode`` and
``database_sslrootcert``, all handed to libpq as they are. TCP keepalives make
a peer that vanished (a partition) an error within seconds instead of a hang.
Statement failures are `psycopg.Error`. Connections are not checked at each
checkout (that would double the round trips): after the database restarts,
each idle connection fails once and is replaced, and every caller here
retries or answers 503 for that one request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from loguru import logger
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool

from ai_data_agent.errors import ConfigurationError
from ai_data_agent.settings import Settings

__all__ = ["CONNECT_TIMEOUT_S", "Database", "Listener", "conninfo"]

CONNECT_TIMEOUT_S = 5
POOL_WAIT_S = 5.0  # a request waits this long for a connection, then 503
RECONNECT_MAX_S = 5.0
# The pool's own reconnection backs off without a bound; giving up after a few
# seconds and reconnecting on the next demand gets back within a second or two
# of the database's return, well inside a lease.
POOL_RECONNECT_S = 5.0


def conninfo(settings: Settings, *, role: str) -> str:
    """The libpq connection string for ``settings`` (``role`` names the node kind).

    Raises:
        ConfigurationError: no database_url, or the password file cannot be read.
    """
    if settings.database_url is None:
        raise ConfigurationError("AI_DATA_AGENT_DATABASE_URL is not set")
    extra: dict[str, str | int] = {
        "application_name": f"ai-data-agent-{role}",
        "connect_timeout": CONNECT_TIMEOUT_S,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 3,
        "keepalives_count": 3,
    }
    if settings.database_password_file is not None:
        try:
            extra["password"] = settings.database_password_file.read_text().strip()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the database password file {settings.database_password_file}: "
                f"{exc.strerror}"
            ) from exc
    if settings.database_sslmode is not None:
        extra["sslmode"] = settings.database_sslmode
    if settings.database_sslrootcert is not None:
        extra["sslrootcert"] = str(settings.database_sslrootcert)
    return make_conninfo(settings.database_url.get_secret_value(), **extra)


class Database:
    """A pool of autocommit connections to the cluster's database."""

    def __init__(self, settings: Settings, *, role: str, max_size: int = 8) -> None:
        self.settings = settings
        self.role = role
        self.conninfo = conninfo(settings, role=role)
        self._pool = ConnectionPool(
            self.conninfo,
            min_size=1,
            max_size=max_size,
            open=False,
            kwargs={"autocommit": True},
            timeout=POOL_WAIT_S,
            reconnect_timeout=POOL_RECONNECT_S,
            name=f"ai-data-agent-{role}",
        )

    def open(self) -> None:
        """Start the pool; connections are made in the background (never raises for that)."""
        self._pool.open(wait=False)

    def wait_ready(self, timeout_s: float) -> None:
        """Block until one connection works.

        Raises:
            ConfigurationError: none within ``timeout_s``.
        """
        try:
            self._pool.wait(timeout=timeout_s)
        except Exception as exc:
            raise ConfigurationError(
                f"cannot connect to the database within {timeout_s:g} s: {exc}"
            ) from exc

    @contextmanager
    def connection(self, timeout_s: float | None = None) -> Iterator[psycopg.Connection]:
        with self._pool.connection(timeout=timeout_s) as conn:
            yield conn

    def connect(self) -> psycopg.Connection:
        """A connection of its own (autocommit), outside the pool: for LISTEN."""
        return psycopg.connect(self.conninfo, autocommit=True)

    def close(self) -> None:
        self._pool.close()


Handler = Callable[[str, str], None]


class Listener:
    """LISTEN on some channels in a thread; hand each notification to ``on_notify``.

    Payloads are ids only. ``on_reconnect`` runs after every (re)connection,
    before notifications flow, so the owner can catch up on what it may have
    missed while disconnected. Handlers run on the listener's thread and must
    be quick (they hand work to others).
    """

    def __init__(
        self,
        db: Database,
        channels: list[str],
        on_notify: Handler,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._channels = channels
        self._on_notify = on_notify
        self._on_reconnect = on_reconnect
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        self._conn: psycopg.Connection | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="pg-listener", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            try:
                with self._db.connect() as conn:
                    for channel in self._channels:
                        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self.connected.set()
                    delay = 0.1
                    if self._on_reconnect is not None:
                        self._on_reconnect()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._dispatch(note.channel, note.payload)
            except psycopg.Error as exc:
                if self.connected.is_set():
                    logger.warning("lost the database notification channel: {}", exc)
                self.connected.clear()
            except Exception as exc:  # a handler's bug must not end the listener
                logger.opt(exception=exc).error("notification handling failed: {}", exc)
                self.connected.clear()
            self._stop.wait(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)
        self.connected.clear()

    def _dispatch(self, channel: str, payload: str) -> None:
        try:
            self._on_notify(channel, payload)
        except Exception as exc:
            logger.opt(exception=exc).error("handler of {} failed: {}", channel, exc)
