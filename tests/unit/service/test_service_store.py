"""The SQLite run store: durable inserts, one terminal state, recovery, readiness probe."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_data_agent.errors import ConfigurationError
from ai_data_agent.models import RunRequest, RunResult, RunStatus
from ai_data_agent.service.records import Outcome
from ai_data_agent.service.store import RunStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    store = RunStore(tmp_path / "nested" / "runs.sqlite3")
    store.open()
    yield store
    store.close()


def test_open_creates_the_directory_in_wal_mode(store: RunStore) -> None:
    assert store.path.is_file()
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_a_record_is_visible_to_another_connection_once_inserted(store: RunStore) -> None:
    store.insert("r1", RunRequest(code="print(1)", env={"A": "b"}))
    conn = sqlite3.connect(store.path)
    try:
        row = conn.execute("SELECT status, request FROM runs WHERE id = 'r1'").fetchone()
    finally:
        conn.close()
    assert row[0] == "queued"
    assert RunRequest.model_validate_json(row[1]).env == {"A": "b"}


def test_exactly_one_terminal_state(store: RunStore) -> None:
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


def test_concurrent_finishers_agree_on_one_winner(store: RunStore) -> None:
    for number in range(20):
        store.insert(f"r{number}", RunRequest(code="x"))
    wins: list[str] = []
    lock = threading.Lock()

    def finisher(status: RunStatus) -> None:
        for number in range(20):
            if store.finish(f"r{number}", Outcome(status)):
                with lock:
                    wins.append(f"r{number}")

    threads = [
        threading.Thread(target=finisher, args=(s,))
        for s in (RunStatus.CANCELLED, RunStatus.INTERRUPTED)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == sorted(f"r{n}" for n in range(20))


def test_unknown_run_is_none(store: RunStore) -> None:
    assert store.get("nope") is None


def test_probe_writable_fails_once_closed(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite3")
    store.open()
    store.probe_writable()
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store.probe_writable()


def test_open_reports_an_unusable_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigurationError, match="AI_DATA_AGENT_DATA_DIR"):
        RunStore(tmp_path / "file" / "runs.sqlite3").open()


def test_records_survive_reopening(tmp_path: Path) -> None:
    first = RunStore(tmp_path / "runs.sqlite3")
    first.open()
    first.insert("r1", RunRequest(code="x"))
    first.close()
    second = RunStore(tmp_path / "runs.sqlite3")
    second.open()
    try:
        assert second.interrupt_active("gone") == ["r1"]
        record = second.get("r1")
        assert record is not None and record.status == "interrupted"
    finally:
        second.close()
