"""The same dataset-store tests against SQLite and PostgreSQL: one contract, two stores."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ai_data_agent.dataset_models import DatasetFile
from ai_data_agent.errors import RequestTooLarge
from ai_data_agent.service.cluster.db import Database
from ai_data_agent.service.cluster.pg_datasets import PgDatasetStore
from ai_data_agent.service.cluster.pg_store import PgRunStore
from ai_data_agent.service.datasets.records import DatasetRecords, NewVersion, StorageQuota
from ai_data_agent.service.datasets.sqlite_store import DATASETS_FILENAME, DatasetStore
from ai_data_agent.settings import Settings

pytestmark = pytest.mark.cluster
QUOTA = StorageQuota(10_000)


@pytest.fixture(params=["sqlite", "postgres"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, cluster_settings: Callable[..., Settings]
) -> Iterator[DatasetRecords]:
    made: DatasetRecords
    api: PgRunStore | None = None
    if request.param == "postgres":
        api = PgRunStore(Database(cluster_settings("api"), role="api"), migrate=True)
        api.open()  # the schema, which an API node migrates
        made = PgDatasetStore(api.db)
    else:
        made = DatasetStore(tmp_path / DATASETS_FILENAME)
    made.open()
    yield made
    made.close()
    if api is not None:
        api.close()


def files(*contents: bytes) -> list[DatasetFile]:
    return [
        DatasetFile(path=f"f{i}.csv", size=len(data), sha256=hashlib.sha256(data).hexdigest())
        for i, data in enumerate(contents)
    ]


def test_versions_are_numbered_and_read_back_with_their_manifest(store: DatasetRecords) -> None:
    first = store.add_version("a", "sales", NewVersion(files(b"1", b"22")), quota=QUOTA)
    second = store.add_version("a", "sales", NewVersion(files(b"333"), "run", "r1"), quota=QUOTA)
    assert (first.version, second.version, second.source, second.source_id) == (1, 2, "run", "r1")
    assert store.version("a", "sales", None) == second
    listed = store.version("a", "sales", 1, files=True)
    assert listed is not None and [f.path for f in listed.files or []] == ["f0.csv", "f1.csv"]
    assert store.manifest(first.digest) == listed.files
    info = store.dataset("a", "sales")
    assert info is not None and [v.version for v in info.versions] == [2, 1] and info.size == 6
    (summary,) = store.datasets("a")
    assert (summary.latest, summary.versions, summary.size) == (2, 2, 6)
    assert store.tenant_bytes("a") == 6 and store.datasets("b") == []
    assert store.dataset("b", "sales") is None and store.version("b", "sales", 1) is None
    store.add_version("b", "other", NewVersion(files(b"4")), quota=QUOTA)
    assert [(s.tenant, s.name) for s in store.datasets(None)] == [("a", "sales"), ("b", "other")]


def test_the_quota_holds_for_concurrent_additions(store: DatasetRecords) -> None:
    outcomes: list[str] = []

    def add(i: int) -> None:
        try:
            store.add_version(
                "a", f"d{i}", NewVersion(files(bytes(3000) + bytes([i]))), quota=QUOTA
            )
            outcomes.append("ok")
        except RequestTooLarge as exc:
            assert "storage quota" in str(exc)
            outcomes.append("refused")

    threads = [threading.Thread(target=add, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok"] * 3 + ["refused"] * 3
    assert store.tenant_bytes("a") == 3 * 3001


def test_deletes_and_what_the_collection_may_take(store: DatasetRecords) -> None:
    kept = store.add_version("a", "d", NewVersion(files(b"keep", b"both")), quota=QUOTA)
    gone = store.add_version("a", "e", NewVersion(files(b"gone", b"both")), quota=QUOTA)
    store.set_description(gone.digest, '{"files": []}')
    assert store.description(gone.digest) == '{"files": []}'
    assert [v.version for v in store.delete("a", "e", 1)] == [1]
    assert store.dataset("a", "e") is None  # the last version took the dataset along
    blob = {f.path: f.sha256 for f in store.manifest(gone.digest) or []}
    assert store.drop_orphan_manifests() == 1 and store.manifest(gone.digest) is None
    assert store.unnamed([blob["f0.csv"], blob["f1.csv"]]) == [blob["f0.csv"]]
    assert store.named_blobs() == {f.sha256 for f in store.manifest(kept.digest) or []}
    again = store.add_version("a", "e", NewVersion(files(b"gone")), quota=QUOTA)
    assert again.version == 1  # a deleted dataset's name starts again
    usage = store.usage()
    assert (usage.datasets, usage.versions, usage.manifests) == (2, 2, 2)
    with store.blob_lock():
        pass
