"""API nodes and workers on one database: admission, cancel, SSE, wait, API nodes dying.

Each test starts real processes (``ai-data-agent serve`` and ``worker``) on
private engines; every run they start is seen on exactly one engine.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.engines import PrivateEngine

from .nodes import Cluster, Node, poll

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.integration,
    # docker-py clients of the private engines can leave a unix socket to the
    # garbage collector: test plumbing, not the nodes (separate processes).
    pytest.mark.filterwarnings(r"ignore:unclosed <socket\.socket:ResourceWarning"),
]

SLEEPER = "import time; print('started', flush=True); time.sleep(60)"


def running_on(engines: list[PrivateEngine], run_id: str) -> PrivateEngine | None:
    for engine in engines:
        if run_id in engine.sandboxes().values():
            return engine
    return None


def test_admission_is_cluster_wide(cluster: Cluster, engines: list[PrivateEngine]) -> None:
    one, two = cluster.api(max_queued_runs=1), cluster.api(max_queued_runs=1)
    cluster.worker(engines[0], max_concurrent_runs=1)
    # One worker slot plus one queued: the third run is refused on either node.
    first, second = one.submit(SLEEPER), two.submit(SLEEPER)
    for node in (one, two):
        with node.client() as client:
            answer = client.post("/v1/runs", json={"code": "print(1)", "wait": False})
        assert answer.status_code == 429, answer.text
        assert answer.json()["error"]["code"] == "queue_full"
        assert int(answer.headers["Retry-After"]) > 0
    with two.client() as client:
        assert client.delete(f"/v1/runs/{second}").json()["status"] == "cancelled"
    third = one.submit("print('third')")
    with one.client() as client:
        assert client.delete(f"/v1/runs/{first}").json()["status"] == "cancelled"
    assert two.wait_terminal(third)["result"]["stdout"] == "third\n"


def test_cancel_reaches_the_worker_through_another_api_node(
    cluster: Cluster, engines: list[PrivateEngine]
) -> None:
    one, two = cluster.api(), cluster.api()
    cluster.worker(engines[0])
    run_id = one.submit(SLEEPER)
    poll(lambda: running_on(engines[:1], run_id), 30, "the sandbox to start")
    started = time.monotonic()
    with two.client() as client:
        record = client.delete(f"/v1/runs/{run_id}").json()
    assert record["status"] == "cancelled", record
    assert time.monotonic() - started < 15
    assert record["result"]["status"] == "cancelled"
    poll(lambda: not engines[0].sandboxes(), 30, "the sandbox to be removed")


def test_events_and_wait_answer_from_any_api_node(
    cluster: Cluster, engines: list[PrivateEngine]
) -> None:
    # A poll a minute apart: everything below within seconds comes by NOTIFY.
    slow_poll = {"queue_poll_s": 60}
    one, two = cluster.api(**slow_poll), cluster.api(**slow_poll)
    cluster.worker(engines[0], **slow_poll)
    code = "import time\nfor i in range(4):\n    print(i, flush=True); time.sleep(0.4)\n"
    run_id = one.submit(code)
    events: list[tuple[str, dict[str, object]]] = []
    with two.client() as client, client.stream("GET", f"/v1/runs/{run_id}/events") as stream:
        name = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    names = [name for name, _ in events]
    assert names[0] == "status" and names[-1] == "result", names
    statuses = [data["status"] for name, data in events if name == "status"]
    assert statuses[:2] == ["queued", "running"], statuses
    output = "".join(str(data["data"]) for name, data in events if name == "stdout")
    assert output == "0\n1\n2\n3\n"
    assert events[-1][1]["stdout"] == "0\n1\n2\n3\n"
    # wait=true on one node for a run that the worker executes; the other reads it.
    started = time.monotonic()
    with one.client() as client:
        answer = client.post("/v1/runs", json={"code": "print('waited')"})
    assert answer.status_code == 200 and answer.json()["stdout"] == "waited\n"
    assert time.monotonic() - started < 5  # woken, not polled
    assert two.record(answer.json()["id"])["status"] == "succeeded"


def test_artifacts_come_from_the_database_through_any_node(
    cluster: Cluster, engines: list[PrivateEngine]
) -> None:
    one, two = cluster.api(), cluster.api()
    cluster.worker(engines[0])
    code = "import os\nopen('outputs/blob.bin', 'wb').write(bytes(range(256)) * 12000)\n"
    with one.client() as client:
        result = client.post("/v1/runs", json={"code": code}).json()
    assert [a["path"] for a in result["artifacts"]] == ["blob.bin"]
    with two.client() as client:
        body = client.get(f"/v1/runs/{result['id']}/artifacts/blob.bin")
    assert body.status_code == 200 and body.content == bytes(range(256)) * 12000


def test_serve_with_worker_admits_and_executes_in_one_process(
    cluster: Cluster, engines: list[PrivateEngine]
) -> None:
    node = cluster.api(with_worker=engines[2])
    ready = httpx.get(f"{node.url}/readyz", timeout=10).json()
    # The API node's checks and its worker's own.
    api = {"database", "storage", "workers"}
    worker = {"docker", "image", "lease", "writable", "warm pool"}
    assert set(ready["checks"]) == api | worker, ready
    with node.client() as client:
        answer = client.post("/v1/runs", json={"code": "print('here')"})
    assert answer.status_code == 200 and answer.json()["stdout"] == "here\n"


def test_an_api_node_dying_loses_nothing(cluster: Cluster, engines: list[PrivateEngine]) -> None:
    one, two = cluster.api(), cluster.api()
    cluster.worker(engines[0], max_concurrent_runs=1)
    runs = [one.submit(f"import time; time.sleep(0.5); print({n})") for n in range(4)]
    one.kill()
    restarted = cluster.restart(one)
    for number, run_id in enumerate(runs):
        record = two.wait_terminal(run_id)
        assert record["status"] == "succeeded" and record["result"]["stdout"] == f"{number}\n"
        assert restarted.record(run_id) == two.record(run_id)


@pytest.mark.timeout(900)  # about a minute here; room for a loaded CI machine
def test_a_few_hundred_runs_across_workers_each_executed_exactly_once(
    cluster: Cluster, engines: list[PrivateEngine]
) -> None:
    apis = [cluster.api(), cluster.api()]
    workers = [cluster.worker(engine) for engine in engines]
    watches = [engine.watch_starts() for engine in engines]
    total = 200
    ids: list[str] = []
    lock = threading.Lock()

    def submit(number: int) -> None:
        run_id = apis[number % 2].submit(f"print({number})")
        with lock:
            ids.append(run_id)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(submit, range(total)))
    for run_id in ids:
        assert apis[0].wait_terminal(run_id, timeout=300)["status"] == "succeeded"
    per_engine = [watch.stop() for watch in watches]
    started = [run for runs in per_engine for run in runs]
    assert len(ids) == total
    assert sorted(started) == sorted(ids)  # each exactly once, on one engine
    counts = [len(runs) for runs in per_engine]
    assert all(count > 0 for count in counts), counts  # every worker took some
    # Each worker's own count agrees: its /metrics, behind the token.
    finished = [succeeded(check_metrics(worker)) for worker in workers]
    assert finished == counts
    print(f"runs per worker: {counts} ({[w.url for w in workers]})")


def check_metrics(worker: Node) -> str:
    assert httpx.get(f"{worker.url}/metrics").status_code == 401
    assert httpx.get(f"{worker.url}/healthz").json() == {"status": "ok"}
    with worker.client() as client:
        answer = client.get("/metrics")
        # A worker takes no run over HTTP: only from the database.
        assert client.post("/v1/runs", json={"code": "print(1)"}).status_code == 404
    assert answer.status_code == 200
    return answer.text


def succeeded(metrics: str) -> int:
    for line in metrics.splitlines():
        if line.startswith('ai_data_agent_runs_total{status="succeeded"}'):
            return int(float(line.split()[-1]))
    return 0


def test_a_workers_warm_pool_shows_in_its_metrics_and_readiness(
    cluster: Cluster, engines: list[PrivateEngine]
) -> None:
    api = cluster.api()
    worker = cluster.worker(engines[0], pool_size=1)

    def pool_line(name: str) -> float | None:
        for line in check_metrics(worker).splitlines():
            if line.startswith(f'{name}{{preimported="false",profile="plain"}}'):
                return float(line.split()[-1])
        return None

    poll(lambda: pool_line("ai_data_agent_pool_idle") == 1.0, 60, "a pooled sandbox", worker.log)
    record = api.wait_terminal(api.submit("print('pooled')"))
    assert record["result"]["stdout"] == "pooled\n"
    assert pool_line("ai_data_agent_pool_handouts_total") == 1.0
    assert pool_line("ai_data_agent_pool_target") == 1.0
    with worker.client() as client:
        pool = client.get("/readyz").json()["checks"]["warm pool"]
    assert "1 run(s) took one" in pool, pool
