"""PostgreSQL as the queue: migrations, admission, claims, leases, roles and TLS."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from ai_data_agent.errors import QueueFull
from ai_data_agent.models import Artifact, Limits, RunRequest, RunResult, RunStatus
from ai_data_agent.service.cluster import pg_events, schema
from ai_data_agent.service.cluster.db import Database
from ai_data_agent.service.cluster.pg_sessions import PgSessionCalls, PgSessionRegistry
from ai_data_agent.service.cluster.pg_store import PgRunStore
from ai_data_agent.service.cluster.pg_workers import WorkerRegistry
from ai_data_agent.service.records import Outcome
from ai_data_agent.session_models import SessionInfo, SessionStatus
from ai_data_agent.settings import Settings

from .postgres import Postgres

pytestmark = pytest.mark.cluster
LIMITS = Limits(timeout_s=5, memory_mb=256, cpus=1, network=False)


def connect(settings: Settings) -> psycopg.Connection:
    return Database(settings, role="test").connect()


# -- migrations -----------------------------------------------------------------------
def test_migrations_from_an_empty_database(cluster_settings: Callable[..., Settings]) -> None:
    with connect(cluster_settings("api")) as conn:
        assert schema.version(conn) == 0
        assert schema.migrate(conn) == [n for n, _ in schema.MIGRATIONS]
        assert schema.version(conn) == schema.LATEST
        assert schema.migrate(conn) == []  # idempotent


def test_migration_from_the_previous_version_keeps_the_data(
    cluster_settings: Callable[..., Settings],
) -> None:
    settings = cluster_settings("api")
    with connect(settings) as conn:
        assert schema.migrate(conn, target=schema.LATEST - 1) == [
            n for n, _ in schema.MIGRATIONS[:-1]
        ]
    old = PgRunStore(Database(settings, role="api"), migrate=False)
    with pytest.raises(Exception, match="schema is at version"):
        old.open()  # a node of this version refuses an older schema it may not migrate
    old.close()
    with connect(settings) as conn:
        conn.execute(
            "INSERT INTO runs (id, status, created_at, request) VALUES ('old', 'queued', 1, %s)",
            (RunRequest(code="print(1)").model_dump_json(),),
        )
    store = PgRunStore(Database(settings, role="api"), migrate=True)
    store.open()
    try:
        record = store.get("old")
        assert record is not None and record.status == "queued"
        with store.db.connection() as conn:
            assert schema.version(conn) == schema.LATEST
    finally:
        store.close()


def test_nodes_starting_together_migrate_once(cluster_settings: Callable[..., Settings]) -> None:
    settings = cluster_settings("api")
    applied: list[list[int]] = []

    def migrate() -> None:
        with connect(settings) as conn:
            applied.append(schema.migrate(conn))

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(applied) == [[], [], [], [n for n, _ in schema.MIGRATIONS]]


# -- admission and claims -------------------------------------------------------------------
def test_admission_is_bounded_by_live_slots_plus_the_queue_wherever_it_lands(
    open_store: Callable[..., PgRunStore],
) -> None:
    one, two = open_store(), open_store()
    WorkerRegistry(one.db).register("w1", name="w1", slots=2)
    admitted = 0
    for number in range(5):
        store = (one, two)[number % 2]
        store.admit(f"r{number}", RunRequest(code="x"), LIMITS, max_queued=3, lease_s=30)
        admitted += 1
    with pytest.raises(QueueFull) as caught:
        two.admit("r5", RunRequest(code="x"), LIMITS, max_queued=3, lease_s=30)
    assert caught.value.retry_after and admitted == 5
    assert one.get("r5") is None  # nothing recorded
    one.finish("r0", Outcome(RunStatus.CANCELLED))
    two.admit("r5", RunRequest(code="x"), LIMITS, max_queued=3, lease_s=30)


def test_concurrent_claims_take_each_run_exactly_once(
    open_store: Callable[..., PgRunStore],
) -> None:
    api = open_store()
    workers = [open_store("worker") for _ in range(3)]
    registry = WorkerRegistry(api.db)
    for number in range(3):
        registry.register(f"w{number}", name=f"w{number}", slots=1)
    for number in range(60):
        api.admit(f"r{number}", RunRequest(code="x"), LIMITS, max_queued=100, lease_s=30)
    taken: dict[str, list[str]] = {f"w{n}": [] for n in range(3)}

    def drain(number: int) -> None:
        while (claimed := workers[number].claim(f"w{number}")) is not None:
            taken[f"w{number}"].append(claimed[0])
            assert claimed[2] == LIMITS

    threads = [threading.Thread(target=drain, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [run for runs in taken.values() for run in runs]
    assert sorted(every) == sorted(f"r{n}" for n in range(60))  # each once, none lost


def test_a_worker_whose_lease_lapsed_claims_nothing_and_its_late_write_loses(
    open_store: Callable[..., PgRunStore],
) -> None:
    api, worker = open_store(), open_store("worker")
    registry = WorkerRegistry(api.db)
    registry.register("w1", name="droplet-1", slots=1)
    api.admit("r1", RunRequest(code="x"), LIMITS, max_queued=5, lease_s=30)
    assert worker.claim("w1") is not None
    with api.db.connection() as conn:
        conn.execute("UPDATE workers SET heartbeat_at = now() - interval '10 s'")
    expired = registry.expire(lease_s=0.5)  # the database is up for longer than that
    assert expired.workers == ["w1"] and expired.runs == ["r1"]
    record = api.get("r1")
    assert record is not None and record.status == "interrupted"
    assert (
        record.error is not None and "droplet-1" in record.error and "not run again" in record.error
    )
    result = RunResult(id="r1", status=RunStatus.SUCCEEDED)
    assert not worker.finish_owned("r1", "w1", Outcome(RunStatus.SUCCEEDED, result))
    assert not WorkerRegistry(worker.db).heartbeat("w1")  # it learns it was declared lost
    api.admit("r2", RunRequest(code="x"), LIMITS, max_queued=5, lease_s=30)
    assert worker.claim("w1") is None
    assert worker.stale_for("w1", ["r1"]) == ["r1"]


def test_a_database_restarted_less_than_a_lease_ago_expires_nobody(
    open_store: Callable[..., PgRunStore],
) -> None:
    api = open_store()
    registry = WorkerRegistry(api.db)
    registry.register("w1", name="w1", slots=1)
    with api.db.connection() as conn:
        conn.execute("UPDATE workers SET heartbeat_at = now() - interval '1 hour'")
        uptime = conn.execute("SELECT EXTRACT(EPOCH FROM now() - pg_postmaster_start_time())")
        seconds = float(uptime.fetchone()[0])  # type: ignore[index]
    assert registry.expire(lease_s=seconds + 3600).workers == []


def test_cancel_of_a_queued_run_is_final_and_of_a_running_one_is_a_flag(
    open_store: Callable[..., PgRunStore],
) -> None:
    api, worker = open_store(), open_store("worker")
    WorkerRegistry(api.db).register("w1", name="w1", slots=1)
    api.admit("r1", RunRequest(code="x"), LIMITS, max_queued=5, lease_s=30)
    api.admit("r2", RunRequest(code="x"), LIMITS, max_queued=5, lease_s=30)
    assert worker.claim("w1") is not None  # r1
    assert api.request_cancel("r2", "by request") == "cancelled"
    assert api.request_cancel("r1", "by request") == "signalled"
    assert worker.stale_for("w1", ["r1"]) == ["r1"]
    assert api.request_cancel("r2", "again") is None


# -- events and artifacts -------------------------------------------------------------
def test_artifacts_are_stored_in_chunks_with_the_terminal_write_and_go_with_the_record(
    open_store: Callable[..., PgRunStore], tmp_path: Path
) -> None:
    api, worker = open_store(), open_store("worker")
    WorkerRegistry(api.db).register("w1", name="w1", slots=1)
    api.admit("r1", RunRequest(code="x"), LIMITS, max_queued=5, lease_s=30)
    worker.claim("w1")
    big = bytes(range(256)) * (pg_events.CHUNK_BYTES // 256 * 2 + 3)
    (tmp_path / "big.bin").write_bytes(big)
    (tmp_path / "empty.txt").write_bytes(b"")
    artifacts = [
        Artifact(path="big.bin", size=len(big), sha256="-", media_type="application/octet-stream"),
        Artifact(path="empty.txt", size=0, sha256="-", media_type="text/plain"),
    ]
    result = RunResult(id="r1", status=RunStatus.SUCCEEDED, artifacts=artifacts)
    assert worker.finish_owned(
        "r1", "w1", Outcome(RunStatus.SUCCEEDED, result), artifacts_dir=tmp_path
    )
    chunks = pg_events.artifact_chunks(api.db, "r1", "big.bin")
    assert chunks is not None and b"".join(chunks) == big
    empty = pg_events.artifact_chunks(api.db, "r1", "empty.txt")
    assert empty is not None and b"".join(empty) == b""
    assert pg_events.artifact_chunks(api.db, "r1", "nope") is None
    assert api.apply_retention(max_age_s=0.0, max_runs=1000) == 1
    assert pg_events.artifact_chunks(api.db, "r1", "big.bin") is None
    assert pg_events.after(api.db, "r1", 0) == []


# -- roles and TLS --------------------------------------------------------------------
def test_the_worker_role_cannot_create_runs_or_delete(
    open_store: Callable[..., PgRunStore],
) -> None:
    api, worker = open_store(), open_store("worker")
    with worker.db.connection() as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO runs (id, status, created_at, request) VALUES ('x', 'queued', 1, '{}')"
            )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # nor rewrite a request
            conn.execute("UPDATE runs SET request = '{}'")
        for table in ("runs", "events", "artifacts", "workers", "sessions"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"DELETE FROM {table}")  # type: ignore[arg-type]
    assert api.get("x") is None


def test_passwords_are_checked_and_tls_is_verified(
    pg: Postgres, database: str, cluster_settings: Callable[..., Settings]
) -> None:
    wrong = cluster_settings("api", database_url=pg.url("api", database).replace("secret", "nope"))
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(wrong).close()
    with connect(cluster_settings("worker")) as conn:
        row = conn.execute(
            "SELECT ssl, current_user FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) "
            "WHERE pid = pg_backend_pid()"
        ).fetchone()
    assert row == (True, "ai_data_agent_worker")
    untrusted = cluster_settings(
        "api", database_sslrootcert=Path("/etc/ssl/certs/ca-certificates.crt")
    )
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        connect(untrusted).close()


def test_the_password_may_come_from_a_file(
    pg: Postgres, database: str, cluster_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text("worker-secret-for-tests\n")
    settings = cluster_settings(
        "worker",
        database_url=pg.url("worker", database, password=False),
        database_password_file=secret,
    )
    with connect(settings) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("ai_data_agent_worker",)


# -- the sessions' registry ---------------------------------------------------------------
def test_the_registry_never_revives_a_session_and_api_nodes_prune_ended_ones(
    open_store: Callable[..., PgRunStore],
) -> None:
    api, worker = open_store(), open_store("worker")
    mine = PgSessionRegistry(worker.db, node="w1")
    now = datetime.now(UTC)
    for number in range(4):
        info = SessionInfo(
            id=f"s{number}", status=SessionStatus.IDLE, created_at=now, last_activity_at=now
        )
        mine.put(info)
    assert mine.lose_live("gone") == ["s0", "s1", "s2", "s3"]
    mine.put(SessionInfo(id="s0", status=SessionStatus.IDLE, created_at=now, last_activity_at=now))
    found = mine.get("s0")
    assert found is not None and found.status == SessionStatus.LOST  # not revived
    calls = PgSessionCalls(api.db)
    call = calls.submit("files", "s0", "w1")
    assert calls.failed(call, "session_gone", "lost")
    assert mine.delete_before(0) == 0  # a worker does not prune
    pruning = PgSessionRegistry(api.db, node="api", prunes=True)
    assert pruning.delete_before(2) == 2
    assert [s.id for s in pruning.recent()] == ["s3", "s2"]
    assert calls.get(call) is None  # its calls went with it
