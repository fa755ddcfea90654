"""Checkpoints against hostile and broken input, on the real engine: a ``__reduce__`` that loops
when saved or restored or reaches for the host's files, a blob or a record changed on disk,
a checkpoint over the cap, another tenant. The daemon's own path is in
tests/integration/service/test_daemon_checkpoints.py."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ai_data_agent import Executor, Settings
from ai_data_agent.checkpoint_models import ForkRequest
from ai_data_agent.errors import CheckpointFailed, NotFound, RequestTooLarge
from ai_data_agent.service.checkpoint_records import KEY_FILENAME, Signer, load_key
from ai_data_agent.service.checkpoint_store import CHECKPOINTS_FILENAME, CheckpointStore
from ai_data_agent.service.checkpoints import Checkpoints
from ai_data_agent.service.kept_sessions import KeptSessions
from ai_data_agent.service.metrics import ServiceMetrics
from ai_data_agent.service.ownership import TenantCheckpoints
from ai_data_agent.service.session_store import SESSIONS_FILENAME, SessionStore
from ai_data_agent.service.sessions import SessionManager
from ai_data_agent.session_models import CellRequest, CellStatus, SessionRequest, SessionStatus
from ai_data_agent.storage import LocalBlobStore
from ai_data_agent.tenant_models import Principal, Role
from tests.support.wait import poll

pytestmark = pytest.mark.integration

KEEPS_LOOPING = """
class Evil:
    def __reduce__(self):   # restored: a loop deaf to the interrupt
        return (exec, ("import signal\\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\\nwhile True: pass",))
evil = Evil()
"""


def reaches_for(host_file: Path, marker: Path) -> str:
    return f"""
import os
class Snoop:
    def __reduce__(self):   # restored: open the host's file by its path
        return (open, ({str(host_file)!r},))
class Marker:
    def __reduce__(self):   # restored: whoever unpickles this runs it
        return (os.system, ({f"touch {marker}"!r},))
snoop, marker, keep = Snoop(), Marker(), 42
"""


@pytest.fixture
def kept(
    make_settings: Callable[..., Settings],
    make_executor: Callable[..., Executor],
    tmp_path: Path,
) -> Iterator[Callable[..., KeptSessions]]:
    """The daemon's sessions in this process (its stores under ``tmp_path``)."""
    made: list[KeptSessions] = []

    def build(**overrides: object) -> KeptSessions:
        settings = make_settings(data_dir=tmp_path, **overrides)
        executor = make_executor(settings)
        metrics = ServiceMetrics()
        store = SessionStore(tmp_path / SESSIONS_FILENAME, node=executor.controller_id)
        sessions = KeptSessions(
            Checkpoints(
                settings,
                SessionManager(settings, executor, store, metrics),
                CheckpointStore(tmp_path / CHECKPOINTS_FILENAME),
                LocalBlobStore(settings.storage_root),
                Signer(lambda: load_key(tmp_path / KEY_FILENAME)),
                metrics,
            )
        )
        sessions.start()
        made.append(sessions)
        return sessions

    yield build
    for sessions in made:
        for info in sessions.sessions():
            sessions.close(info.id)
        sessions.stop()


def run(sessions: KeptSessions, session_id: str, code: str) -> object:
    handle = sessions.submit_cell(session_id, CellRequest(code=code))
    handle.wait()
    assert handle.result is not None, handle.error
    return handle.result


def test_hostile_reduces_run_only_in_the_sandbox_and_a_runaway_restore_is_contained(
    kept: Callable[..., KeptSessions], tmp_path: Path
) -> None:
    sessions = kept()
    host_file, marker = tmp_path / "host-secret.txt", tmp_path / "host-marker"
    host_file.write_text("the host's secret")
    sid = sessions.create(SessionRequest(cell_timeout_s=3.0)).id
    run(sessions, sid, reaches_for(host_file, marker))
    first = sessions.checkpoint(sid)
    assert {"snoop", "marker", "keep"} <= set(first.kept)
    run(sessions, sid, KEEPS_LOOPING)
    sessions.checkpoint(sid)

    fork = sessions.fork(sid, ForkRequest(checkpoint=first.seq))
    report = fork.restore
    assert report is not None and report.state == "restored"
    assert "keep" in report.restored
    (snooped,) = [v for v in report.lost if v.name == "snoop"]
    assert "FileNotFoundError" in snooped.reason  # the host's path is not in the sandbox
    assert not marker.exists()  # nothing was unpickled on this host
    cell = run(sessions, fork.id, "keep")
    assert cell.result.data["text/plain"] == "42" and cell.state == "restored"

    sessions.pause(sid)
    looped = sessions.resume(sid)  # the loop ignores the interrupt: the kernel is replaced
    assert looped.state == "lost" and looped.checkpoint == 3  # the pause took the third
    cell = run(sessions, sid, "1 + 1")  # still usable
    assert cell.status is CellStatus.SUCCEEDED and cell.result.data["text/plain"] == "2"
    assert cell.state == "lost" and cell.restore == looped


