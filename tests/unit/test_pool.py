"""`WarmPool` against a backend whose `start` the test controls.

Each test waits with `poll` (which fails with the pool's state) rather than
sleeping; TTLs and backoffs are made small where the behaviour needs time to pass.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from fakes import EngineStub, frame_line, warm_token

from ai_data_agent.errors import ExecutorError
from ai_data_agent.executor import pool as pool_module
from ai_data_agent.executor.backend import STDOUT
from ai_data_agent.executor.pool import WarmPool
from ai_data_agent.executor.spec import ContainerSpec, build_spec
from ai_data_agent.limits import default_limits
from ai_data_agent.settings import Settings
from tests.support.logs import LogLine
from tests.support.wait import poll

SETTINGS = Settings()
MakePool = Callable[..., WarmPool]


def spec_for(pool_id: str, memory_mb: int = 256) -> ContainerSpec:
    limits = default_limits(SETTINGS).model_copy(update={"memory_mb": memory_mb})
    return build_spec(
        SETTINGS, limits, image="fake", run_id=pool_id, controller_id="c", needs_install=False
    )


@dataclass
class GateSession:
    """A started sandbox: records what happens to it."""

    container_id: str
    born: float = field(default_factory=time.monotonic)
    calls: list[str] = field(default_factory=list)
    fail_remove: bool = False
    replies: list[bytes] = field(default_factory=list)

    def send(self, data: bytes) -> None:
        self.calls.append("send")
        token = warm_token(data)
        if token is not None:  # a pooled sandbox's warm message: report as a runner does
            self.replies.append(frame_line(token, {"k": "warm", "imported": [], "rss_kb": 20480}))

    def read(self, timeout_s: float) -> tuple[int, bytes] | None:
        return (STDOUT, self.replies.pop(0)) if self.replies else None

    def remove(self) -> None:
        self.calls.append("remove")
        if self.fail_remove:
            raise ExecutorError("injected remove failure", step="remove")

    @property
    def removed(self) -> bool:
        return "remove" in self.calls


class GateBackend(EngineStub):
    """`start` fails while ``failures`` remain, and waits for ``gate`` when it is closed."""

    def __init__(self) -> None:
        self.started: list[GateSession] = []
        self.start_times: list[float] = []
        self.failures = 0
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_remove = False
        self.live_at_start: list[int] = []
        self._lock = threading.Lock()

    def start(self, spec: ContainerSpec, run_id: str) -> GateSession:
        with self._lock:
            self.start_times.append(time.monotonic())
            self.live_at_start.append(len(self.live()))
            failing = self.failures > 0
            self.failures -= failing
        self.entered.set()
        if failing:
            raise ExecutorError("injected start failure", run_id=run_id, step="start")
        self.gate.wait(10)
        session = GateSession(f"{run_id}-{len(self.started)}", fail_remove=self.fail_remove)
        with self._lock:
            self.started.append(session)
        return session

    def live(self) -> list[GateSession]:
        return [s for s in self.started if not s.removed]


@pytest.fixture
def backend() -> GateBackend:
    return GateBackend()


@pytest.fixture
def make_pool(backend: GateBackend) -> Iterator[MakePool]:
    pools: list[WarmPool] = []

    def make(*, size: int = 2, ttl_s: float = 300.0) -> WarmPool:
        pools.append(WarmPool(backend, size=size, ttl_s=ttl_s))
        return pools[-1]

    yield make
    backend.gate.set()
    for made in pools:
        made.close()


def state(pool: WarmPool, backend: GateBackend) -> str:
    return (
        f"idle={pool.idle_count()} taken={pool.taken} missed={pool.missed} "
        f"started={len(backend.started)} live={len(backend.live())}"
    )


def filled(pool: WarmPool, backend: GateBackend, count: int | None = None) -> None:
    want = pool.size if count is None else count
    poll(
        lambda: pool.idle_count() == want,
        timeout_s=5,
        what=f"{want} idle sandboxes",
        diagnostics=lambda: state(pool, backend),
    )


def test_take_without_a_profile_is_none_and_no_miss(
    make_pool: MakePool, backend: GateBackend
) -> None:
    pool = make_pool()
    assert pool.take(spec_for("run")) is None
    assert pool.missed == 0 and backend.started == []


def test_the_pool_fills_to_size_with_loaded_sandboxes_and_no_more(
    make_pool: MakePool, backend: GateBackend
) -> None:
    # A short TTL: the refill loop looks again often, and recycles while it does.
    pool = make_pool(size=2, ttl_s=0.1)
    pool.add_profile(spec_for)
    pool.add_profile(spec_for)  # the same profile twice is one profile
    filled(pool, backend)
    poll(lambda: len(backend.started) >= 6, timeout_s=5, what="two rounds of recycling")

    assert max(backend.live_at_start) < 2, backend.live_at_start  # never a third alive
    assert all(s.calls[0] == "send" for s in backend.started)  # the runner bundle, at start


def test_take_hands_out_an_idle_sandbox_once_and_refills(
    make_pool: MakePool, backend: GateBackend
) -> None:
    pool = make_pool(size=2)
    pool.add_profile(spec_for)
    filled(pool, backend)

    first = pool.take(spec_for("run-1"))
    second = pool.take(spec_for("run-2"))
    assert first is not None and second is not None and first is not second
    assert pool.taken == 2
    filled(pool, backend)
    assert len(backend.started) == 4
    assert not first.removed and not second.removed  # taken ones belong to their runs


def test_refill_waits_while_a_taken_sandbox_starts_and_resumes_when_it_settles(
    make_pool: MakePool, backend: GateBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_module, "REFILL_DEFER_S", 30.0)
    pool = make_pool(size=1)
    pool.add_profile(spec_for)
    filled(pool, backend)

    taken = pool.take(spec_for("run"))
    assert taken is not None
    time.sleep(0.3)  # the refill thread had every chance to start one
    assert len(backend.started) == 1, state(pool, backend)

    pool.settled(GateSession("not-from-the-pool"))  # changes nothing
    time.sleep(0.1)
    assert len(backend.started) == 1, state(pool, backend)

    pool.settled(taken)
    filled(pool, backend)
    assert len(backend.started) == 2


def test_a_taker_that_never_settles_delays_refill_only_for_the_defer_time(
    make_pool: MakePool, backend: GateBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_module, "REFILL_DEFER_S", 0.3)
    pool = make_pool(size=1)
    pool.add_profile(spec_for)
    filled(pool, backend)

    taken_at = time.monotonic()
    assert pool.take(spec_for("run")) is not None
    filled(pool, backend)
    assert backend.start_times[-1] - taken_at >= 0.3, backend.start_times


def test_a_miss_is_counted_when_the_pool_is_empty(
    make_pool: MakePool, backend: GateBackend
) -> None:
    backend.gate.clear()  # every start hangs
    pool = make_pool(size=1)
    pool.add_profile(spec_for)
    poll(backend.entered.is_set, timeout_s=5, what="the first start")

    assert pool.take(spec_for("run")) is None
    assert pool.missed == 1 and pool.taken == 0


def test_another_profile_is_not_served_from_this_one(
    make_pool: MakePool, backend: GateBackend
) -> None:
    pool = make_pool(size=1)
    pool.add_profile(spec_for)
    filled(pool, backend)

    assert pool.take(spec_for("run", memory_mb=512)) is None
    assert pool.take(spec_for("run")) is not None


def test_start_failures_back_off_then_the_pool_fills(
    make_pool: MakePool,
    backend: GateBackend,
    monkeypatch: pytest.MonkeyPatch,
    log_lines: list[LogLine],
) -> None:
    monkeypatch.setattr(pool_module, "RETRY_BACKOFF_S", (0.2, 0.4))
    backend.failures = 3
    pool = make_pool(size=1, ttl_s=0.2)
    pool.add_profile(spec_for)
    filled(pool, backend)

    times = backend.start_times
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(times) == 4, gaps
    # Each retry waits its backoff; the last step of the table repeats.
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[2] >= 0.4, gaps
    warnings = [line.message for line in log_lines if line.level == "WARNING"]
    assert len(warnings) == 3 and "injected start failure" in warnings[0]


def test_a_success_resets_the_backoff(
    make_pool: MakePool, backend: GateBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_module, "RETRY_BACKOFF_S", (0.1, 5.0))
    backend.failures = 1
    pool = make_pool(size=1, ttl_s=0.2)
    pool.add_profile(spec_for)
    filled(pool, backend)
    backend.failures = 1
    assert pool.take(spec_for("run")) is not None
    # A second failure after a success waits the first step again, not the second.
    filled(pool, backend)
    assert backend.start_times[-1] - backend.start_times[-2] < 2.0


def test_sandboxes_past_their_ttl_are_recycled(make_pool: MakePool, backend: GateBackend) -> None:
    ttl = 0.3
    pool = make_pool(size=2, ttl_s=ttl)
    pool.add_profile(spec_for)
    filled(pool, backend)
    first = list(backend.started)

    poll(
        lambda: all(s.removed for s in first) and pool.idle_count() == 2,
        timeout_s=5,
        what="the first sandboxes replaced",
        diagnostics=lambda: state(pool, backend),
    )
    assert len(backend.live()) <= 2
    # Removed for age, not early: each lived at least the TTL.
    now = time.monotonic()
    assert all(now - s.born >= ttl for s in first)
    fresh = pool.take(spec_for("run"))
    assert fresh is not None and fresh not in first


def test_close_removes_every_idle_sandbox_and_is_idempotent(
    make_pool: MakePool, backend: GateBackend
) -> None:
    pool = make_pool(size=2)
    pool.add_profile(spec_for)
    filled(pool, backend)
    taken = pool.take(spec_for("run"))
    filled(pool, backend)

    pool.close()
    pool.close()

    assert pool.idle_count() == 0
    assert backend.live() == [taken]  # the taken one is its run's to remove
    assert pool.take(spec_for("run")) is None
    pool.add_profile(lambda pool_id: spec_for(pool_id, memory_mb=512))  # ignored once closed
    time.sleep(0.1)
    assert len(backend.started) == 3


def test_a_sandbox_that_finishes_starting_after_close_is_removed(
    make_pool: MakePool, backend: GateBackend
) -> None:
    backend.gate.clear()
    pool = make_pool(size=1)
    pool.add_profile(spec_for)
    poll(backend.entered.is_set, timeout_s=5, what="a start in progress")

    closer = threading.Thread(target=pool.close)
    closer.start()
    time.sleep(0.05)
    assert closer.is_alive()  # close waits for the start in flight
    backend.gate.set()
    closer.join(10)

    assert not closer.is_alive()
    (late,) = backend.started
    assert late.removed
    assert pool.idle_count() == 0


def test_a_failed_removal_is_logged_not_raised(
    make_pool: MakePool, backend: GateBackend, log_lines: list[LogLine]
) -> None:
    backend.fail_remove = True
    pool = make_pool(size=1)
    pool.add_profile(spec_for)
    filled(pool, backend)

    pool.close()

    assert any("cannot remove" in line.message for line in log_lines if line.level == "WARNING")
