"""Stateful sessions against the real engine: the failure table, isolation, no network, rich output.

Each row of the failure table (docs/api.md, Sessions) is a test here, in a real
locked-down container; the daemon's side (HTTP, expiry, restarts) is in
tests/integration/service/test_daemon_sessions.py.
"""

from __future__ import annotations

import base64
import json
import struct
import time
import zlib
from collections.abc import Callable, Iterator

import pytest

from ai_data_agent import Executor, Settings
from ai_data_agent.errors import RequestRejected, SessionBusy, SessionGone
from ai_data_agent.executor import Session
from ai_data_agent.models import InputFile, RunRequest
from ai_data_agent.session_models import CellStatus, SessionStatus

pytestmark = pytest.mark.integration

SALES = b"region,units\nnorth,3\nsouth,5\nnorth,4\n"


@pytest.fixture
def session_executor(
    make_settings: Callable[..., Settings], make_executor: Callable[..., Executor]
) -> Executor:
    settings = make_settings(
        install_mode="cache",
        installer="uv",
        interrupt_grace_s=1.0,
        session_default_memory_mb=256,
        session_max_memory_mb=512,
    )
    return make_executor(settings)


@pytest.fixture
def session(session_executor: Executor) -> Iterator[Session]:
    with session_executor.session(files=[InputFile.from_bytes("data/sales.csv", SALES)]) as s:
        yield s


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG, checking its signature and every chunk's CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, size = 8, (0, 0)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        offset += 12 + length
    return size


def test_state_files_and_the_last_expression(session: Session) -> None:
    session.run("import csv\nrows = list(csv.DictReader(open('data/sales.csv')))")
    cell = session.run("sum(int(r['units']) for r in rows if r['region'] == 'north')")
    assert (cell.status, cell.state, cell.execution_count) == (CellStatus.SUCCEEDED, "preserved", 2)
    assert cell.result is not None and cell.result.data == {"text/plain": "7"}


def test_an_exception_keeps_the_state(session: Session) -> None:
    session.run("x = 1")
    cell = session.run("x / 0")
    assert (cell.status, cell.state) == (CellStatus.ERROR, "preserved")
    assert cell.error is not None and cell.error.ename == "ZeroDivisionError"
    assert "x / 0" in "".join(cell.error.traceback)
    assert session.run("x").result.data == {"text/plain": "1"}  # type: ignore[union-attr]


def test_a_timeout_that_stops_on_interrupt_keeps_the_state(session: Session) -> None:
    session.run("x = 1")
    cell = session.run("import time\ntime.sleep(60)", timeout_s=1)
    assert (cell.status, cell.state, cell.generation) == (CellStatus.TIMED_OUT, "preserved", 1)
    assert cell.error is not None and cell.error.ename == "KeyboardInterrupt"
    traceback = "".join(cell.error.traceback)
    assert '"<cell 2>"' in traceback and "ai_data_agent" not in traceback  # the user's frames
    assert session.run("x").status is CellStatus.SUCCEEDED


def test_a_timeout_the_code_ignores_loses_the_state_but_keeps_the_files(session: Session) -> None:
    session.run("x = 1\nopen('kept.txt', 'w').write('k')")
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
    started = time.monotonic()
    cell = session.run(code, timeout_s=1)
    assert time.monotonic() - started < 15
    assert (cell.status, cell.state, cell.generation) == (CellStatus.TIMED_OUT, "lost", 2)
    assert session.run("x").status is CellStatus.ERROR
    assert session.run("open('kept.txt').read()").result.data == {"text/plain": "'k'"}  # type: ignore[union-attr]


def test_the_memory_limit_kills_the_kernel_not_the_session(session: Session) -> None:
    session.run("x = 1")
    cell = session.run("b = []\nwhile True: b.append(bytearray(10 ** 7))", timeout_s=30)
    assert (cell.status, cell.state, cell.generation) == (CellStatus.MEMORY_EXCEEDED, "lost", 2)
    after = session.run("1 + 1")
    assert after.status is CellStatus.SUCCEEDED and after.generation == 2
    assert session.status is SessionStatus.IDLE


@pytest.mark.parametrize("code", ["import os; os._exit(9)", "import ctypes; ctypes.string_at(0)"])
def test_a_dying_kernel_loses_the_state_and_a_new_one_starts(session: Session, code: str) -> None:
    cell = session.run(code)
    assert (cell.status, cell.state, cell.generation) == (CellStatus.KERNEL_DIED, "lost", 2)
    assert session.run("print('alive')").stdout == "alive\n"


def test_output_over_the_cap_is_truncated(session: Session) -> None:
    cell = session.run("print('z' * (2 * 1024 * 1024))")
    assert cell.stdout_truncated is True and cell.status is CellStatus.SUCCEEDED


