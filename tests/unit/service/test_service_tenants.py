"""Tenants in the app: a data dir of the previous version, auth that turns on with the first
stored token, last use written at most once a minute, and an audit log that cannot be
written answering 503."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import anyio
import pytest
from service_fakes import make_settings, running_service

from ai_data_agent.service.auth import TokenAuth
from ai_data_agent.service.session_store import SessionStore
from ai_data_agent.service.store import RunStore
from ai_data_agent.service.tenant_admin import TenantAdmin
from ai_data_agent.service.tenant_store import TenantStore
from ai_data_agent.settings import Settings
from ai_data_agent.tenant_models import ADMIN_TENANT, Role, TenantCreate, TokenCreate

pytestmark = pytest.mark.anyio
# The schemas of the version before tenants, as its stores wrote them.
OLD_RUNS = """
CREATE TABLE runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
    created_at REAL NOT NULL, started_at REAL, finished_at REAL, request TEXT NOT NULL,
    result TEXT, error TEXT
);
CREATE INDEX runs_by_status ON runs (status, seq);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
PRAGMA user_version = 1;
INSERT INTO runs (id, status, created_at, request, error)
VALUES ('old-run', 'failed', CAST(strftime('%s', 'now') AS REAL), '{"code": "x"}', 'it failed');
"""
OLD_SESSIONS = """
CREATE TABLE sessions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, node TEXT NOT NULL,
    status TEXT NOT NULL, info TEXT NOT NULL
);
CREATE INDEX sessions_by_status ON sessions (status, seq);
CREATE TABLE cells (
    session_id TEXT NOT NULL, n INTEGER NOT NULL, result TEXT NOT NULL,
    PRIMARY KEY (session_id, n)
);
INSERT INTO sessions (id, node, status, info) VALUES ('old-session', 'ctl', 'closed',
  '{"id": "old-session", "status": "closed", "created_at": "2026-01-01T00:00:00Z",
    "last_activity_at": "2026-01-01T00:00:00Z"}');
INSERT INTO cells (session_id, n, result) VALUES ('old-session', 1,
  '{"session_id": "old-session", "execution_count": 1, "generation": 0,
    "status": "succeeded", "state": "preserved"}');
