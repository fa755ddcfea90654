"""Sessions in a cluster: pinned to one worker, reached through any API node, lost with it."""

from __future__ import annotations

import pytest

from tests.support.engines import PrivateEngine

from .nodes import Cluster, poll
from .test_cluster_runs import running_on

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.integration,
    pytest.mark.filterwarnings(r"ignore:unclosed <socket\.socket:ResourceWarning"),
]


def test_a_session_is_pinned_to_its_worker_and_lost_with_it(
    cluster: Cluster, engines: list[PrivateEngine]
) -> None:
    one, two = cluster.api(), cluster.api()
    workers = {e.name: cluster.worker(e, max_sessions=2) for e in engines[:2]}
    with one.client() as client:
        created = client.post("/v1/sessions", json={})
    assert created.status_code == 201, created.text
    session_id = created.json()["id"]
    home = running_on(engines[:2], session_id)
    assert home is not None
    # Cells through either API node reach the same kernel: the state carries over.
    with two.client() as client:
        first = client.post(f"/v1/sessions/{session_id}/cells", json={"code": "x = 41"})
        assert first.status_code == 200, first.text
    with one.client() as client:
        second = client.post(f"/v1/sessions/{session_id}/cells", json={"code": "x + 1"})
        assert second.json()["result"]["data"]["text/plain"] == "42"
        upload = client.put(f"/v1/sessions/{session_id}/files/in.txt", content=b"hi")
        assert upload.status_code == 201
    with two.client() as client:
        assert client.get(f"/v1/sessions/{session_id}/files/in.txt").content == b"hi"
        stream = client.get(f"/v1/sessions/{session_id}/cells/2/events")
        assert "event: result" in stream.text
        busy_code = "import time; time.sleep(3)"
        accepted = client.post(
            f"/v1/sessions/{session_id}/cells", json={"code": busy_code, "wait": False}
        )
        assert accepted.status_code == 202, accepted.text
        busy = client.post(f"/v1/sessions/{session_id}/cells", json={"code": "1"})
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "session_busy"

    workers[home.name].kill()

    def lost() -> bool:
        with two.client() as client:
            return client.get(f"/v1/sessions/{session_id}").json()["status"] == "lost"

    poll(lost, 30, "the session to be lost")
    with one.client() as client:
        gone = client.post(f"/v1/sessions/{session_id}/cells", json={"code": "x"})
        assert gone.status_code == 410 and gone.json()["error"]["code"] == "session_gone"
        running = client.get(f"/v1/sessions/{session_id}/cells/3")
        assert running.status_code in (404, 410), running.text
    other = next(e for e in engines[:2] if e is not home)
    assert session_id not in other.sandboxes().values()  # never started again elsewhere
    cluster.restart(workers[home.name])  # its sweep removes the dead kernel's sandbox
    poll(lambda: not home.sandboxes(), 30, "the restarted worker's sweep")


def test_a_session_that_fits_no_worker_is_refused(
    cluster: Cluster, engines: list[PrivateEngine]
) -> None:
    api = cluster.api()
    cluster.worker(engines[0], max_sessions=1)
    with api.client(timeout=120) as client:
        first = client.post("/v1/sessions", json={})
        assert first.status_code == 201, first.text
        refused = client.post("/v1/sessions", json={})
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "session_limit"
        closed = client.delete(f"/v1/sessions/{first.json()['id']}")
        assert closed.json()["status"] == "closed"


def test_a_cut_off_worker_ends_the_sessions_the_cluster_counted_lost(
    cluster: Cluster, engines: list[PrivateEngine]
) -> None:
    api = cluster.api()
    worker = cluster.worker(engines[0], max_sessions=2)
    with api.client() as client:
        session_id = client.post("/v1/sessions", json={}).json()["id"]
    assert session_id in engines[0].sandboxes().values()
    worker.pause()  # no lease renewal, as cut off from the database
    try:

        def lost() -> bool:
            with api.client() as client:
                return client.get(f"/v1/sessions/{session_id}").json()["status"] == "lost"

        poll(lost, 30, "the session to be counted lost")
    finally:
        worker.resume()
    # Back, the worker learns it was declared lost and ends the session's container;
    # the registry keeps it lost.
    poll(lambda: not engines[0].sandboxes(), 30, "the session's sandbox to go", worker.log)
    with api.client() as client:
        assert client.get(f"/v1/sessions/{session_id}").json()["status"] == "lost"
        gone = client.post(f"/v1/sessions/{session_id}/cells", json={"code": "1"})
        assert gone.status_code == 410
