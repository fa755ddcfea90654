"""A cluster with no live worker: API nodes admit and say so; a worker that cannot start says why."""

from __future__ import annotations

import time

import httpx
import pytest

from ai_data_agent.client import Client, NoWorker
from tests.support.engines import PrivateEngine

from .nodes import TOKEN, Cluster, poll

pytestmark = pytest.mark.cluster
ANSWER_WITHIN_S = 5.0  # a refusal answers at once, not after a claim wait (queue_poll_s + 1)


def test_with_no_live_worker_runs_queue_sessions_are_refused_and_readyz_says_so(
    cluster: Cluster, engines: list[PrivateEngine]
) -> None:
    api = cluster.api()
    ready = httpx.get(f"{api.url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text  # ready to admit ...
    body = ready.json()
    assert (body["admission"], body["execution"]) == ("ready", "degraded"), body  # ... not to run
    assert body["checks"]["workers"] == "0 live"
    assert body["checks"]["storage"].endswith("storage"), body  # the blobs' directory takes a write

    with api.client() as client:
        started = time.monotonic()
        waited = client.post("/v1/runs", json={"code": "print('late')", "wait": True})
        assert time.monotonic() - started < ANSWER_WITHIN_S
        assert waited.status_code == 503, waited.text
        assert waited.json()["error"]["code"] == "no_worker"
        location = waited.headers["location"]
        run_id = location.rsplit("/", 1)[-1]
        assert f"run {run_id} stays queued" in waited.json()["error"]["message"]
        assert api.record(run_id)["status"] == "queued"

        started = time.monotonic()
        session = client.post("/v1/sessions", json={})
        assert time.monotonic() - started < ANSWER_WITHIN_S
        assert session.status_code == 503, session.text
        assert session.json()["error"]["code"] == "no_worker"
    with Client(api.url, token=TOKEN) as remote:
        with pytest.raises(NoWorker):
            remote.session()  # the client raises the class the daemon answered with
        # Followed live (the CLI's run --server): the event stream ends with the error.
        followed = remote.submit("print('followed')")
        started = time.monotonic()
        with pytest.raises(NoWorker) as no_worker:
            remote.follow(followed, lambda stream, text: None)
        assert time.monotonic() - started < ANSWER_WITHIN_S
        assert no_worker.value.run_id == followed

    cluster.worker(engines[0])
    assert api.wait_terminal(run_id)["status"] == "succeeded"  # the queued run ran
    ready = httpx.get(f"{api.url}/readyz", timeout=10).json()
    assert (ready["execution"], ready["checks"]["workers"]) == ("ready", "1 live")
    with api.client() as client:
        session = client.post("/v1/sessions", json={})
        assert session.status_code == 201, session.text
        client.delete(f"/v1/sessions/{session.json()['id']}")


def test_a_worker_started_before_any_api_node_names_the_schema_as_the_cause(
    cluster: Cluster, engines: list[PrivateEngine]
) -> None:
    worker = cluster.worker(engines[0], wait=False)  # nothing has migrated this database
    poll(lambda: worker.process.poll() is not None, 60, "the worker to exit", worker.log)
    assert worker.process.returncode != 0
    log = " ".join(worker.log().split())  # the message may be wrapped
    assert "error: the worker did not start: the database schema is at version 0" in log, log
    assert "could not listen" not in log, log
