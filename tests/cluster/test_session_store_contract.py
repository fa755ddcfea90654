"""The same session-registry tests against SQLite and PostgreSQL: one contract, two stores."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ai_data_agent.service.cluster.db import Database
from ai_data_agent.service.cluster.pg_sessions import PgSessionRegistry
from ai_data_agent.service.cluster.pg_store import PgRunStore
from ai_data_agent.service.records import SessionRegistry
from ai_data_agent.service.session_store import SESSIONS_FILENAME, SessionStore
from ai_data_agent.session_models import CellResult, CellStatus, SessionInfo, SessionStatus
from ai_data_agent.settings import Settings

pytestmark = pytest.mark.cluster
NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
MakeRegistry = Callable[[str], SessionRegistry]


@pytest.fixture(params=["sqlite", "postgres"])
def make_registry(
    request: pytest.FixtureRequest, tmp_path: Path, cluster_settings: Callable[..., Settings]
) -> Iterator[MakeRegistry]:
    """Registries of one database, each written by the node it is given."""
    closing: list[Callable[[], None]] = []
    api: PgRunStore | None = None
    if request.param == "postgres":
        api = PgRunStore(Database(cluster_settings("api"), role="api"), migrate=True)
        api.open()  # the schema, which an API node migrates
        closing.append(api.close)

    def build(node: str) -> SessionRegistry:
        registry: SessionRegistry
        if api is None:
            registry = SessionStore(tmp_path / SESSIONS_FILENAME, node=node)
        else:
            registry = PgSessionRegistry(api.db, node=node, prunes=True)
        registry.open()
        closing.append(registry.close)
        return registry

    yield build
    for close in reversed(closing):
        close()


@pytest.fixture
def registry(make_registry: MakeRegistry) -> SessionRegistry:
    return make_registry("node-1")


def session(
    session_id: str, status: SessionStatus = SessionStatus.IDLE, **fields: object
) -> SessionInfo:
    values: dict[str, object] = {
        "id": session_id,
        "status": status,
        "created_at": NOW,
        "last_activity_at": NOW,
        "idle_expires_at": NOW + timedelta(minutes=5),
    }
    return SessionInfo.model_validate({**values, **fields})


def cell(session_id: str, n: int, stdout: str = "") -> CellResult:
    return CellResult(
        session_id=session_id,
        execution_count=n,
        generation=0,
        status=CellStatus.SUCCEEDED,
        state="preserved",
        stdout=stdout,
    )


def test_a_session_reads_back_as_put_and_its_latest_state_wins(registry: SessionRegistry) -> None:
    first = session("s1", SessionStatus.STARTING, requirements=["pandas"])
    registry.put(first)
    assert registry.get("s1") == first
    idle = session("s1", execution_count=2, requirements=["pandas"])
    registry.put(idle)
    assert registry.get("s1") == idle
    assert registry.get("nope") is None


def test_another_node_sees_what_one_wrote(make_registry: MakeRegistry) -> None:
    writer, reader = make_registry("node-1"), make_registry("node-2")
    writer.put(session("s1"))
    writer.put_cell(cell("s1", 1, "hi\n"))
    found = reader.get("s1")
    assert found is not None and found.status == SessionStatus.IDLE
    assert reader.get_cell("s1", 1) == cell("s1", 1, "hi\n")


def test_a_cell_keeps_its_code_and_an_earlier_record_has_none(registry: SessionRegistry) -> None:
    registry.put(session("s1"))
    registry.put_cell(cell("s1", 1, "hi\n"), "print('hi')\n")
    registry.put_cell(cell("s1", 2))  # as a writer that does not know the code
    assert registry.cell_code("s1", 1) == "print('hi')\n"
    assert registry.cell_code("s1", 2) is None and registry.cell_code("s1", 3) is None
    registry.put_cell(cell("s1", 1, "again\n"), "print('again')")
    assert registry.cell_code("s1", 1) == "print('again')"
    assert registry.get_cell("s1", 1) == cell("s1", 1, "again\n")


def test_an_ended_session_is_never_written_back_to_live(registry: SessionRegistry) -> None:
    registry.put(session("s1"))
    closed = session("s1", SessionStatus.CLOSED, error="closed by request", idle_expires_at=None)
    registry.put(closed)
    registry.put(session("s1", SessionStatus.BUSY))  # a late write of the node that held it
    assert registry.get("s1") == closed


def test_a_node_that_starts_again_loses_the_live_sessions_it_held(
    registry: SessionRegistry,
) -> None:
    registry.put(session("live"))
    registry.put(session("busy", SessionStatus.BUSY))
    ended = session("ended", SessionStatus.EXPIRED, idle_expires_at=None)
    registry.put(ended)
    assert sorted(registry.lose_live("the node restarted")) == ["busy", "live"]
    lost = registry.get("live")
    assert lost is not None
    assert (lost.status, lost.error, lost.idle_expires_at) == (
        SessionStatus.LOST,
        "the node restarted",
        None,
    )
    assert registry.get("ended") == ended
    assert registry.lose_live("again") == []


def test_recent_lists_live_sessions_first_then_the_newest(registry: SessionRegistry) -> None:
    registry.put(session("old-live"))
    registry.put(session("ended", SessionStatus.CLOSED))
    registry.put(session("new-live"))
    registry.put(session("newest-ended", SessionStatus.LOST))
    assert [s.id for s in registry.recent()] == ["new-live", "old-live", "newest-ended", "ended"]
    assert [s.id for s in registry.recent(limit=1)] == ["new-live"]


def test_a_cells_result_is_kept_per_number_and_replaced(registry: SessionRegistry) -> None:
    registry.put(session("s1"))
    registry.put_cell(cell("s1", 1, "one\n"))
    registry.put_cell(cell("s1", 2, "two\n"))
    registry.put_cell(cell("s1", 2, "again\n"))
    assert registry.get_cell("s1", 1) == cell("s1", 1, "one\n")
    assert registry.get_cell("s1", 2) == cell("s1", 2, "again\n")
    assert registry.get_cell("s1", 3) is None
    assert registry.get_cell("s2", 1) is None


def test_retention_keeps_live_sessions_and_the_newest_ended_ones(
    registry: SessionRegistry,
) -> None:
    for number in range(4):
        registry.put(session(f"ended{number}", SessionStatus.CLOSED))
        registry.put_cell(cell(f"ended{number}", 1))
    registry.put(session("live"))
    assert registry.delete_before(2) == 2
    assert {s.id for s in registry.recent()} == {"live", "ended3", "ended2"}
    assert registry.get("ended0") is None and registry.get_cell("ended0", 1) is None
    assert registry.get_cell("ended3", 1) is not None
    assert registry.delete_before(2) == 0
