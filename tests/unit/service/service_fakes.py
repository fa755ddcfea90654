"""A fake executor and engine for the daemon, and a harness that runs the app in-process.

    async with running_service(settings) as svc:
        response = await svc.client.post("/v1/runs", json={"code": "print(1)"})

`FakeExecutor.run` behaves by the code it gets: ``block`` waits until
``executor.release`` is set or the run is cancelled; ``fail`` exits 1;
``explode`` raises `ExecutorError`; ``crash`` raises `RuntimeError`; anything
else succeeds and echoes the code (``cpu 1.5`` reports 1.5 CPU seconds used). The harness drives the app's lifespan
itself, because httpx's ASGITransport does not.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
from fastapi import FastAPI

from ai_data_agent.errors import ExecutorError
from ai_data_agent.executor import RunEvent
from ai_data_agent.executor.backend import SweepRule
from ai_data_agent.models import Artifact, Limits, RunRequest, RunResult, RunStatus, Timings
from ai_data_agent.service import create_app
from ai_data_agent.service.daemon import Daemon
from ai_data_agent.service.tenant_admin import TenantAdmin
from ai_data_agent.service.tenant_store import TenantStore
from ai_data_agent.settings import Settings
from ai_data_agent.tenant_models import Quotas, TenantCreate, TokenCreate

TOKEN = "test-token-123"
FAKE_IMAGE = "fake/sandbox:1"


@dataclass
class FakeBackend:
    """Engine operations: ping, image, sweep; failures on demand; calls recorded.

    ``ping_gate``, when set to an unset Event, makes ``ping`` hang until it is set.
    """

    ping_gate: threading.Event | None = None
    ping_error: Exception | None = None
    image_error: Exception | None = None
    sweep_error: Exception | None = None
    orphans: list[str] = field(default_factory=list)
    sweeps: list[dict[str, Any]] = field(default_factory=list)

    def ping(self) -> str:
        if self.ping_gate is not None:
            self.ping_gate.wait(30)
        if self.ping_error is not None:
            raise self.ping_error
        return "fake"

    def resolve_image(self) -> str:
        if self.image_error is not None:
            raise self.image_error
        return FAKE_IMAGE

    def check_image(self) -> str:
        return self.resolve_image()

    def sweep(self, rule: SweepRule) -> list[str]:
        self.sweeps.append(
            {
                "keep_controller": rule.keep_controller,
                "all_controllers": rule.all_controllers,
                "run_ids": tuple(sorted(rule.run_ids)),
            }
        )
        if self.sweep_error is not None:
            raise self.sweep_error
        # The startup sweep (of dead controllers) names the controller to keep.
        orphan_sweep = rule.keep_controller is not None
        removed, self.orphans = (self.orphans, []) if orphan_sweep else ([], self.orphans)
        return removed

    # The rest of the `Backend` protocol: the daemon never calls these.
    def start(self, spec: object, run_id: str) -> object:
        raise AssertionError("the fake executor starts no containers")

    def engine_id(self) -> str:
        return "fake-engine"

    def image_id(self, image: str) -> str:
        return "sha256:fake"

    def ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        pass

    def remove_volume(self, name: str) -> None:
        pass

    def sandboxes(self, controller_id: str) -> list[str]:
        return []

    def close(self) -> None:
        pass


class FakeExecutor:
    """Shaped like `Executor`; see the module docstring for what each code does."""

    controller_id = "fakecontroller"
    env_cache = None
    datasets = None
    egress = None
    pool = None

    def __init__(self) -> None:
        self.backend = FakeBackend()
        self.release = threading.Event()
        self.started: list[str] = []
        self.limits: dict[str, Limits] = {}  # what each run was given
        self.cancelled: list[str] = []
        self.on_start: Callable[[str], None] | None = None  # called first thing in run()
        self.pool_started = False
        self.closed = False
        self._lock = threading.Lock()

    def start_pool(self) -> None:
        self.pool_started = True

    def close(self) -> None:
        self.closed = True

    def run(
        self,
        request: RunRequest,
        *,
        run_id: str | None = None,
        on_event: Callable[[RunEvent], None] | None = None,
        cancel: threading.Event | None = None,
        artifacts_dir: Path | None = None,
        limits: Limits | None = None,
    ) -> RunResult:
        assert run_id is not None and cancel is not None
        assert limits is not None, "the daemon passes the limits it resolved at admission"
        with self._lock:
            self.limits[run_id] = limits
        if self.on_start is not None:
            self.on_start(run_id)
        if on_event is not None:
            on_event(RunEvent(run_id, "phase", "running"))
            on_event(RunEvent(run_id, "stdout", f"live: {request.code}\n"))
        artifacts = []
        if request.code == "artifact" and artifacts_dir is not None:
            artifacts_dir.mkdir(parents=True)
            (artifacts_dir / "outputs.csv").write_bytes(b"a,b\n1,2\n")
            digest = hashlib.sha256(b"a,b\n1,2\n").hexdigest()
            artifacts.append(
                Artifact(path="outputs.csv", size=8, sha256=digest, media_type="text/csv")
            )
        with self._lock:
            self.started.append(run_id)
        code = request.code
        if code.startswith("block"):
            while not self.release.is_set():
                if cancel.wait(0.01):
                    with self._lock:
                        self.cancelled.append(run_id)
                    return RunResult(
                        id=run_id,
                        status=RunStatus.CANCELLED,
                        stdout="partial\n",
                        error="cancelled by request",
                    )
        if code == "explode":
            raise ExecutorError("cannot create the sandbox container", run_id=run_id, step="create")
        if code == "crash":
            raise RuntimeError("bug in the executor: secret-internal-detail")
        failed = code == "fail"
        return RunResult(
            id=run_id,
            status=RunStatus.FAILED if failed else RunStatus.SUCCEEDED,
            exit_code=1 if failed else 0,
            stdout=f"ran: {code}\n"
            + "".join(f"file {f.path}: {f.data!r}\n" for f in request.files),
            timings=Timings(install_s=0.1, execute_s=0.2, total_s=0.4),
            image=FAKE_IMAGE,
            artifacts=artifacts,
            cpu_seconds=float(code[4:]) if code.startswith("cpu ") else None,
        )


def tenant_token(data_dir: Path, tenant: str, **quotas: Any) -> dict[str, str]:
    """The Authorization header of a new token of a new agent tenant with ``quotas``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = TenantStore(data_dir / "tenants.sqlite3")
    store.open()
    try:
        admin = TenantAdmin(store)
        admin.add_tenant(TenantCreate(name=tenant, quotas=Quotas(**quotas)))
        secret = admin.new_token(TokenCreate(tenant=tenant, name=f"{tenant}-1")).secret
    finally:
        store.close()
    return {"Authorization": f"Bearer {secret}"}


