"""Failures in a cluster: a worker killed, a worker cut off, the database gone for a while.

A run is executed at most once: a worker that stops renewing its lease has its
runs ended ``interrupted`` with the reason, never run again; its late write
loses; its sandboxes go. While the database is down, API nodes say 503 and
workers keep their results until they can write them.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.engines import PrivateEngine

from .nodes import Cluster, poll
from .postgres import Postgres
from .test_cluster_runs import SLEEPER, running_on

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.integration,
    pytest.mark.filterwarnings(r"ignore:unclosed <socket\.socket:ResourceWarning"),
]


def test_a_worker_killed_mid_run_leaves_it_interrupted_never_rerun(
    cluster: Cluster, engines: list[PrivateEngine]
) -> None:
    api = cluster.api()
    workers = {e.name: cluster.worker(e, max_concurrent_runs=1) for e in engines[:2]}
    watches = [engine.watch_starts() for engine in engines[:2]]
    first, second = api.submit(SLEEPER), api.submit(SLEEPER)
    where = {
        run: poll(lambda run=run: running_on(engines[:2], run), 30, "both sandboxes")
        for run in (first, second)
    }
    queued = [api.submit(f"print({n})") for n in range(3)]
    assert {api.record(r)["status"] for r in queued} == {"queued"}

    doomed_engine = where[first]
    killed_at = time.monotonic()
    workers[doomed_engine.name].kill()
    record = api.wait_terminal(first, timeout=30)
    assert time.monotonic() - killed_at < 10  # lease 2 s, swept every 0.5 s
    assert record["status"] == "interrupted" and record["result"] is None
    assert f"worker {doomed_engine.name} stopped renewing its lease" in record["error"]
    assert "not run again" in record["error"]
    with api.client() as client:  # the other worker is busy until this one ends
        assert client.delete(f"/v1/runs/{second}").json()["status"] == "cancelled"
    for number, run_id in enumerate(queued):  # taken by the remaining worker
        assert api.wait_terminal(run_id)["result"]["stdout"] == f"{number}\n"
    started = [run for watch in watches for run in watch.stop()]
    assert started.count(first) == 1 and started.count(second) == 1
    # The killed worker's sandbox outlives it; its next start sweeps its own engine.
    assert first in doomed_engine.sandboxes().values()
    cluster.restart(workers[doomed_engine.name])
    poll(lambda: not doomed_engine.sandboxes(), 30, "the restarted worker's sweep")
    assert api.record(first)["status"] == "interrupted"


def test_a_cut_off_worker_comes_back_to_find_its_run_ended_and_its_write_loses(
    cluster: Cluster, engines: list[PrivateEngine]
) -> None:
    api = cluster.api()
    worker = cluster.worker(engines[0], max_concurrent_runs=1)
    code = "import time; print('early', flush=True); time.sleep(5); print('late')"
    run_id = api.submit(code)
    poll(lambda: running_on(engines[:1], run_id), 30, "the sandbox")
    worker.pause()  # SIGSTOP: no lease renewal, as cut off from the database
    try:
        record = api.wait_terminal(run_id, timeout=30)
    finally:
        worker.resume()
    assert record["status"] == "interrupted" and "not run again" in record["error"]
    # Back, it learns it was declared lost: it stops the run and removes the sandbox.
    poll(lambda: not engines[0].sandboxes(), 30, "the sandbox to be removed", worker.log)
    time.sleep(6)  # past the run's own end: a late write would have landed by now
    again = api.record(run_id)
    assert again["status"] == "interrupted" and again["result"] is None
    assert "declared lost" in worker.log()
    with api.client() as client:  # registered again, it takes new work
        answer = client.post("/v1/runs", json={"code": "print('back')"})
    assert answer.status_code == 200 and answer.json()["stdout"] == "back\n"


def test_the_database_down_during_runs_loses_nothing(
    cluster: Cluster, engines: list[PrivateEngine], pg: Postgres
) -> None:
    lease = {"lease_timeout_s": 6, "heartbeat_interval_s": 1}
    api = cluster.api(**lease)
    cluster.worker(engines[0], max_concurrent_runs=2, **lease)
    runs = [api.submit(f"import time; time.sleep(3); print('kept {n}')") for n in range(2)]
    for run_id in runs:
        poll(lambda run_id=run_id: running_on(engines[:1], run_id), 30, "the sandboxes")
    pg.stop()
    try:
        ready = httpx.get(f"{api.url}/readyz", timeout=10)
        assert ready.status_code == 503 and "database" in ready.text, ready.text
        with api.client() as client:
            refused = client.post("/v1/runs", json={"code": "print(1)", "wait": False})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "not_ready"
        time.sleep(5)  # the runs end meanwhile; their results wait in the worker
        assert not engines[0].sandboxes()
    finally:
        pg.start()
    poll(lambda: httpx.get(f"{api.url}/readyz", timeout=5).status_code == 200, 30, "readyz")
    for number, run_id in enumerate(runs):
        record = api.wait_terminal(run_id, timeout=30)
        assert record["status"] == "succeeded", record
        assert record["result"]["stdout"] == f"kept {number}\n"
    with api.client() as client:
        assert client.post("/v1/runs", json={"code": "print(2)"}).json()["stdout"] == "2\n"
