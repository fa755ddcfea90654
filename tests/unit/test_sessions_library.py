"""The library's `Session` against the real runner as a local process (`FakeBackend`)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeBackend

from ai_data_agent.errors import FileNotFound, RequestRejected, SessionBusy, SessionGone
from ai_data_agent.executor.core import Executor
from ai_data_agent.executor.events import RunEvent
from ai_data_agent.models import InputFile
from ai_data_agent.session_models import CellStatus, SessionRequest, SessionStatus
from ai_data_agent.settings import Settings


def executor(tmp: Path, **settings: Any) -> Executor:
    backend = FakeBackend(tmp, emulate_isolation=True)
    return Executor(Settings(interrupt_grace_s=0.5, **settings), backend=backend)


def test_a_session_keeps_state_and_reports_each_cell(sandbox_tmp: Path) -> None:
    ex = executor(sandbox_tmp)
    files = [InputFile.from_bytes("data/a.csv", b"a,b\n1,2\n")]
    events: list[RunEvent] = []
    with ex.session(SessionRequest(files=files, env={"GREETING": "hi"})) as session:
        assert session.status is SessionStatus.IDLE and session.generation == 1
        first = session.run(
            "import os\nrows = open('data/a.csv').read().splitlines()\nprint(os.environ['GREETING'])"
        )
        second = session.run("len(rows)", on_event=events.append)
        assert (first.status, first.stdout, first.execution_count) == (
            CellStatus.SUCCEEDED,
            "hi\n",
            1,
        )
        assert second.result is not None and second.result.data == {"text/plain": "2"}
        assert (second.execution_count, second.generation, second.state) == (2, 1, "preserved")
        assert [e.kind for e in events][-1] == "result"
        info = session.info()
        assert (info.execution_count, info.status) == (2, SessionStatus.IDLE)
    assert session.status is SessionStatus.CLOSED
    assert ex.backend.started[0].removed  # type: ignore[attr-defined]


def test_files_round_trip_and_are_listed(sandbox_tmp: Path) -> None:
    with executor(sandbox_tmp).session() as session:
        assert session.upload("./in//x.txt", b"payload") == "in/x.txt"
        assert [(f.path, f.size) for f in session.files()] == [("in/x.txt", 7)]
        session.run("open('outputs/y.txt', 'w').write(open('in/x.txt').read().upper())")
        assert session.download("outputs/y.txt") == b"PAYLOAD"
        with pytest.raises(FileNotFound, match=r"no file nope\.txt") as missing:
            session.download("nope.txt")
        assert missing.value.path == "nope.txt"
        with pytest.raises(RequestRejected, match="not a regular file"):
            session.download("outputs")
        with pytest.raises(RequestRejected):
            session.upload("../escape.txt", b"x")


def test_a_second_call_while_a_cell_runs_is_busy_and_interrupt_works(sandbox_tmp: Path) -> None:
    with executor(sandbox_tmp).session() as session:
        results: list[Any] = []
        worker = threading.Thread(
            target=lambda: results.append(
                session.run("import time\nfor i in range(200): time.sleep(0.05)")
            )
        )
        worker.start()
        deadline = time.monotonic() + 10
        while not session._in_cell and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        with pytest.raises(SessionBusy):
            session.run("1")
        with pytest.raises(SessionBusy):
            session.files()
        assert session.interrupt() is True
        worker.join(10)
        (cell,) = results
        assert (cell.status, cell.state) == (CellStatus.INTERRUPTED, "preserved")
        assert session.interrupt() is False  # nothing runs now
        assert session.run("1 + 1").status is CellStatus.SUCCEEDED


def test_a_dead_sandbox_makes_the_session_gone(sandbox_tmp: Path) -> None:
    ex = executor(sandbox_tmp)
    session = ex.session()
    ex.backend.started[0].kill()  # type: ignore[attr-defined]
    with pytest.raises(SessionGone):
        session.run("1")
    assert session.status is SessionStatus.LOST
    with pytest.raises(SessionGone):
        session.files()
    session.close()  # idempotent after loss


def test_per_run_install_mode_refuses_sessions_with_requirements(sandbox_tmp: Path) -> None:
    ex = executor(sandbox_tmp, install_mode="per_run")
    with pytest.raises(RequestRejected, match="install_mode is per_run"):
        ex.session(requirements=["six"])


def test_session_limits_come_from_the_session_caps(sandbox_tmp: Path) -> None:
    ex = executor(sandbox_tmp, session_max_memory_mb=512, session_default_memory_mb=256)
    with pytest.raises(RequestRejected, match="above the server cap"):
        ex.session(memory_mb=1024)
    with ex.session() as session:
        assert session.limits.memory_mb == 256
        assert ex.backend.specs[0].memory_bytes == 256 * 1024 * 1024  # type: ignore[attr-defined]
        assert ex.backend.specs[0].network is None  # type: ignore[attr-defined]


def test_restart_loses_variables_and_keeps_files(sandbox_tmp: Path) -> None:
    with executor(sandbox_tmp).session() as session:
        session.run("x = 1\nopen('kept.txt', 'w').write('k')")
        assert session.restart() == 2
        cell = session.run("open('kept.txt').read()")
        assert cell.result is not None and cell.result.data == {"text/plain": "'k'"}
        assert session.run("x").status is CellStatus.ERROR
