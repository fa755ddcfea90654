"""What the executor makes of a granted allow-list, for runs and sessions alike: the sandbox's
lease on the egress proxy, opened where the sandbox is (`SandboxDriver.open`), its sockets
mounted into a fresh container (never a pooled one), the relay told to the runner, and the
lease closed with the sandbox, in every path."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import ScriptedBackend, ScriptedSandbox, ScriptItem

from ai_data_agent.egress.proxy import EgressProxy
from ai_data_agent.errors import ExecutorError
from ai_data_agent.executor.core import Executor
from ai_data_agent.executor.driver import SandboxDriver
from ai_data_agent.executor.jobs import Job, session_job
from ai_data_agent.executor.session import SandboxOrder
from ai_data_agent.executor.spec import EGRESS_MOUNT, ContainerSpec, build_spec
from ai_data_agent.limits import default_limits, resolve_run, resolve_session
from ai_data_agent.models import EgressRequest, RunRequest, RunStatus
from ai_data_agent.session_models import SessionRequest
from ai_data_agent.settings import Settings
from tests.support.wait import poll

NETWORK: dict[str, Any] = {"allow": ["files.test"], "publish": {"PG": "db.test:5432"}}
READY: ScriptItem = {"k": "phase", "phase": "ready"}
RUNNING: ScriptItem = {"k": "phase", "phase": "running"}
CLEAN: ScriptItem = {
    "k": "result",
    "protocol": 1,
    "install": {"ok": True, "duration_s": 0.0},
    "execute": {"exit_code": 0, "duration_s": 0.1, "timed_out": False},
    "sandbox_removed": True,
    "oom_kills": 0,
}


def settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(
        egress_allow=["files.test", "db.test:5432"],
        egress_socket_dir=tmp_path / "egress",
        **values,
    )


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[EgressProxy]:
    proxy = EgressProxy(settings(tmp_path))
    yield proxy
    proxy.close()


def leases(proxy: EgressProxy) -> list[str]:
    """The lease folders the proxy holds now."""
    assert proxy.socket_dir is not None
    return sorted(path.name for path in proxy.socket_dir.iterdir())


def sockets_at_start(seen: list[list[str]]) -> Any:
    """A backend hook that records the sockets a container would mount when it is made."""

    def on_start(spec: ContainerSpec) -> None:
        assert spec.egress_dir is not None
        seen.append(sorted(path.name for path in spec.egress_dir.iterdir()))

    return on_start


def test_a_run_with_an_allow_list_mounts_its_own_sockets_and_closes_them_at_its_end(
    tmp_path: Path, proxy: EgressProxy
) -> None:
    seen: list[list[str]] = []
    backend = ScriptedBackend([READY], [RUNNING, CLEAN], on_start=sockets_at_start(seen))
    executor = Executor(settings(tmp_path), backend=backend, egress=proxy)
    result = executor.run(RunRequest(code="x", network=NETWORK), run_id="run-1")
    assert result.status is RunStatus.SUCCEEDED
    assert seen == [["proxy.sock", "publish-PG.sock"]]  # listening before the container starts
    [spec] = backend.specs
    assert spec.egress_dir is not None and spec.egress_dir.parent == proxy.socket_dir
    assert spec.network is None  # no interface but lo: the sockets are the only way out
    [job] = backend.started[0].jobs
    assert job["egress"] == {"dir": EGRESS_MOUNT, "publish": ["PG"]}
    assert leases(proxy) == []
    assert backend.started[0].calls[-1] == "remove"


def test_a_run_without_one_has_no_lease_and_no_relay(tmp_path: Path, proxy: EgressProxy) -> None:
    backend = ScriptedBackend([READY], [RUNNING, CLEAN])
    executor = Executor(settings(tmp_path), backend=backend, egress=proxy)
    assert executor.run(RunRequest(code="x")).status is RunStatus.SUCCEEDED
    assert backend.specs[0].egress_dir is None
    assert "egress" not in backend.started[0].jobs[0]
    assert proxy.socket_dir is None  # never started


def test_an_allow_list_skips_the_warm_pool_and_its_tunnels_end_before_a_deferred_removal(
    tmp_path: Path, proxy: EgressProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    removal = threading.Event()  # the run's container stays until this is set
    remove = ScriptedSandbox.remove

    def held_remove(sandbox: ScriptedSandbox) -> None:
        if sandbox.run_id == "run-1":
            removal.wait(10)
        remove(sandbox)

    monkeypatch.setattr(ScriptedSandbox, "remove", held_remove)
    backend = ScriptedBackend([READY], [RUNNING, CLEAN])
    executor = Executor(settings(tmp_path, pool_size=1), backend=backend, egress=proxy)
    try:
        executor.start_pool()
        assert executor.pool is not None
        pool = executor.pool
        poll(lambda: pool.idle_count() == 1, timeout_s=5, what="a pooled sandbox")
        result = executor.run(RunRequest(code="x", network=NETWORK), run_id="run-1")
        assert result.status is RunStatus.SUCCEEDED
        [fresh] = [s for s in backend.started if s.run_id == "run-1"]
        assert "remove" not in fresh.calls  # deferred: the run returned at its result
        assert leases(proxy) == []  # but its tunnels and sockets are gone already
        assert pool.idle_count() == 1 and pool.taken == 0
    finally:
        removal.set()
        executor.close()
    assert fresh.calls[-1] == "remove"


def test_a_session_holds_its_lease_until_its_sandbox_is_removed(
    tmp_path: Path, proxy: EgressProxy
) -> None:
    seen: list[list[str]] = []
    backend = ScriptedBackend([READY], on_start=sockets_at_start(seen), end_stream=False)
    s = settings(tmp_path)
    executor = Executor(s, backend=backend, egress=proxy)
    limits = resolve_session(SessionRequest(network=NETWORK), s)
    order = SandboxOrder("sess-1", limits, "img", session_job(s, {}, [], None))
    link = executor.open_sandbox(order)
    assert seen == [["proxy.sock", "publish-PG.sock"]]
    assert backend.started[0].jobs[0]["egress"] == {"dir": EGRESS_MOUNT, "publish": ["PG"]}
    assert link.egress is not None and leases(proxy) == [link.egress.host_dir.name]
    link.remove()
    assert leases(proxy) == []
    assert backend.started[0].calls[-1] == "remove"


def test_a_sandbox_that_fails_to_start_leaves_no_lease(tmp_path: Path, proxy: EgressProxy) -> None:
    def refuse(spec: ContainerSpec) -> None:
        raise ExecutorError("injected start failure", step="create")

    backend = ScriptedBackend([READY], on_start=refuse)
    executor = Executor(settings(tmp_path), backend=backend, egress=proxy)
    with pytest.raises(ExecutorError, match="injected start failure"):
        executor.run(RunRequest(code="x", network=NETWORK))
    assert leases(proxy) == []


def test_a_lease_without_a_proxy_is_refused_before_anything_starts(tmp_path: Path) -> None:
    s = Settings()
    backend = ScriptedBackend([READY])
    spec = build_spec(
        s, default_limits(s), image="img", run_id="r", controller_id="c", needs_install=False
    )
    with pytest.raises(ExecutorError, match="has no egress proxy") as caught:
        SandboxDriver(s, backend).open(
            spec, Job(mode="run"), run_id="r", egress=EgressRequest(allow=("files.test",))
        )
    assert caught.value.step == "egress"
    assert backend.started == []


def test_a_granted_allow_list_is_the_limits_and_never_a_network_interface(tmp_path: Path) -> None:
    s = settings(tmp_path)
    limits = resolve_run(RunRequest(code="x", network=NETWORK), s)
    assert limits.network is False and limits.egress is not None
    spec = build_spec(s, limits, image="i", run_id="r", controller_id="c", needs_install=False)
    assert spec.network is None and not spec.detach_network_before_code