def make_settings(tmp_path: Any, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "api_tokens": [TOKEN],
        "max_concurrent_runs": 1,
        "max_queued_runs": 1,
        "shutdown_grace_s": 0.3,
        "reaper_interval_s": 3600,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Service:
    app: FastAPI
    client: httpx.AsyncClient
    executor: FakeExecutor
    settings: Settings

    @property
    def daemon(self) -> Daemon:
        daemon: Daemon = self.app.state.daemon
        return daemon


@asynccontextmanager
async def running_service(
    settings: Settings, executor: FakeExecutor | None = None, *, token: str | None = TOKEN
) -> AsyncIterator[Service]:
    """The app with its lifespan running and a client that sends ``token``."""
    executor = executor or FakeExecutor()
    app = create_app(settings, executor)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://daemon.test", headers=headers
            ) as client:
                yield Service(app, client, executor, settings)
    finally:
        executor.release.set()


async def wait_until(
    condition: Callable[[], bool], *, timeout: float = 5.0, what: str = "condition"
) -> None:
    """Poll ``condition`` on the event loop; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await anyio.sleep(0.01)


async def wait_for_status(
    client: httpx.AsyncClient, run_id: str, statuses: set[str], timeout: float = 5.0
) -> dict[str, Any]:
    """GET the run until its status is one of ``statuses``; return the record."""
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(f"/v1/runs/{run_id}")
        assert response.status_code == 200, response.text
        record: dict[str, Any] = response.json()
        if record["status"] in statuses:
            return record
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {record['status']}, wanted {statuses}")
        await anyio.sleep(0.01)


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    """The response is ErrorBody JSON with this status and code; return its message."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    assert "Traceback" not in message
    return message