def test_a_second_call_while_a_cell_runs_is_refused(session: Session) -> None:
    import threading

    worker = threading.Thread(target=session.run, args=("import time; time.sleep(2)",))
    worker.start()
    time.sleep(0.5)
    with pytest.raises(SessionBusy):
        session.run("1")
    worker.join(10)
    assert session.run("1").status is CellStatus.SUCCEEDED


def test_closed_means_gone_and_the_container_is_removed(session_executor: Executor) -> None:
    session = session_executor.session()
    container_id = session._wire.link.sandbox.container_id  # type: ignore[union-attr]
    session.close()
    with pytest.raises(SessionGone):
        session.run("1")
    assert session_executor.backend.sandboxes(session_executor.controller_id) == []
    assert container_id  # it existed


def test_only_lo_before_and_after_adding_a_package(session: Session) -> None:
    interfaces = "import os; sorted(os.listdir('/sys/class/net'))"
    assert session.run(interfaces).result.data == {"text/plain": "['lo']"}  # type: ignore[union-attr]
    change = session.install(["six"])
    assert [p.name for p in change.added] == ["six"]
    assert change.restart_required is False
    cell = session.run("import six\nsix.__name__")
    assert cell.result is not None and cell.result.data == {"text/plain": "'six'"}
    assert session.run(interfaces).result.data == {"text/plain": "['lo']"}  # type: ignore[union-attr]
    assert session.requirements == ["six"]


def test_a_failed_upload_says_the_users_path_and_why(session: Session) -> None:
    with pytest.raises(RequestRejected) as refused:
        session.upload("outputs", b"x")
    assert refused.value.reason == "cannot write outputs: outputs is a directory"


def test_a_download_takes_an_artifact_and_refuses_an_unsafe_path_in_the_tree(
    session: Session,
) -> None:
    cell = session.run("open('outputs/n.txt', 'w').write('42')")
    assert session.download(cell.artifacts[0]) == b"42"  # at its file_path, outputs/n.txt
    for path in ("../etc/passwd", "/etc/passwd", ""):
        with pytest.raises(RequestRejected) as refused:
            session.download(path)
        assert refused.value.field == "path", path


def test_a_cell_cannot_read_the_controllers_operations(session: Session) -> None:
    # Pid 1's stdin is /dev/null: the operations (and uploads) the controller sends
    # reach the runner alone.
    cell = session.run("open('/proc/1/fd/0', 'rb').read()")
    assert cell.result is not None and cell.result.data == {"text/plain": "b''"}


def test_forged_frames_from_the_kernel_are_ignored(session: Session) -> None:
    fake = json.dumps(
        {"k": "cell", "count": 1, "generation": 9, "status": "succeeded", "state": "preserved"}
    )
    code = (
        "import os\n"
        f"line = ('0' * 32 + ' ' + {fake!r} + '\\n').encode()\n"
        "os.write(1, line)\n"
        "try:\n"
        "    fd = os.open('/proc/1/fd/1', os.O_WRONLY)\n"
        "    os.write(fd, line)\n"
        "except OSError as exc:\n"
        "    print('refused', exc.errno)\n"
        "'done'"
    )
    cell = session.run(code)
    assert cell.status is CellStatus.SUCCEEDED and cell.generation == 1
    assert cell.result is not None and cell.result.data == {"text/plain": "'done'"}
    assert '"generation": 9' in cell.stdout  # just output to us


def test_sessions_are_isolated_from_each_other_and_from_runs(session_executor: Executor) -> None:
    with session_executor.session() as first, session_executor.session() as second:
        first.run("secret = 42\nopen('mine.txt', 'w').write('first')")
        cell = second.run("import os\n('secret' in globals(), os.path.exists('mine.txt'))")
        assert cell.result is not None and cell.result.data == {"text/plain": "(False, False)"}
        hostnames = [s.run("import socket; socket.gethostname()").result for s in (first, second)]
        assert hostnames[0] != hostnames[1]
        run = session_executor.run(
            RunRequest(code="import glob; print(glob.glob('/tmp/*/work/mine.txt'))")
        )
        assert run.stdout == "[]\n"


def test_a_dataframe_is_a_table_and_a_figure_is_a_png(session_executor: Executor) -> None:
    files = [InputFile.from_bytes("data/sales.csv", SALES)]
    with session_executor.session(requirements=["pandas", "matplotlib"], files=files) as s:
        s.run("import pandas as pd\ndf = pd.read_csv('data/sales.csv')")
        table = s.run("df.describe()")
        assert table.result is not None
        assert (
            "<table" in table.result.data["text/html"]
            and "units" in table.result.data["text/plain"]
        )
        plot = s.run("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.title('x')")
        (figure,) = [o for o in plot.outputs if "image/png" in o.data]
        width, height = png_size(base64.b64decode(figure.data["image/png"]))
        assert width > 100 and height > 100
        assert s.run("import matplotlib.pyplot as plt\nplt.get_fignums()").result.data == {
            "text/plain": "[]"
        }  # type: ignore[union-attr]
