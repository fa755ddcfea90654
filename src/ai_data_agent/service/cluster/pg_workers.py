"""The workers' registry and their leases, kept in the database's own clock.

    registry = WorkerRegistry(db)
    registry.register(worker_id, name="droplet-2", slots=2)
    registry.heartbeat(worker_id)        # False: the cluster has declared it lost
    registry.live(lease_s=30)            # how many renewed their lease within it
    expired = registry.expire(lease_s=30) # any node, on a timer: runs interrupted, sessions lost
    registry.stop(worker_id)             # a clean exit

A worker renews its lease every ``heartbeat_interval_s``. One silent for more
than ``lease_timeout_s`` (kill -9, power loss, a partition) is marked ``lost``
by whichever node sweeps first; in the same transaction its ``running`` runs
become ``interrupted`` with the reason (never re-queued: a run is executed at
most once), its live sessions ``lost``, and their pending calls fail. Only
``now()`` of the database is compared with heartbeats, so clocks of the nodes
never matter. A database that restarted less than a lease ago expires nobody:
no worker could renew while it was down.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

from ai_data_agent import __version__
from ai_data_agent.service.cluster.db import Database
from ai_data_agent.service.cluster.pg_store import CHANNEL_RUN

__all__ = ["CHANNEL_CALL", "Expired", "WorkerEntry", "WorkerRegistry"]

CHANNEL_CALL = "ada_call"  # a session call changed (payload: its id): the waiting API node looks
REASON_LOST = (
    "the worker {} stopped renewing its lease for more than {:g} s (crashed, powered off or "
    "cut off) while the run was in flight; it is not run again"
)
REASON_SESSION_LOST = "the worker {} holding the session stopped renewing its lease"
REASON_SESSION_PAUSED = REASON_SESSION_LOST + "; the next call resumes it from its last checkpoint"


@dataclass(frozen=True)
class Expired:
    workers: list[str]
    runs: list[str]
    sessions: list[str]


@dataclass(frozen=True)
class WorkerEntry:
    name: str
    state: str  # live, stopped, lost
    slots: int
    running: int
    heartbeat_age_s: float
    version: str


class WorkerRegistry:
    def __init__(self, db: Database) -> None:
        self.db = db

    def listing(self) -> list[WorkerEntry]:
        """Every worker still listed, live ones first, with the runs each is running."""
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT w.name, w.state, w.slots, (SELECT count(*) FROM runs r "
                "WHERE r.worker = w.id AND r.status = 'running'), "
                "extract(epoch FROM now() - w.heartbeat_at)::float8, w.version "
                "FROM workers w ORDER BY w.state <> 'live', w.name"
            ).fetchall()
        return [WorkerEntry(n, s, slots, run, age, v) for n, s, slots, run, age, v in rows]

    def register(self, worker_id: str, *, name: str, slots: int) -> None:
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO workers (id, name, slots, state, version) "
                "VALUES (%s, %s, %s, 'live', %s) "
                "ON CONFLICT (id) DO UPDATE SET state = 'live', heartbeat_at = now()",
                (worker_id, name, slots, __version__),
            )

    def heartbeat(self, worker_id: str) -> bool:
        """Renew the lease; False when the worker is no longer ``live`` (declared lost)."""
        with self.db.connection() as conn:
            cursor = conn.execute(
                "UPDATE workers SET heartbeat_at = now() WHERE id = %s AND state = 'live'",
                (worker_id,),
            )
        return cursor.rowcount == 1

    def live(self, *, lease_s: float) -> int:
        """Workers ``live`` whose lease was renewed within ``lease_s``: those that can execute."""
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT count(*) FROM workers WHERE state = 'live' "
                "AND heartbeat_at >= now() - make_interval(secs => %s)",
                (lease_s,),
            ).fetchone()
        return int(row[0]) if row else 0

    def stop(self, worker_id: str) -> None:
        with self.db.connection() as conn:
            conn.execute("UPDATE workers SET state = 'stopped' WHERE id = %s", (worker_id,))

    def prune(self, *, older_than_s: float) -> int:
        """Forget workers gone (stopped or lost) for longer than ``older_than_s``."""
        with self.db.connection() as conn:
            cursor = conn.execute(
                "DELETE FROM workers WHERE state <> 'live' "
                "AND heartbeat_at < now() - make_interval(secs => %s)",
                (older_than_s,),
            )
        return cursor.rowcount

    def expire(self, *, lease_s: float, now: float | None = None) -> Expired:
        """Declare lost the workers silent for more than ``lease_s``; settle what they held."""
        finished = time.time() if now is None else now
        with self.db.connection() as conn, conn.transaction():
            lost = conn.execute(
                "UPDATE workers SET state = 'lost' WHERE state = 'live' "
                "AND heartbeat_at < now() - make_interval(secs => %s) "
                "AND now() - pg_postmaster_start_time() > make_interval(secs => %s) "
                "RETURNING id",
                (lease_s, lease_s),
            ).fetchall()
            runs = conn.execute(
                "UPDATE runs r SET status = 'interrupted', finished_at = %s, "
                "error = format(%s, w.name) FROM workers w "
                "WHERE r.status = 'running' AND r.worker = w.id AND w.state <> 'live' "
                "RETURNING r.id",
                (finished, REASON_LOST.replace("{}", "%s", 1).format(lease_s)),
            ).fetchall()
            for (run_id,) in runs:
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL_RUN, run_id))
            sessions = self._lose_sessions(conn)
        return Expired([r[0] for r in lost], [r[0] for r in runs], sessions)

    @staticmethod
    def _lose_sessions(conn: psycopg.Connection) -> list[str]:
        # A session with a checkpoint is paused instead, pinned to no worker: its next call
        # resumes it on any (the pin moves).
        conn.execute(
            "UPDATE sessions s SET status = 'paused', node = '', info = (s.info::jsonb || "
            "jsonb_build_object('status', 'paused', 'error', format(%s, w.name), "
            "'idle_expires_at', NULL))::text FROM workers w WHERE s.node = w.id "
            "AND w.state <> 'live' AND s.status IN ('starting', 'idle', 'busy') "
            "AND EXISTS (SELECT 1 FROM checkpoints c WHERE c.session_id = s.id)",
            (REASON_SESSION_PAUSED.replace("{}", "%s"),),
        )
        rows = conn.execute(
            "UPDATE sessions s SET status = 'lost', info = (s.info::jsonb || jsonb_build_object("
            "'status', 'lost', 'error', format(%s, w.name), 'idle_expires_at', NULL))::text "
            "FROM workers w WHERE s.node = w.id AND w.state <> 'live' "
            "AND s.status IN ('starting', 'idle', 'busy') RETURNING s.id",
            (REASON_SESSION_LOST.replace("{}", "%s"),),
        ).fetchall()
        calls = conn.execute(
            "UPDATE session_calls c SET status = 'failed', error_code = 'session_gone', "
            "error = 'the session was lost with its worker' FROM workers w "
            "WHERE c.worker = w.id AND w.state <> 'live' AND c.status IN ('queued', 'running') "
            "RETURNING c.id",
        ).fetchall()
        for (call_id,) in calls:
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL_CALL, str(call_id)))
        return [r[0] for r in rows]
