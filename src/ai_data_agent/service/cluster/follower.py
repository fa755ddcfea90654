"""An API node's live view of runs that execute on workers: a `RunHandle` per followed run.

    follower = Follower(settings, db, store)
    follower.start()                          # LISTEN ada_run; a thread that syncs handles
    handle = follower.follow(run_id)          # None when the run is not active
    await wait_done(handle); handle.result    # as on one node
    async for name, data in handle.events.follow(): ...

A handle is fed from the database: the run's events in order (``seq``), then,
once the record is terminal, a ``result`` event with the `RunResult` and its
completion, whoever wrote that end (the worker, a cancel, the lease sweep).
NOTIFY on `CHANNEL_RUN` (the run id) says when to look; after a reconnection,
and every ``queue_poll_s`` as a safety net, every followed run is looked at.
So SSE and ``wait=true`` answer from any API node for a run on any worker.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import psycopg
from loguru import logger

from ai_data_agent.api_models import ACTIVE_RUN_STATUSES
from ai_data_agent.models import RunResult, RunStatus
from ai_data_agent.service.cluster import pg_events
from ai_data_agent.service.cluster.db import Database
from ai_data_agent.service.cluster.pg_store import PgRunStore
from ai_data_agent.service.handles import RunHandle
from ai_data_agent.service.records import result_of
from ai_data_agent.settings import Settings

__all__ = ["Follower"]


@dataclass
class _Followed:
    handle: RunHandle
    last_seq: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Follower:
    def __init__(self, settings: Settings, db: Database, store: PgRunStore) -> None:
        self._settings = settings
        self._db = db
        self._store = store
        self._lock = threading.Lock()
        self._followed: dict[str, _Followed] = {}
        self._due: set[str] = set()
        self._all_due = False
        self._wake = threading.Condition(self._lock)
        self._stop = False
        self._thread: threading.Thread | None = None

    @property
    def following(self) -> int:
        """Runs followed now: not ended yet, as far as this node knows."""
        with self._lock:
            return len(self._followed)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="run-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stop = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def follow(self, run_id: str) -> RunHandle | None:
        """The handle of ``run_id`` while it is active (synced now), else None.

        Raises:
            psycopg.Error: the database cannot be reached.
        """
        with self._lock:
            followed = self._followed.get(run_id)
        if followed is None:
            record = self._store.get(run_id)
            if record is None or record.status not in ACTIVE_RUN_STATUSES:
                return None
            fresh = _Followed(RunHandle(run_id))
            with self._lock:
                followed = self._followed.setdefault(run_id, fresh)
        self._sync(run_id, followed)
        return followed.handle

    def track(self, run_id: str) -> RunHandle:
        """Follow a run this node has just admitted, without a database call now
        (its follower thread catches up at once), so that admission cannot fail
        after its commit."""
        with self._lock:
            followed = self._followed.setdefault(run_id, _Followed(RunHandle(run_id)))
            self._due.add(run_id)
            self._wake.notify_all()
        return followed.handle

    def notify(self, run_id: str) -> None:
        """A NOTIFY for ``run_id``: look at it soon (on the follower's thread)."""
        with self._lock:
            if run_id in self._followed:
                self._due.add(run_id)
                self._wake.notify_all()

    def resync(self) -> None:
        """Look at every followed run (after a reconnection: notifications may be lost)."""
        with self._lock:
            self._all_due = True
            self._wake.notify_all()

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._due and not self._all_due and not self._stop:
                    if not self._wake.wait(self._settings.queue_poll_s):
                        self._all_due = True
                if self._stop:
                    return
                due = set(self._followed) if self._all_due else self._due
                self._due, self._all_due = set(), False
                work = [(rid, self._followed[rid]) for rid in due if rid in self._followed]
            for run_id, followed in work:
                try:
                    self._sync(run_id, followed)
                except psycopg.Error as exc:
                    logger.debug("cannot follow run {} now: {}", run_id, exc)
                    self.resync_later()

    def resync_later(self) -> None:
        with self._lock:
            self._all_due = True

    def _sync(self, run_id: str, followed: _Followed) -> None:
        """Publish the run's new events; finish the handle once the record is terminal."""
        handle = followed.handle
        with followed.lock:
            if handle.done:
                return
            # The status first: events written before its terminal write are then all read.
            active = self._store.is_active(run_id)
            while True:
                page = pg_events.after(self._db, run_id, followed.last_seq)
                for seq, name, data in page:
                    handle.events.publish_json(name, data)
                    followed.last_seq = seq
                if len(page) < pg_events.EVENTS_PAGE:
                    break
            if active:
                return
            record = self._store.get(run_id)
            final = (
                result_of(record)
                if record is not None
                else RunResult(id=run_id, status=RunStatus.ERROR, error="the record is gone")
            )
            handle.events.publish("result", final.model_dump(mode="json"))
            handle.events.close()
            handle.set_done(final)
        with self._lock:
            self._followed.pop(run_id, None)