def test_a_serialiser_that_loops_or_a_checkpoint_over_the_cap_leaves_the_session_as_it_was(
    kept: Callable[..., KeptSessions],
) -> None:
    sessions = kept(checkpoint_timeout_s=2.0, checkpoint_max_bytes=64 * 1024)
    sid = sessions.create(SessionRequest()).id
    run(sessions, sid, "big = bytes(200_000)")
    with pytest.raises(RequestTooLarge):
        sessions.checkpoint(sid)
    run(
        sessions,
        sid,
        "del big\nclass Slow:\n    def __reduce__(self):\n        while True: pass\nslow = Slow()",
    )
    with pytest.raises(CheckpointFailed, match="while writing slow"):
        sessions.checkpoint(sid)
    run(sessions, sid, "del slow\nn = 7")
    assert sessions.checkpoint(sid).kept == ["n", "Slow"]
    assert run(sessions, sid, "n").result.data["text/plain"] == "7"


def test_a_changed_blob_or_record_is_refused_and_another_tenant_finds_nothing(
    kept: Callable[..., KeptSessions], tmp_path: Path
) -> None:
    sessions = kept()
    owned = TenantCheckpoints(sessions, sessions)
    tenant_a, tenant_b = (Principal(tenant=t, role=Role.AGENT) for t in ("a", "b"))
    sid = sessions.create(SessionRequest(), tenant="a").id
    run(sessions, sid, "secret = 'tenant a'")
    info = owned.checkpoint(tenant_a, sid)
    for call in (
        lambda: owned.checkpoint(tenant_b, sid),
        lambda: owned.checkpoints(tenant_b, sid),
        lambda: owned.resume(tenant_b, sid),
        lambda: owned.fork(tenant_b, sid, ForkRequest(checkpoint=info.seq)),
        lambda: owned.pause(tenant_b, sid),
    ):
        with pytest.raises(NotFound):
            call()
    admins = owned.fork(Principal.builtin_admin(), sid, ForkRequest(checkpoint=info.seq))
    assert admins.tenant == "admin"  # a fork is the caller's
    with pytest.raises(NotFound):
        owned.checkpoints(tenant_a, admins.id)
    sessions.close(admins.id)
    assert owned.pause(tenant_a, sid).status is SessionStatus.PAUSED
    assert sessions.keeper.records.latest(sid, tenant="a") is not None  # the session's tenant

    db = sqlite3.connect(tmp_path / CHECKPOINTS_FILENAME)
    (text,) = db.execute("SELECT record FROM checkpoints WHERE session_id = ?", (sid,)).fetchone()
    db.execute(
        "UPDATE checkpoints SET record = ?",
        (text.replace('"execution_count":1', '"execution_count":9'),),
    )
    db.commit()
    with pytest.raises(CheckpointFailed, match="signature"):
        sessions.resume(sid)
    db.execute("UPDATE checkpoints SET record = ?", (text,))
    db.commit()
    db.close()

    record = sessions.keeper.records.latest(sid, tenant=None)
    assert record is not None
    blob = sessions.keeper.blobs.path(record.namespace_digest)
    assert blob is not None
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:-1] + b"!")
    with pytest.raises(CheckpointFailed, match="no longer has the content"):
        sessions.resume(sid)
    assert sessions.get(sid).status is SessionStatus.PAUSED  # refused, not lost


def test_cells_run_while_the_checkpoint_after_the_last_one_streams_out(
    kept: Callable[..., KeptSessions],
) -> None:
    sessions = kept(checkpoint_after_each_cell=True)
    sid = sessions.create(SessionRequest()).id
    run(sessions, sid, "big = bytes(range(256)) * 80_000\nn = 0")  # 20 MB to stream
    for i in range(1, 6):  # each cell waits for the last capture only, not for the bytes
        cell = run(sessions, sid, "n += 1\nprint('x' * 10_000)\nn")
        assert cell.result.data["text/plain"] == str(i) and cell.stdout == "x" * 10_000 + "\n"
    sessions.keeper.settle(sid)

    def stored() -> bool:
        latest = sessions.keeper.records.latest(sid, tenant=None)
        return latest is not None and latest.execution_count == 6

    poll(stored, timeout_s=60, what="the checkpoint after the last cell")
    sessions.pause(sid)
    assert run(sessions, sid, "n, len(big)").result.data["text/plain"] == "(5, 20480000)"
