"""Tenants through the real daemon: who sees what (HTTP, the client, /mcp), tokens that are
revoked or expire, secrets kept out of files and logs, and an audit log that loses nothing
to a burst or a kill -9."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client as McpClient
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent

from ai_data_agent.client import Client, Forbidden, NotFound
from tests.support.daemon import Daemon
from tests.support.wait import poll

pytestmark = pytest.mark.integration

ARTIFACT = "open('outputs/a.txt', 'w').write('only a')\nprint('a ran')"


@dataclass
class Tenancy:
    daemon: Daemon
    secrets: dict[str, str]  # token name -> secret
    run_id: str
    session_id: str

    def http(self, token: str) -> httpx.Client:
        return self.daemon.client(self.secrets[token])

    def client(self, token: str) -> Client:
        return Client(self.daemon.url, self.secrets[token], timeout=60)

    def audit(self, **params: Any) -> list[dict[str, Any]]:
        page = self.daemon.client().get("/v1/audit", params={"limit": 1000, **params})
        assert page.status_code == 200, page.text
        items: list[dict[str, Any]] = page.json()["items"]
        return items


@pytest.fixture(scope="module")
def tenancy(
    settings_kwargs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tenancy]:
    """One daemon; tenants a and b (agents) and ops (an admin), a token each; a run with an
    artifact and a session with a file and a cell, both a's."""
    values = {**settings_kwargs, "max_concurrent_runs": 2, "max_queued_runs": 50}
    daemon = Daemon.start(tmp_path_factory.mktemp("tenants-data"), values)
    admin = daemon.client()
    for name, role in (("a", "agent"), ("b", "agent"), ("ops", "admin")):
        assert admin.post("/v1/tenants", json={"name": name, "role": role}).status_code == 201
    tokens = {}
    for name, tenant in (("a-1", "a"), ("b-1", "b"), ("ops-1", "ops")):
        made = admin.post("/v1/tokens", json={"tenant": tenant, "name": name})
        assert made.status_code == 201, made.text
        tokens[name] = made.json()["secret"]
    a = daemon.client(tokens["a-1"])
    run = a.post("/v1/runs", json={"code": ARTIFACT})
    assert run.status_code == 200 and run.json()["status"] == "succeeded", run.text
    session = a.post("/v1/sessions", json={})
    assert session.status_code == 201, session.text
    session_id = session.json()["id"]
    assert a.put(f"/v1/sessions/{session_id}/files/in.txt", content=b"a's").status_code == 201
    cell = a.post(f"/v1/sessions/{session_id}/cells", json={"code": "x = 1"})
    assert cell.status_code == 200, cell.text
    made = Tenancy(daemon, tokens, run.json()["id"], session_id)
    yield made
    made.daemon.stop()  # the last test restarts it
    print(f"--- daemon log ({made.daemon.url}) ---\n{made.daemon.log()}")


def paths_of(t: Tenancy) -> list[tuple[str, str]]:
    run, session = f"/v1/runs/{t.run_id}", f"/v1/sessions/{t.session_id}"
    return [
        ("GET", run),
        ("GET", f"{run}/artifacts"),
        ("GET", f"{run}/artifacts/a.txt"),
        ("GET", f"{run}/events"),
        ("GET", session),
        ("GET", f"{session}/cells/1"),
        ("GET", f"{session}/cells/1/events"),
        ("GET", f"{session}/files"),
        ("GET", f"{session}/files/in.txt"),
        ("POST", f"{session}/interrupt"),
        ("POST", f"{session}/restart"),
        ("DELETE", run),
    ]


def test_another_tenant_gets_404_for_everything_of_a(tenancy: Tenancy) -> None:
    a, b = tenancy.http("a-1"), tenancy.http("b-1")
    for method, path in paths_of(tenancy):
        theirs = b.request(method, path)
        assert theirs.status_code == 404, (method, path, theirs.text)
        assert theirs.json()["error"]["code"] == "not_found"
        if method == "GET":
            assert a.request(method, path).status_code == 200, path
    cell = b.post(f"/v1/sessions/{tenancy.session_id}/cells", json={"code": "x"})
    upload = b.put(f"/v1/sessions/{tenancy.session_id}/files/b.txt", content=b"b")
    close = b.delete(f"/v1/sessions/{tenancy.session_id}")
    assert [r.status_code for r in (cell, upload, close)] == [404, 404, 404]
    assert a.get(f"/v1/sessions/{tenancy.session_id}").json()["status"] == "idle"  # untouched


