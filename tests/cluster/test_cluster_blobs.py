"""The cluster's blobs: a worker writes and reads them through an API node, by its advertised URL.

The API node and the worker are real processes; the worker's blob store is also
built in this process the way a worker builds it (`remote_blobs`, on the worker
role's connection), so the test can write and read through it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ai_data_agent.errors import NotReady
from ai_data_agent.service.cluster.db import Database
from ai_data_agent.service.cluster.pg_nodes import ApiNodes
from ai_data_agent.service.cluster.worker_node import remote_blobs
from ai_data_agent.settings import Settings
from ai_data_agent.storage import LocalBlobStore
from tests.support.engines import PrivateEngine

from .nodes import Cluster, Node, poll

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.integration,
    pytest.mark.filterwarnings(r"ignore:unclosed <socket\.socket:ResourceWarning"),
]


def shared_storage(api: Node) -> LocalBlobStore:
    """The API node's storage directory (data_dir/storage: no storage_dir is set)."""
    return LocalBlobStore(Path(api.env["AI_DATA_AGENT_DATA_DIR"]) / "storage")


def test_a_worker_writes_and_reads_the_cluster_blobs_through_an_api_node(
    cluster: Cluster,
    engines: list[PrivateEngine],
    cluster_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    api = cluster.api()
    worker = cluster.worker(engines[0])
    ready = httpx.get(f"{worker.url}/readyz", timeout=10).json()
    assert api.url in ready["checks"]["api_nodes"], ready  # the default: where it listens

    settings = cluster_settings("worker", data_dir=tmp_path / "worker")
    db = Database(settings, role="worker")
    db.open()
    store = remote_blobs(settings, db)
    try:
        ours = os.urandom(3 * 1024 * 1024 + 17)  # several chunks
        with store.writer() as writer:
            writer.write(ours)
            blob = writer.commit()
        assert blob.digest == hashlib.sha256(ours).hexdigest() and blob.size == len(ours)
        kept = shared_storage(api).path(blob.digest)
        assert kept is not None and kept.read_bytes() == ours

        theirs = os.urandom(1024 * 1024)  # as a dataset upload leaves it on an API node
        with shared_storage(api).writer() as writer:
            writer.write(theirs)
            stored = writer.commit()
        fetched = store.path(stored.digest)
        assert fetched is not None
        assert hashlib.sha256(fetched.read_bytes()).hexdigest() == stored.digest
        assert fetched.read_bytes() == theirs

        api.stop()  # it withdraws its URL: no API node is left to reach
        poll(lambda: not ApiNodes(db, lease_s=settings.lease_timeout_s).urls(), 10, "no URL")
        with pytest.raises(NotReady, match="ADVERTISE_URL"):
            store.exists(hashlib.sha256(b"anything else").hexdigest())
        answer = httpx.get(f"{worker.url}/readyz", timeout=10)
        assert answer.status_code == 503 and "api_nodes" in answer.text, answer.text
    finally:
        store.close()
        db.close()
