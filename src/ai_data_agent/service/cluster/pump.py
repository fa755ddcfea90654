"""A worker's outgoing events: buffered per topic, written and announced every 100 ms.

    pump = EventPump(db)
    pump.start()
    pump.publish(run_id, "stdout", '{"data": "hi\\n"}')   # any thread, never blocks on the database
    pump.flush(run_id)                                    # before the terminal write
    pump.stop()

Writing each chunk of output as it comes would put the database's latency on
the run's own thread; batching keeps one insert and one NOTIFY per topic and
tick. While the database cannot be reached, events wait in memory (bounded by
what the executor reports: output within the run's caps) and go out once it
answers again.
"""

from __future__ import annotations

import threading

import psycopg
from loguru import logger

from ai_data_agent.service.cluster import pg_events
from ai_data_agent.service.cluster.db import Database
from ai_data_agent.service.cluster.pg_store import CHANNEL_RUN

__all__ = ["EventPump"]

TICK_S = 0.1


class EventPump:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # one writer at a time keeps each topic's order
        self._pending: dict[str, list[tuple[str, str]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="event-pump", daemon=True)
            self._thread.start()

    def publish(self, topic: str, name: str, data: str) -> None:
        with self._lock:
            self._pending.setdefault(topic, []).append((name, data))

    def flush(self, topic: str | None = None) -> bool:
        """Write what is pending (of ``topic``, or all); False when the database failed."""
        with self._write_lock:
            with self._lock:
                if topic is None:
                    batch, self._pending = self._pending, {}
                else:
                    items = self._pending.pop(topic, [])
                    batch = {topic: items} if items else {}
            if not batch:
                return True
            try:
                with self._db.connection() as conn, conn.transaction():
                    for name, items in batch.items():
                        pg_events.append(conn, name, items)
                        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL_RUN, name))
            except psycopg.Error as exc:
                logger.debug("events wait for the database: {}", exc)
                with self._lock:  # back in front, in order
                    for name, items in batch.items():
                        self._pending[name] = items + self._pending.get(name, [])
                return False
            return True

    def _loop(self) -> None:
        while not self._stop.wait(TICK_S):
            self.flush()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()