def test_the_client_raises_not_found_for_another_tenants_things(tenancy: Tenancy) -> None:
    with tenancy.client("b-1") as b, tenancy.client("a-1") as a:
        calls: list[Callable[[], object]] = [
            lambda: b.get(tenancy.run_id),
            lambda: b.artifacts(tenancy.run_id),
            lambda: list(b.events(tenancy.run_id)),
            lambda: b.cancel(tenancy.run_id),
            lambda: b.session_of(tenancy.session_id),
        ]
        for call in calls:
            with pytest.raises(NotFound):
                call()
        assert b.list().total == 0 and b.sessions() == []
        assert a.get(tenancy.run_id).tenant == "a"
        assert a.session_of(tenancy.session_id).download("in.txt") == b"a's"
        with pytest.raises(Forbidden):
            b.tokens.list()


def test_an_admin_sees_every_tenant_and_filters_by_one(tenancy: Tenancy) -> None:
    b = tenancy.http("b-1")
    theirs = b.post("/v1/runs", json={"code": "print('b')"}).json()["id"]
    for admin in (tenancy.daemon.client(), tenancy.http("ops-1")):  # configured, and named
        everything = admin.get("/v1/runs", params={"limit": 500}).json()
        assert {tenancy.run_id, theirs} <= {r["id"] for r in everything["items"]}
        only_a = admin.get("/v1/runs", params={"tenant": "a"}).json()["items"]
        assert {r["tenant"] for r in only_a} == {"a"}
        sessions = admin.get("/v1/sessions", params={"tenant": "a"}).json()["items"]
        assert [s["id"] for s in sessions] == [tenancy.session_id]
        assert admin.get(f"/v1/runs/{tenancy.run_id}/artifacts/a.txt").content == b"only a"
    # An agent asking for another tenant's listing gets its own.
    asked = b.get("/v1/runs", params={"tenant": "a"}).json()["items"]
    assert {r["tenant"] for r in asked} == {"b"}
    assert b.get("/v1/sessions", params={"tenant": "a"}).json()["items"] == []
    refused = b.get("/v1/tenants")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"


def test_revoked_and_expired_tokens_are_refused_at_once_and_audited(tenancy: Tenancy) -> None:
    admin = tenancy.daemon.client()
    made = admin.post("/v1/tokens", json={"tenant": "b", "name": "b-short"}).json()
    short = tenancy.daemon.client(made["secret"])
    assert short.get("/v1/runs").status_code == 200
    assert admin.delete("/v1/tokens/b-short").json()["revoked_at"] is not None
    refused = short.get("/v1/runs")
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
    expiring = admin.post(
        "/v1/tokens", json={"tenant": "b", "name": "b-brief", "expires_in_s": 2}
    ).json()
    brief = tenancy.daemon.client(expiring["secret"])
    poll(
        lambda: brief.get("/v1/runs").status_code == 401,
        timeout_s=15,
        what="the token to expire",
    )
    refusals = tenancy.audit(tenant="b")
    named = {(e["token"], e["status"], e["code"]) for e in refusals}
    assert ("b-short", 401, "unauthorized") in named
    assert ("b-brief", 401, "unauthorized") in named
    listed = {t["name"]: t for t in admin.get("/v1/tokens", params={"tenant": "b"}).json()}
    assert listed["b-short"]["last_used_at"] is not None and "secret" not in listed["b-short"]


def test_each_action_has_its_entry(tenancy: Tenancy) -> None:
    entries = tenancy.audit()
    seen = {(e["tenant"], e["token"], e["action"], e["status"]) for e in entries}
    expected = {
        ("admin", None, "tenant.add", 201),
        ("admin", None, "token.new", 201),
        ("a", "a-1", "run.create", 200),
        ("a", "a-1", "session.create", 201),
        ("a", "a-1", "session.upload", 201),
        ("a", "a-1", "session.cell", 200),
        ("b", "b-1", "run.get", 404),
        ("b", "b-1", "run.cancel", 404),
        ("b", "b-1", "session.download", 404),
        ("b", "b-1", "tenant.list", 403),
    }
    configured = {e["token"] for e in entries if e["tenant"] == "admin" and e["token"]}
    assert all(name.startswith("config-") for name in configured), configured
    seen = {(t, None if t == "admin" else k, a, s) for t, k, a, s in seen}
    assert expected <= seen, expected - seen
    created = next(e for e in entries if e["action"] == "run.create" and e["tenant"] == "a")
    assert created["object_id"] == tenancy.run_id and created["client"] == "127.0.0.1"
    upload = next(e for e in entries if e["action"] == "session.upload" and e["tenant"] == "a")
    assert upload["object_id"] == f"{tenancy.session_id}/in.txt"
    anonymous = httpx.get(f"{tenancy.daemon.url}/v1/runs")
    assert anonymous.status_code == 401
    last = tenancy.audit(limit=1)[0]
    assert (last["tenant"], last["action"], last["code"]) == (None, "run.list", "unauthorized")