"""


def old_data_dir(path: Path) -> Path:
    for name, script in (("runs.sqlite3", OLD_RUNS), ("sessions.sqlite3", OLD_SESSIONS)):
        with sqlite3.connect(path / name) as conn:
            conn.executescript(script)
    return path


def agent_token(data_dir: Path, tenant: str = "team-a") -> str:
    store = TenantStore(data_dir / "tenants.sqlite3")
    store.open()
    try:
        admin = TenantAdmin(store)
        admin.add_tenant(TenantCreate(name=tenant))
        return admin.new_token(TokenCreate(tenant=tenant, name=f"{tenant}-1")).secret
    finally:
        store.close()


def test_the_stores_of_the_previous_version_open_with_every_row_the_admins(tmp_path: Path) -> None:
    old_data_dir(tmp_path)
    runs, sessions = (
        RunStore(tmp_path / "runs.sqlite3"),
        SessionStore(tmp_path / "sessions.sqlite3", node="n"),
    )
    runs.open()
    sessions.open()
    try:
        record = runs.get("old-run")
        assert record is not None and record.tenant == ADMIN_TENANT and record.error == "it failed"
        assert runs.list(tenant=ADMIN_TENANT)[1] == 1 and runs.list(tenant="team-a")[1] == 0
        info = sessions.get("old-session")
        assert info is not None and info.tenant == ADMIN_TENANT
        old_cell = sessions.get_cell("old-session", 1)
        assert old_cell is not None and sessions.cell_code("old-session", 1) is None
        sessions.put_cell(old_cell.model_copy(update={"execution_count": 2}), "x = 1")
        assert sessions.cell_code("old-session", 2) == "x = 1"
        runs.insert("new-run", record.request, tenant="team-a")
        assert runs.list(tenant="team-a")[0][0].tenant == "team-a"
    finally:
        runs.close()
        sessions.close()
    runs.open()  # a second open adds nothing twice
    runs.close()


async def test_an_upgraded_data_dir_serves_its_runs_to_the_admin_only(tmp_path: Path) -> None:
    secret = agent_token(old_data_dir(tmp_path))
    settings = make_settings(tmp_path)
    async with running_service(settings) as svc:
        mine = await svc.client.get("/v1/runs/old-run")
        assert mine.status_code == 200 and mine.json()["tenant"] == "admin"
        session = await svc.client.get("/v1/sessions/old-session")
        assert session.status_code == 200 and session.json()["tenant"] == "admin"
        agent = {"Authorization": f"Bearer {secret}"}
        for path in ("/v1/runs/old-run", "/v1/sessions/old-session"):
            assert (await svc.client.get(path, headers=agent)).status_code == 404
        assert (await svc.client.get("/v1/runs", headers=agent)).json()["total"] == 0


async def test_auth_turns_on_with_the_first_stored_token(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, api_tokens=[])
    async with running_service(settings, token=None) as svc:
        assert (await svc.client.get("/v1/runs")).status_code == 200  # dev mode: the admin
        admin = TenantAdmin(svc.app.state.daemon.tenants)
        admin.add_tenant(TenantCreate(name="ops", role=Role.ADMIN))
        secret = admin.new_token(TokenCreate(tenant="ops", name="ops-1")).secret

        async def refused() -> bool:
            return (await svc.client.get("/v1/runs")).status_code == 401

        deadline = time.monotonic() + 5  # the store is asked again within a second
        while not await refused():
            assert time.monotonic() < deadline, "auth did not turn on"
            await anyio.sleep(0.05)
        named = await svc.client.get("/v1/runs", headers={"Authorization": f"Bearer {secret}"})
        assert named.status_code == 200
        admin.revoke("ops-1")  # the last token revoked: auth stays on
        assert await refused()


def test_a_tokens_use_is_written_at_most_once_a_minute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = TenantStore(tmp_path / "tenants.sqlite3")
    store.open()
    admin = TenantAdmin(store)
    admin.add_tenant(TenantCreate(name="a"))
    secret = admin.new_token(TokenCreate(tenant="a", name="a-1", expires_in_s=3600)).secret
    writes: list[str] = []
    touch = store.touch_token
    monkeypatch.setattr(
        store, "touch_token", lambda name, now: (writes.append(name), touch(name, now=now))
    )
    auth = TokenAuth(Settings(data_dir=tmp_path, api_tokens=["conf"]), store)
    for _ in range(5):
        principal = auth.principal(f"Bearer {secret}")
    assert (principal.tenant, principal.role, principal.token) == ("a", Role.AGENT, "a-1")
    assert writes == ["a-1"] and store.tokens()[0].last_used_at is not None
    configured = auth.principal("Bearer conf")
    assert configured.is_admin and (configured.token or "").startswith("config-")
    store.close()


async def test_an_audit_log_that_cannot_be_written_answers_503(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_service(settings) as svc:

        def broken(entries: object) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(svc.app.state.daemon.audit.store, "append", broken)
        answer = await svc.client.get("/v1/runs")
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "not_ready"
        assert "audit" in answer.json()["error"]["message"]
        missing = await svc.client.get("/v1/runs/nope")  # an error answer too
        assert missing.status_code == 503


async def test_the_openapi_document_has_the_admins_routes(settings: Settings) -> None:
    async with running_service(settings) as svc:
        spec = (await svc.client.get("/openapi.json")).json()
    assert {"/v1/tenants", "/v1/tenants/{name}", "/v1/tokens", "/v1/tokens/{name}"} <= set(
        spec["paths"]
    )
    assert "/v1/audit" in spec["paths"] and "tenant" in str(spec["paths"]["/v1/runs"]["get"])
    assert "403" in spec["paths"]["/v1/tokens"]["post"]["responses"]


async def test_an_mcp_session_is_pinned_to_the_principal_that_opened_it(tmp_path: Path) -> None:
    from starlette.types import Receive, Scope, Send

    from ai_data_agent.service.mcp.http import _TokenGuard
    from ai_data_agent.service.mcp.in_daemon import CALLER

    store = TenantStore(tmp_path / "tenants.sqlite3")
    store.open()
    admin = TenantAdmin(store)
    secrets = {}
    for name in ("a", "b"):
        admin.add_tenant(TenantCreate(name=name))
        secrets[name] = admin.new_token(TokenCreate(tenant=name, name=f"{name}-1")).secret
    callers: list[str] = []

    async def sdk(scope: Scope, receive: Receive, send: Send) -> None:
        callers.append(CALLER.get().tenant)
        headers = [(b"mcp-session-id", b"s1")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})

    guard = _TokenGuard(sdk, TokenAuth(make_settings(tmp_path), store))

    async def call(tenant: str, session: str | None) -> int:
        headers = [(b"authorization", f"Bearer {secrets[tenant]}".encode())]
        if session is not None:
            headers.append((b"mcp-session-id", session.encode()))
        scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": headers}
        sent: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b""}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        await guard(scope, receive, send)  # type: ignore[arg-type]
        status = sent[0]["status"]
        assert isinstance(status, int)
        return status

    assert await call("a", None) == 200  # opens s1: pinned to a
    assert await call("a", "s1") == 200
    assert await call("b", "s1") == 404  # another principal's MCP session
    assert await call("b", None) == 200
    assert callers == ["a", "a", "b"]
    store.close()


async def test_the_checkpoint_routes_are_audited_by_name(settings: Settings) -> None:
    calls = {
        ("POST", "checkpoint"): "session.checkpoint",
        ("GET", "checkpoints"): "session.checkpoints",
        ("POST", "pause"): "session.pause",
        ("POST", "resume"): "session.resume",
        ("POST", "fork"): "session.fork",
    }
    async with running_service(settings) as svc:
        for method, route in calls:
            answer = await svc.client.request(method, f"/v1/sessions/nope/{route}")
            assert answer.status_code == 404, answer.text
        page = (await svc.client.get("/v1/audit", params={"limit": 10})).json()
    audited = [(e["action"], e["status"]) for e in page["items"] if e["object_id"] == "nope"]
    assert sorted(audited) == sorted((action, 404) for action in calls.values())
