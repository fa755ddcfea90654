"""The audit log's writer: entries from any producer, committed in batches by one thread.

    log = AuditLog(AuditStore(path), retention_s=90 * 86400)    # or PgAuditStore(db)
    log.start()
    log.add(entry).result()              # blocking producers: wait for the commit
    await log.record(entry)              # the event loop: the same, without a thread
    log.stop()                           # what is queued is written first

Every entry is committed before `add`'s future (and `record`) completes, so
an answer sent after it cannot outlive its entry: a ``kill -9`` loses nothing
that was answered. Entries that arrive while a batch is written go into the
next one (group commit): a burst of requests costs one sync per batch, and
each request waits for about one commit. Producers: the HTTP middleware
(`audit_http`, every ``/v1`` and ``/mcp`` request), the MCP tools in the
daemon, the command line's local tenant and token changes; later the egress
proxy's connection log. A batch that cannot be written fails every waiter of
that batch (the HTTP layer then answers 503 instead of the action's answer).
Entries older than the retention go once an hour.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future

from loguru import logger

from ai_data_agent.errors import NotReady
from ai_data_agent.service.records import AuditQuery, AuditRecords
from ai_data_agent.tenant_models import AuditEntry

__all__ = ["MAX_BATCH", "AuditLog"]

MAX_BATCH = 500  # entries in one transaction
RETENTION_EVERY_S = 3600.0


class AuditLog:
    """See the module docstring. Thread-safe; `record` is for the event loop."""

    def __init__(self, store: AuditRecords, *, retention_s: float) -> None:
        self.store = store
        self.retention_s = retention_s
        self._cond = threading.Condition()
        self._queue: list[tuple[AuditEntry, Future[None]]] = []
        self._running = False
        self._thread: threading.Thread | None = None
        self.written = 0  # entries committed since start (metrics, tests)

    def start(self) -> None:
        """Open the store and start the writer. Idempotent.

        Raises:
            ConfigurationError: the store cannot be opened.
        """
        with self._cond:
            if self._running:
                return
            self.store.open()
            self._running = True
        self._thread = threading.Thread(target=self._loop, name="audit-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, stop the writer and close the store. Idempotent."""
        with self._cond:
            if not self._running:
                return
            self._running = False
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.store.close()

    def add(self, entry: AuditEntry) -> Future[None]:
        """Queue ``entry``; the future completes once it is committed (or fails with the
        reason it was not: `NotReady` when the log is stopped or cannot be written)."""
        done: Future[None] = Future()
        with self._cond:
            if not self._running:
                done.set_exception(NotReady("the audit log is not running"))
                return done
            self._queue.append((entry, done))
            self._cond.notify()
        return done

    async def record(self, entry: AuditEntry) -> None:
        """`add` ``entry`` and wait for its commit without blocking the event loop.

        Raises:
            NotReady: the entry was not written.
        """
        await asyncio.wrap_future(self.add(entry))

    def query(self, query: AuditQuery) -> list[AuditEntry]:
        return self.store.query(query)

    def _loop(self) -> None:
        last_retention = 0.0
        while True:
            with self._cond:
                while self._running and not self._queue:
                    self._cond.wait(timeout=RETENTION_EVERY_S)
                    if not self._queue:
                        break
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                stopping = not self._running
            if batch:
                self._write(batch)
            if stopping and not batch:
                return
            if time.monotonic() - last_retention > RETENTION_EVERY_S:
                last_retention = time.monotonic()
                self._retain()

    def _write(self, batch: list[tuple[AuditEntry, Future[None]]]) -> None:
        try:
            self.store.append([entry for entry, _ in batch])
        except Exception as exc:  # every waiter hears of it; the writer goes on
            logger.error("cannot write {} audit entries: {}", len(batch), exc)
            error = NotReady(f"the audit log cannot be written: {exc}")
            for _, done in batch:
                done.set_exception(error)
            return
        self.written += len(batch)
        for _, done in batch:
            done.set_result(None)

    def _retain(self) -> None:
        try:
            gone = self.store.delete_before(time.time() - self.retention_s)
        except Exception as exc:
            logger.warning("audit retention failed (will retry): {}", exc)
            return
        if gone:
            logger.info("audit retention removed {} entries", gone)
