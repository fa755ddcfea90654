"""Checkpoints in a cluster: a session whose worker dies resumes on another from its last
checkpoint (the pin moves), through any API node; and a pause lets any worker resume it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.engines import PrivateEngine

from .nodes import Cluster, poll
from .test_cluster_runs import running_on

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.integration,
    pytest.mark.filterwarnings(r"ignore:unclosed <socket\.socket:ResourceWarning"),
]


def test_a_session_whose_worker_dies_resumes_on_another_at_its_last_cell(
    cluster: Cluster, engines: list[PrivateEngine], tmp_path: Path
) -> None:
    shared = {"storage_dir": str(tmp_path / "storage"), "max_sessions": 2}
    api = cluster.api(**shared)
    workers = {
        e.name: cluster.worker(e, checkpoint_after_each_cell="true", **shared) for e in engines[:2]
    }
    with api.client() as client:
        session_id = client.post("/v1/sessions", json={}).json()["id"]
        for code in ("x = 40", "x += 2\ndef f(): return x"):
            cell = client.post(f"/v1/sessions/{session_id}/cells", json={"code": code})
            assert cell.status_code == 200, cell.text

        def checkpointed() -> bool:
            items = client.get(f"/v1/sessions/{session_id}/checkpoints").json()["items"]
            return bool(items) and items[0]["execution_count"] == 2

        poll(checkpointed, 30, "the checkpoint of cell 2")
    home = running_on(engines[:2], session_id)
    assert home is not None
    workers[home.name].kill()

    def paused() -> bool:
        with api.client() as client:
            return client.get(f"/v1/sessions/{session_id}").json()["status"] == "paused"

    poll(paused, 30, "the session to be paused with its worker gone")
    other = next(e for e in engines[:2] if e is not home)
    with api.client(timeout=120) as client:
        cell = client.post(f"/v1/sessions/{session_id}/cells", json={"code": "f()"}).json()
        assert cell["state"] == "restored", cell
        assert cell["result"]["data"]["text/plain"] == "42"
        assert cell["restore"]["execution_count"] == 2 and cell["execution_count"] == 3
        assert running_on([other], session_id) is other  # the pin moved
        paused_now = client.post(f"/v1/sessions/{session_id}/pause")
        assert paused_now.status_code == 200 and paused_now.json()["status"] == "paused"
        poll(lambda: session_id not in other.sandboxes().values(), 30, "no container")
        resumed = client.post(f"/v1/sessions/{session_id}/resume").json()
        assert resumed["state"] == "restored" and "f" in resumed["restored"]
        client.delete(f"/v1/sessions/{session_id}")
    cluster.restart(workers[home.name])  # its sweep removes the dead kernel's sandbox
    poll(lambda: not home.sandboxes(), 30, "the restarted worker's sweep")


def test_a_checkpoint_past_the_storage_quota_is_refused_through_an_api_node(
    cluster: Cluster, engines: list[PrivateEngine], tmp_path: Path
) -> None:
    shared = {"storage_dir": str(tmp_path / "storage"), "max_sessions": 1}
    api = cluster.api(**shared)
    cluster.worker(engines[0], **shared)
    limit = 1_000_000
    with api.client() as admin:
        made = admin.post("/v1/tenants", json={"name": "lean", "quotas": {"storage_bytes": limit}})
        assert made.status_code == 201, made.text
        secret = admin.post("/v1/tokens", json={"tenant": "lean", "name": "lean-1"}).json()
    with api.client(timeout=120) as client:
        client.headers["Authorization"] = f"Bearer {secret['secret']}"
        sid = client.post("/v1/sessions", json={}).json()["id"]
        for code in ("small = 1", "big = bytes(2 * 1024 * 1024)"):
            assert client.post(f"/v1/sessions/{sid}/cells", json={"code": code}).status_code == 200
        refused = client.post(f"/v1/sessions/{sid}/checkpoint")
        assert refused.status_code == 429, refused.text
        error = refused.json()["error"]
        assert (error["code"], error["quota"], error["limit"], error["used"]) == (
            "quota_exceeded",
            "storage_bytes",
            limit,
            0,
        )
        assert client.get(f"/v1/sessions/{sid}").json()["status"] == "idle"
        kept = client.post(f"/v1/sessions/{sid}/cells", json={"code": "del big\nsmall"}).json()
        assert kept["state"] == "preserved" and kept["result"]["data"]["text/plain"] == "1"
        assert client.post(f"/v1/sessions/{sid}/checkpoint").status_code == 201
        client.delete(f"/v1/sessions/{sid}")
