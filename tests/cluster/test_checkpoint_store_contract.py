"""The same checkpoint-store tests against SQLite and PostgreSQL: one contract, two stores."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from ai_data_agent.service.checkpoint_records import (
    CheckpointRecord,
    CheckpointRecords,
    FileRecord,
    Signer,
)
from ai_data_agent.service.checkpoint_store import CHECKPOINTS_FILENAME, CheckpointStore
from ai_data_agent.service.cluster.db import Database
from ai_data_agent.service.cluster.pg_checkpoints import PgCheckpointStore, cluster_key
from ai_data_agent.service.cluster.pg_store import PgRunStore
from ai_data_agent.session_models import SessionRequest
from ai_data_agent.settings import Settings

pytestmark = pytest.mark.cluster


@pytest.fixture(params=["sqlite", "postgres"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, cluster_settings: Callable[..., Settings]
) -> Iterator[CheckpointRecords]:
    if request.param == "sqlite":
        records: CheckpointRecords = CheckpointStore(tmp_path / CHECKPOINTS_FILENAME)
        records.open()
        yield records
        records.close()
        return
    api = PgRunStore(Database(cluster_settings("api"), role="api"), migrate=True)
    api.open()  # the schema, which an API node migrates
    yield PgCheckpointStore(api.db, prunes=True)
    api.close()


def record(
    session_id: str, seq: int, tenant: str = "a", files: dict[str, int] | None = None
) -> CheckpointRecord:
    return CheckpointRecord(
        session_id=session_id,
        tenant=tenant,
        seq=seq,
        created_at=1_900_000_000.0 + seq,
        execution_count=seq,
        generation=1,
        namespace_digest=f"{seq:064x}",
        namespace_size=100 * seq,
        files=[
            FileRecord(path=p, digest=f"f{size:063x}", size=size)
            for p, size in (files or {}).items()
        ],
        request=SessionRequest(),
    )


def test_records_read_back_newest_first_and_only_by_their_tenant(store: CheckpointRecords) -> None:
    assert store.next_seq("s1") == 1
    for seq in (1, 2, 3):
        store.add(record("s1", seq))
    store.add(record("s2", 1, tenant="b"))
    assert [r.seq for r in store.history("s1", tenant="a")] == [3, 2, 1]
    assert store.latest("s1", tenant=None) == record("s1", 3)
    assert store.get("s1", 2, tenant="a") == record("s1", 2)
    assert store.get("s1", 2, tenant="b") is None  # another tenant's: as if absent
    assert store.latest("s2", tenant="a") is None and store.history("s2", tenant="a") == []
    assert store.next_seq("s1") == 4
    assert store.with_checkpoints(["s1", "s2", "s3"]) == {"s1", "s2"}
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.UniqueViolation)):
        store.add(record("s1", 3))


def test_pruning_keeps_the_newest_and_usage_counts_each_blob_once(store: CheckpointRecords) -> None:
    data = {"data/a.csv": 1000, "data/b.csv": 10}
    for seq in (1, 2, 3):
        store.add(record("s1", seq, files=data))
    store.add(record("s2", 1, tenant="b", files={"x": 1000}))
    assert store.usage("a") == 100 + 200 + 300 + 1000 + 10  # the files' blobs are shared
    assert store.prune("s1", keep=2) == 1
    assert [r.seq for r in store.history("s1", tenant=None)] == [3, 2]
    assert store.usage("a") == 200 + 300 + 1010
    assert store.digests() == {
        f"{2:064x}",
        f"{3:064x}",
        f"{1:064x}",
        f"f{1000:063x}",
        f"f{10:063x}",
    }
    assert store.delete_session("s1") == 2
    assert store.usage("a") == 0 and store.next_seq("s1") == 1


def test_one_key_signs_for_every_node(cluster_settings: Callable[..., Settings]) -> None:
    api = PgRunStore(Database(cluster_settings("api"), role="api"), migrate=True)
    api.open()
    try:
        key = cluster_key(api.db, create=True)
        assert cluster_key(api.db) == key and len(key) == 32
        signed = Signer(lambda: key).sign(record("s1", 1))
        Signer(lambda: cluster_key(api.db)).check(signed)
    finally:
        api.close()
