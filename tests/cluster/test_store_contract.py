"""The same store tests against SQLite and PostgreSQL: one contract, two implementations."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ai_data_agent.models import RunRequest, RunResult, RunStatus
from ai_data_agent.service.cluster.db import Database
from ai_data_agent.service.cluster.pg_store import PgRunStore
from ai_data_agent.service.records import Outcome, RunRecords
from ai_data_agent.service.store import RunStore
from ai_data_agent.settings import Settings

pytestmark = pytest.mark.cluster


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, cluster_settings: Callable[..., Settings]
) -> Iterator[Callable[[], RunRecords]]:
    """Stores on one database: a second call is another node (or process) on the same data."""
    made: list[RunRecords] = []

    def build() -> RunRecords:
        store: RunRecords
        if request.param == "sqlite":
            store = RunStore(tmp_path / "runs.sqlite3")
        else:
            store = PgRunStore(Database(cluster_settings("api"), role="api"), migrate=True)
        store.open()
        made.append(store)
        return store

    yield build
    for store in made:
        store.close()


@pytest.fixture
def store(make_store: Callable[[], RunRecords]) -> RunRecords:
    return make_store()


def test_an_inserted_record_reads_back(store: RunRecords) -> None:
    record = store.insert("r1", RunRequest(code="print(1)", env={"A": "b"}), now=1000.0)
    found = store.get("r1")
    assert found is not None and found == record
    assert found.status == "queued" and found.request.env == {"A": "b"}


def test_a_record_is_visible_to_another_node_once_inserted(
    make_store: Callable[[], RunRecords],
) -> None:
    first, second = make_store(), make_store()
    first.insert("r1", RunRequest(code="x"))
    record = second.get("r1")
    assert record is not None and record.status == "queued"


def test_exactly_one_terminal_state(store: RunRecords) -> None:
    store.insert("r1", RunRequest(code="x"))
    assert store.mark_running("r1")
    assert not store.mark_running("r1")
    result = RunResult(id="r1", status=RunStatus.SUCCEEDED, stdout="hi\n")
    assert store.finish("r1", Outcome(RunStatus.SUCCEEDED, result))
    assert not store.finish("r1", Outcome(RunStatus.CANCELLED, error="too late"))
    assert store.interrupt_active("restart") == []
    record = store.get("r1")
    assert record is not None
    assert record.status == "succeeded" and record.result == result and record.error is None


def test_concurrent_finishers_on_two_nodes_agree_on_one_winner(
    make_store: Callable[[], RunRecords],
) -> None:
    stores = [make_store(), make_store()]
    for number in range(20):
        stores[0].insert(f"r{number}", RunRequest(code="x"))
    wins: list[str] = []
    lock = threading.Lock()

    def finisher(store: RunRecords, status: RunStatus) -> None:
        for number in range(20):
            if store.finish(f"r{number}", Outcome(status)):
                with lock:
                    wins.append(f"r{number}")

    threads = [
        threading.Thread(target=finisher, args=(s, st))
        for s, st in zip(stores, (RunStatus.CANCELLED, RunStatus.INTERRUPTED), strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == sorted(f"r{n}" for n in range(20))


def test_unknown_run_is_none_and_not_known(store: RunRecords) -> None:
    store.insert("r1", RunRequest(code="x"))
    assert store.get("nope") is None
    assert store.known(["r1", "nope"]) == {"r1"}
    assert store.known([]) == set()


def test_interrupt_active_ends_queued_and_running_with_the_reason(store: RunRecords) -> None:
    store.insert("q", RunRequest(code="x"))
    store.insert("r", RunRequest(code="x"))
    store.mark_running("r")
    assert sorted(store.interrupt_active("gone")) == ["q", "r"]
    queued, running = store.get("q"), store.get("r")
    assert queued is not None and queued.status == "interrupted"
    assert queued.error == "gone (the run was queued)"
    assert running is not None and running.error == "gone (the run was running)"


def test_list_pages_newest_first_with_a_status_filter(store: RunRecords) -> None:
    for number in range(5):
        store.insert(f"r{number}", RunRequest(code="x"), now=1000.0 + number)
    store.finish("r1", Outcome(RunStatus.CANCELLED))
    page, total = store.list(limit=2, offset=1)
    assert [r.id for r in page] == ["r3", "r2"] and total == 5
    cancelled, count = store.list(status="cancelled")
    assert [r.id for r in cancelled] == ["r1"] and count == 1
    recent, count = store.list(since=1003.0)
    assert [r.id for r in recent] == ["r4", "r3"] and count == 2
    assert store.list(status="cancelled", since=1002.0) == ([], 0)


def test_retention_keeps_active_records_and_the_newest(store: RunRecords) -> None:
    for number in range(6):
        store.insert(f"r{number}", RunRequest(code="x"), now=1000.0 + number)
    for number in range(5):
        store.finish(f"r{number}", Outcome(RunStatus.SUCCEEDED))
    # r0 is too old; of the rest, keep the newest 3 records (r5 is still queued).
    deleted = store.apply_retention(max_age_s=100.0, max_runs=3, now=1100.5)
    assert deleted == 3
    assert store.known([f"r{n}" for n in range(6)]) == {"r3", "r4", "r5"}


def test_probe_writable(store: RunRecords) -> None:
    store.probe_writable()
