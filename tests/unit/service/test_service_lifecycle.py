"""The daemon across its life: start after a crash, retention, shutdown with a grace period."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
from service_fakes import (
    FakeExecutor,
    assert_error,
    make_settings,
    running_service,
    wait_for_status,
    wait_until,
)

from ai_data_agent.api_models import RunRecord
from ai_data_agent.models import RunRequest, RunResult, RunStatus
from ai_data_agent.service.daemon import REASON_STALE
from ai_data_agent.service.records import Outcome
from ai_data_agent.service.store import STORE_FILENAME, RunStore

pytestmark = pytest.mark.anyio
DAY = 24 * 3600.0


def seed_store(data_dir: Path) -> RunStore:
    store = RunStore(data_dir / STORE_FILENAME)
    store.open()
    return store


async def test_start_marks_stale_records_interrupted_and_sweeps_orphans(tmp_path: Path) -> None:
    store = seed_store(tmp_path)
    store.insert("was-queued", RunRequest(code="x"))
    store.insert("was-running", RunRequest(code="x"))
    store.mark_running("was-running")
    store.insert("was-done", RunRequest(code="x"))
    store.finish(
        "was-done", Outcome(RunStatus.SUCCEEDED, RunResult(id="was-done", status="succeeded"))
    )
    store.close()

    executor = FakeExecutor()
    executor.backend.orphans = ["c1", "c2", "c3"]
    async with running_service(make_settings(tmp_path), executor) as svc:
        for run_id, was in (("was-queued", "queued"), ("was-running", "running")):
            record = RunRecord.model_validate((await svc.client.get(f"/v1/runs/{run_id}")).json())
            assert record.status == "interrupted"
            assert record.error == f"{REASON_STALE} (the run was {was})"
            assert record.finished_at is not None
        done = (await svc.client.get("/v1/runs/was-done")).json()
        assert done["status"] == "succeeded"
        assert executor.backend.sweeps[0] == {
            "keep_controller": executor.controller_id,
            "all_controllers": False,  # live controllers sharing the engine are spared
            "run_ids": ("was-queued", "was-running"),
        }
        metrics = (await svc.client.get("/metrics")).text
        assert "ai_data_agent_containers_reaped_total 3.0" in metrics
        assert executor.started == []  # interrupted runs are not retried


async def test_failed_startup_sweep_is_retried_by_the_reaper(tmp_path: Path) -> None:
    executor = FakeExecutor()
    executor.backend.sweep_error = ConnectionError("engine down")
    executor.backend.orphans = ["c1"]
    settings = make_settings(tmp_path, reaper_interval_s=0.05)
    async with running_service(settings, executor) as svc:
        executor.backend.sweep_error = None
        await wait_until(lambda: len(executor.backend.sweeps) >= 3, what="reaper ticks")
        sweeps = executor.backend.sweeps
        assert sweeps[0]["keep_controller"] and sweeps[1]["keep_controller"]
        assert sweeps[-1]["keep_controller"] is None  # then only expired sandboxes
        metrics = (await svc.client.get("/metrics")).text
        assert "ai_data_agent_containers_reaped_total 1.0" in metrics


async def test_retention_by_age_and_count_spares_active_runs(tmp_path: Path) -> None:
    store = seed_store(tmp_path)
    now = time.time()
    for number in range(5):
        run_id = f"old-{number}"
        store.insert(run_id, RunRequest(code="x"), now=now - 10 * DAY + number)
        store.finish(run_id, Outcome(RunStatus.SUCCEEDED), now=now - 10 * DAY + number)
    for number in range(4):
        run_id = f"new-{number}"
        store.insert(run_id, RunRequest(code="x"), now=now - 60 + number)
        store.finish(run_id, Outcome(RunStatus.FAILED), now=now - 60 + number)

    assert store.apply_retention(max_age_s=7 * DAY, max_runs=100) == 5
    assert store.apply_retention(max_age_s=7 * DAY, max_runs=2) == 2
    items, total = store.list()
    assert total == 2 and [r.id for r in items] == ["new-3", "new-2"]

    store.insert("active", RunRequest(code="x"), now=now - 30 * DAY)
    assert store.apply_retention(max_age_s=DAY, max_runs=1) == 2  # both finished ones go
    assert [r.id for r in store.list()[0]] == ["active"]
    store.close()


async def test_retention_runs_at_start_and_on_the_timer(tmp_path: Path) -> None:
    store = seed_store(tmp_path)
    for number in range(3):
        store.insert(f"r{number}", RunRequest(code="x"))
        store.finish(f"r{number}", Outcome(RunStatus.SUCCEEDED))
    store.close()
    settings = make_settings(tmp_path, retention_max_runs=2, reaper_interval_s=0.05)
    async with running_service(settings) as svc:
        assert (await svc.client.get("/v1/runs")).json()["total"] == 2
        for _ in range(2):
            await svc.client.post("/v1/runs", json={"code": "x"})
        await wait_until(lambda: svc.daemon.store.list()[1] == 2, what="retention on the timer")
        metrics = (await svc.client.get("/metrics")).text
        assert "ai_data_agent_records_deleted_total 3.0" in metrics


async def test_shutdown_refuses_new_runs_and_interrupts_the_rest(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, shutdown_grace_s=0.2)
    answers = []
    async with running_service(settings) as svc:
        client = svc.client

        async def waiting_post() -> None:
            answers.append(await client.post("/v1/runs", json={"code": "block"}))

        async with anyio.create_task_group() as group:
            group.start_soon(waiting_post)
            await wait_until(lambda: len(svc.executor.started) == 1, what="run to start")
            running_id = svc.executor.started[0]
            queued = (await client.post("/v1/runs?wait=false", json={"code": "x"})).json()

            await anyio.to_thread.run_sync(svc.daemon.begin_shutdown)  # what SIGTERM does
            refused = await client.post("/v1/runs", json={"code": "x"})
            assert "shutting down" in assert_error(refused, 503, "not_ready")
            assert "shutting down" in assert_error(await client.get("/readyz"), 503, "not_ready")
            # The queued run is interrupted at once, without starting.
            record = await wait_for_status(client, queued["id"], {"interrupted"})
            assert "before the run started" in record["error"]
            # The running one gets the grace period, then is stopped and recorded.
            record = await wait_for_status(client, running_id, {"interrupted"}, timeout=5)
            assert "grace period" in record["error"]
            assert record["result"]["status"] == "interrupted"
            assert record["result"]["stdout"] == "partial\n"
        assert answers[0].status_code == 200
        assert answers[0].json()["status"] == "interrupted"
    assert queued["id"] not in svc.executor.started


async def test_lifespan_end_drains_running_runs_within_the_grace(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, shutdown_grace_s=5)
    executor = FakeExecutor()
    async with running_service(settings, executor) as svc:
        run = (await svc.client.post("/v1/runs?wait=false", json={"code": "block"})).json()
        await wait_until(lambda: run["id"] in executor.started, what="run to start")
        # Finishes on its own during the grace period: kept as it ended.
        await anyio.to_thread.run_sync(svc.daemon.begin_shutdown)
        executor.release.set()
    store = seed_store(tmp_path)
    record = store.get(run["id"])
    store.close()
    assert record is not None and record.status == "succeeded"


async def test_store_that_cannot_be_created_fails_startup(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    settings = make_settings(blocker / "data")  # a directory under a file: cannot exist
    with pytest.raises(Exception, match="cannot open the run store"):
        async with running_service(settings):
            pass
