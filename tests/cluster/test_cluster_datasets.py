"""Datasets in a cluster: stored once for the cluster, mounted by runs and sessions on any worker.

A dataset uploaded by tenant A through API node A is read (hash checked inside
the sandbox) by A's runs on both workers and by A's session on worker 2; the
session's promoted file is a new version that a run reads, and a second one
passes A's storage quota (read by the worker). Tenant B finds none of it
through API node B. The API nodes share the storage directory; the workers
read its blobs as the cluster lets them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

import httpx
import pytest

from tests.support.engines import PrivateEngine

from .nodes import Cluster, Node, poll
from .test_cluster_runs import running_on

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.integration,
    pytest.mark.filterwarnings(r"ignore:unclosed <socket\.socket:ResourceWarning"),
]
DATA = b"region,units\n" + b"west,3\neast,4\n" * 5000
READ = (
    "import hashlib, time\n"
    "digest = hashlib.sha256(open('/data/sales/sales.csv', 'rb').read()).hexdigest()\n"
    "time.sleep(2)\nprint(digest)\n"
)


def as_tenant(node: Node, secret: str, timeout: float = 60) -> httpx.Client:
    client = node.client(timeout)
    client.headers["Authorization"] = f"Bearer {secret}"
    return client


def test_a_dataset_from_one_api_node_is_mounted_on_two_workers(
    cluster: Cluster, engines: list[PrivateEngine]
) -> None:
    shared = {"storage_dir": cluster.tmp / "storage"}
    one, two = cluster.api(**shared), cluster.api(**shared)
    cluster.worker(engines[0], max_concurrent_runs=1, max_sessions=0, **shared)
    cluster.worker(engines[1], max_concurrent_runs=1, max_sessions=1, **shared)
    secrets: dict[str, str] = {}
    with one.client() as admin:
        for name, quotas in (("a", {"storage_bytes": 2 * len(DATA) + 100}), ("b", {})):
            made = admin.post("/v1/tenants", json={"name": name, "quotas": quotas})
            assert made.status_code == 201, made.text
            token = admin.post("/v1/tokens", json={"tenant": name, "name": f"{name}-1"})
            secrets[name] = token.json()["secret"]
    with as_tenant(one, secrets["a"]) as client:
        put = client.post(
            "/v1/datasets/sales/versions",
            params={"path": "sales.csv"},
            content=DATA,
            headers={"Content-Type": "application/octet-stream"},
        )
    assert put.status_code == 201, put.text
    expected = hashlib.sha256(DATA).hexdigest()
    with as_tenant(two, secrets["b"]) as other:
        assert other.get("/v1/datasets/sales").status_code == 404
        mount = other.post("/v1/runs", json={"code": "1", "datasets": ["sales"]})
        assert mount.status_code == 404, mount.text

    # Two runs at once: one slot per worker, so each worker mounts the version.
    results: list[dict[str, Any]] = []

    def run() -> None:
        with as_tenant(two, secrets["a"], timeout=120) as client:
            results.append(
                client.post("/v1/runs", json={"code": READ, "datasets": ["sales"]}).json()
            )

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    hosts: set[str] = set()

    def both_running() -> bool:
        with one.client() as client:
            items = client.get("/v1/runs", params={"status": "running"}).json()["items"]
        hosts.update(e.name for r in items if (e := running_on(engines[:2], r["id"])))
        return len(hosts) == 2

    poll(both_running, 60, "a run on each worker")
    for thread in threads:
        thread.join()
    assert [r["stdout"].strip() for r in results] == [expected, expected], results
    assert all(r["datasets"][0]["digest"] == put.json()["digest"] for r in results)

    with as_tenant(two, secrets["a"], timeout=120) as client:
        session = client.post("/v1/sessions", json={"datasets": ["sales@1"]})
        assert session.status_code == 201, session.text
        sid = session.json()["id"]
        assert running_on(engines[:2], sid) is engines[1]
        cell = client.post(
            f"/v1/sessions/{sid}/cells",
            json={
                "code": "import shutil; shutil.copy('/data/sales/sales.csv', 'outputs/clean.csv')"
            },
        )
        assert cell.json()["status"] == "succeeded", cell.text
        promoted = client.post(
            f"/v1/sessions/{sid}/datasets", json={"name": "clean", "paths": ["outputs/clean.csv"]}
        )
        assert promoted.status_code == 201, promoted.text
        over = client.post(
            f"/v1/sessions/{sid}/datasets", json={"name": "more", "paths": ["outputs/clean.csv"]}
        )
        assert over.status_code == 413 and "storage_bytes" in over.text, over.text
        client.delete(f"/v1/sessions/{sid}")
    with as_tenant(one, secrets["a"], timeout=120) as client:
        read = client.post(
            "/v1/runs",
            json={
                "code": "import hashlib; print(hashlib.sha256(open('/data/clean/clean.csv','rb').read()).hexdigest())",
                "datasets": ["clean"],
            },
        ).json()
        assert read["stdout"].strip() == expected, json.dumps(read)[:2000]
        listed = client.get("/v1/datasets").json()
    assert {(d["tenant"], d["name"]) for d in listed["items"]} == {("a", "sales"), ("a", "clean")}