def test_a_burst_of_300_requests_loses_no_entry(tenancy: Tenancy) -> None:
    before = len(tenancy.audit(action="run.get", tenant="b"))
    secret = tenancy.secrets["b-1"]
    answers: list[int] = []

    def burst() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {secret}"}, timeout=60) as http:
            for _ in range(30):
                url = f"{tenancy.daemon.url}/v1/runs/{tenancy.run_id}"
                answers.append(http.get(url).status_code)

    threads = [threading.Thread(target=burst) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [404] * 300
    assert len(tenancy.audit(action="run.get", tenant="b")) == before + 300


def test_secrets_are_nowhere_in_the_data_dir_or_the_log(tenancy: Tenancy) -> None:
    admin = tenancy.daemon.client()
    made = admin.post("/v1/tokens", json={"tenant": "a", "name": "a-hidden"}).json()
    assert tenancy.daemon.client(made["secret"]).get("/v1/runs").status_code == 200
    files = [p for p in Path(tenancy.daemon.data_dir).rglob("*") if p.is_file()]
    assert any(p.name == "tenants.sqlite3-wal" for p in files) or any(
        p.name == "tenants.sqlite3" for p in files
    )
    for secret in [made["secret"], *tenancy.secrets.values()]:
        for path in files:
            assert secret.encode() not in path.read_bytes(), path


def test_the_command_line_over_http_needs_an_admins_token(tenancy: Tenancy) -> None:
    cli = str(Path(sys.executable).with_name("ai-data-agent"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_DATA_AGENT_")}
    argv = [cli, "token", "ls", "--json", "--server", tenancy.daemon.url]
    mine = subprocess.run(
        argv, env={**env, "AI_DATA_AGENT_TOKEN": tenancy.secrets["ops-1"]}, capture_output=True
    )
    assert mine.returncode == 0, mine.stderr
    assert "a-1" in {json.loads(line)["name"] for line in mine.stdout.splitlines()}
    theirs = subprocess.run(
        argv, env={**env, "AI_DATA_AGENT_TOKEN": tenancy.secrets["b-1"]}, capture_output=True
    )
    assert theirs.returncode == 77 and b"admin" in theirs.stderr


# -- /mcp ------------------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def mcp_as(tenancy: Tenancy, token: str) -> AsyncIterator[McpClient]:
    headers = {"Authorization": f"Bearer {tenancy.secrets[token]}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http,
        McpClient(streamable_http_client(f"{tenancy.daemon.url}/mcp", http_client=http)) as c,
    ):
        yield c


def _text(result: Any) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


@pytest.mark.anyio
async def test_over_mcp_a_tenant_reaches_only_its_own(tenancy: Tenancy) -> None:
    sid = tenancy.session_id
    async with mcp_as(tenancy, "b-1") as b:
        for tool, args in (
            ("read_file", {"path": "in.txt", "session_id": sid}),
            ("run_python", {"code": "x", "session_id": sid}),
            ("list_files", {"session_id": sid}),
            ("close_session", {"session_id": sid}),
        ):
            result = await b.call_tool(tool, args)
            assert result.is_error and "no session" in _text(result), (tool, _text(result))
        with pytest.raises(Exception, match="no run"):
            await b.read_resource(f"ai-data-agent://runs/{tenancy.run_id}/artifacts/a.txt")
        made = await b.call_tool("run_python", {"code": "print('b over mcp')"})
        assert not made.is_error, _text(made)
    async with mcp_as(tenancy, "a-1") as a:
        mine = await a.call_tool("read_file", {"path": "in.txt", "session_id": sid})
        assert not mine.is_error and "a's" in _text(mine)
    b_runs = tenancy.daemon.client().get("/v1/runs", params={"tenant": "b"}).json()["items"]
    assert any(r["request"]["code"] == "print('b over mcp')" for r in b_runs)
    actions = {(e["tenant"], e["action"], e["status"]) for e in tenancy.audit(tenant="b")}
    assert {("b", "mcp.session.download", 404), ("b", "mcp.run.create", 200)} <= actions
    assert ("b", "mcp", 200) in actions


# -- kill -9 ---------------------------------------------------------------------------


def test_a_kill_9_loses_no_entry_of_an_answered_request(tenancy: Tenancy) -> None:
    """Last in this module: it kills the module's daemon and starts it again."""
    http = tenancy.daemon.client()
    answered = [http.get(f"/v1/runs/missing-{n}").status_code for n in range(40)]
    assert answered == [404] * 40
    killed = tenancy.daemon
    killed.kill()
    killed.stop()  # closes its clients; the process is gone already
    tenancy.daemon = killed.restart()
    entries = tenancy.audit(action="run.get", tenant="admin")
    assert {f"missing-{n}" for n in range(40)} <= {e["object_id"] for e in entries}
    assert tenancy.http("a-1").get(f"/v1/runs/{tenancy.run_id}").status_code == 200
