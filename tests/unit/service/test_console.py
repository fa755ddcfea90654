"""The operator console in-process over a fake executor: login, cookie, CSRF, headers, escaping.

The browser tests (tests/integration/console) drive the same pages in Chromium
against a real daemon; these pin each security rule and the page answers alone.
"""

from __future__ import annotations

import re
import sqlite3
import stat
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from service_fakes import TOKEN, FakeExecutor, make_settings, running_service, wait_for_status

from ai_data_agent.executor import WarmPool
from ai_data_agent.executor.spec import ContainerSpec, build_spec
from ai_data_agent.executor.warm import WarmReport, Warmth
from ai_data_agent.limits import default_limits
from ai_data_agent.models import RunRequest, RunResult, RunStatus, Timings
from ai_data_agent.service.console import login
from ai_data_agent.service.console.app import SECTIONS
from ai_data_agent.service.console.cookies import (
    COOKIE,
    KEY_FILENAME,
    MAX_AGE_S,
    Signer,
    Visit,
    load_key,
)
from ai_data_agent.service.console.highlight import highlight
from ai_data_agent.service.console.templating import duration, size
from ai_data_agent.service.console.web import PAGE_CSP
from ai_data_agent.service.store import RunStore
from ai_data_agent.settings import Settings

pytestmark = pytest.mark.anyio

ORIGIN = "http://daemon.test"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, token: str = TOKEN) -> httpx.Response:
    form = await client.get("/console/login")
    return await client.post(
        "/console/login",
        data={"csrf": csrf_of(form), "token": token, "next": "/console/runs"},
        headers={"origin": ORIGIN},
    )


@asynccontextmanager
async def console(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a browser-like client: no bearer token, cookies kept."""
    async with running_service(settings, token=None) as svc:
        yield svc.client


async def run_code(settings: Settings, code: str) -> str:
    """A finished run of the fake executor, through the API; its id."""
    async with running_service(settings) as svc:
        answer = await svc.client.post("/v1/runs", json={"code": code})
        run_id: str = answer.json()["id"]
        await wait_for_status(svc.client, run_id, {"succeeded", "failed"})
        return run_id


async def test_a_page_needs_a_login_and_the_cookie_is_hardened(settings: Settings) -> None:
    async with console(settings) as client:
        page = await client.get("/console/runs")
        assert page.status_code == 303
        assert page.headers["location"] == "/console/login?next=%2Fconsole%2Fruns"
        cookie = page.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        for part in ("HttpOnly", "SameSite=Strict", "Path=/console", f"Max-Age={MAX_AGE_S}"):
            assert part in cookie
        assert "Secure" not in cookie  # plain HTTP here: a Secure cookie would never return
        assert TOKEN not in cookie

        refused = await sign_in(client, "wrong")
        assert refused.status_code == 401 and "not accepted" in refused.text
        signed_in = await sign_in(client)
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/console/runs"
        assert TOKEN not in signed_in.headers["set-cookie"]
        page = await client.get("/console/runs")
        assert page.status_code == 200 and "Sign out" in page.text
        assert page.headers["content-security-policy"] == PAGE_CSP
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["cache-control"] == "no-store"
        assert "<script>" not in page.text and " style=" not in page.text  # nothing inline


async def test_over_tls_the_cookie_is_secure(settings: Settings) -> None:
    async with running_service(settings, token=None) as svc:
        svc.client.base_url = httpx.URL("https://daemon.test")
        page = await svc.client.get("/console/login")
        assert "; Secure" in page.headers["set-cookie"]


async def test_a_state_change_needs_the_same_origin_and_the_csrf_token(
    settings: Settings,
) -> None:
    executor = FakeExecutor()
    async with running_service(settings, executor, token=None) as svc:
        client = svc.client
        await sign_in(client)
        api = {"Authorization": f"Bearer {TOKEN}"}
        run_id = (
            await client.post("/v1/runs", json={"code": "block", "wait": False}, headers=api)
        ).json()["id"]
        page = await client.get(f"/console/runs/{run_id}")
        token = csrf_of(page)
        url = f"/console/runs/{run_id}/cancel"
        for data, headers in (
            ({}, {"origin": ORIGIN}),  # no token
            ({"csrf": "forged"}, {"origin": ORIGIN}),
            ({"csrf": token}, {"origin": "http://evil.test"}),
            ({"csrf": token}, {"origin": "null"}),
            ({"csrf": token}, {}),  # neither Origin nor Referer
            ({"csrf": token}, {"referer": "http://evil.test/daemon.test/"}),
        ):
            refused = await client.post(url, data=data, headers=headers)
            assert refused.status_code == 403, (data, headers, refused.text)
            assert "refused" in refused.text
        assert executor.cancelled == []
        done = await client.post(
            url, data={"csrf": token}, headers={"referer": f"{ORIGIN}/console/runs"}
        )
        assert done.status_code == 303 and done.headers["location"] == f"/console/runs/{run_id}"
        assert executor.cancelled == [run_id]


async def test_output_and_code_are_escaped(settings: Settings) -> None:
    run_id = await run_code(settings, "<script>alert(1)</script><img src=x onerror=alert(2)>")
    async with console(settings) as client:
        await sign_in(client)
        page = await client.get(f"/console/runs/{run_id}")
        listing = await client.get("/console/runs")
    for text in (page.text, listing.text):
        assert "<script>alert" not in text and "<img src=x" not in text
    assert "ran: &lt;script&gt;alert(1)&lt;/script&gt;" in page.text


async def test_a_token_removed_from_the_file_signs_out_at_once(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("file-token\n")
    settings = make_settings(tmp_path, api_tokens=[], api_token_file=tokens)
    async with console(settings) as client:
        assert (await sign_in(client, "file-token")).status_code == 303
        assert (await client.get("/console/runs")).status_code == 200
        tokens.write_text("another-token\n")
        fetched = await client.get("/console/runs/rows", headers={"x-console-fetch": "1"})
        assert fetched.status_code == 401
        page = await client.get("/console/runs")
        assert page.status_code == 303 and "why=revoked" in page.headers["location"]
        login = await client.get(page.headers["location"])
        assert "no longer accepted" in login.text
        assert (await client.get("/console/runs")).status_code == 303  # the visit was reset


async def test_without_tokens_the_console_is_open_and_says_so(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, api_tokens=[])
    async with console(settings) as client:
        page = await client.get("/console/health")
        assert page.status_code == 200 and "Authentication off" in page.text
        assert "docker" in page.text and "no cache (install_mode per_run)" in page.text
        assert "off (pool_size 0)" in page.text
        assert (await client.get("/console/login")).status_code == 303
        refused = await client.post("/console/logout", headers={"origin": ORIGIN})
        assert refused.status_code == 403  # CSRF holds all the same


async def test_the_health_page_counts_the_warm_pool(tmp_path: Path) -> None:
    executor = FakeExecutor()
    pool = WarmPool(executor.backend, size=2, ttl_s=300)  # no profile: nothing starts
    pool.taken, pool.missed = 3, 1
    executor.pool = pool
    settings = make_settings(tmp_path, api_tokens=[])
    async with running_service(settings, executor, token=None) as svc:
        page = await svc.client.get("/console/health")
        assert "Environments" in page.text
        assert "0 idle (up to 2 per profile); 3 run(s) took one, 1 found none" in page.text

    def make_spec(pool_id: str) -> ContainerSpec:
        limits = default_limits(settings)
        return build_spec(
            settings, limits, image="img", run_id=pool_id, controller_id="c", needs_install=False
        )

    # Profiles as the refill thread would leave them (none started here).
    warm = pool.sizing.add(make_spec, Warmth(("/opt/ai-data-agent/envs/ab12cd34ef56aa",)), 1)
    warm.warmed(WarmReport(k="warm", imported=["pandas"], rss_kb=120 * 1024))
    async with running_service(settings, executor, token=None) as svc:
        page = await svc.client.get("/console/health")
        assert "ab12cd34ef56 (pandas): 0/1 idle, 120 MB each" in page.text


async def test_the_console_can_be_turned_off(tmp_path: Path) -> None:
    async with console(make_settings(tmp_path, console_enabled=False)) as client:
        assert (await client.get("/console/login")).status_code == 404


async def test_artifacts_download_as_attachments_and_only_images_preview(
    settings: Settings,
) -> None:
    run_id = await run_code(settings, "artifact")
    async with console(settings) as client:
        await sign_in(client)
        download = await client.get(f"/console/runs/{run_id}/artifacts/outputs.csv")
        assert download.status_code == 200 and download.content == b"a,b\n1,2\n"
        assert download.headers["content-type"] == "application/octet-stream"
        assert download.headers["content-disposition"].startswith("attachment;")
        assert download.headers["content-security-policy"].startswith("sandbox;")
        preview = await client.get(f"/console/runs/{run_id}/preview/outputs.csv")
        assert preview.status_code == 404
        missing = await client.get(f"/console/runs/{run_id}/artifacts/..%2Fruns.sqlite3")
        assert missing.status_code == 404


async def test_filters_are_checked_and_pages_numbered(settings: Settings) -> None:
    async with console(settings) as client:
        await sign_in(client)
        assert (await client.get("/console/runs?status=nope")).status_code == 400
        assert (await client.get("/console/runs?since=3y")).status_code == 400
        assert (await client.get("/console/runs?page=0")).status_code == 400
        page = await client.get("/console/runs?status=failed&since=1h&page=1")
        assert page.status_code == 200 and "No runs match." in page.text
        assert (await client.get("/console/runs/nope")).status_code == 404


def seed(path: Path, count: int) -> list[str]:
    """``count`` finished runs with outputs of a realistic size, in one transaction."""
    store = RunStore(path)
    store.open()
    store.close()
    now = time.time()
    request = RunRequest(code="import pandas as pd\nprint(pd.__version__)\n" * 5)
    rows = []
    for n in range(count):
        status = RunStatus.FAILED if n % 10 == 0 else RunStatus.SUCCEEDED
        result = RunResult(
            id=f"run{n:05d}",
            status=status,
            exit_code=1 if status is RunStatus.FAILED else 0,
            stdout="row of output\n" * 100,
            stderr="Traceback (most recent call last):\n" * 10,
            timings=Timings(execute_s=0.5, total_s=1.0),
        )
        created = now - (count - n) * 30
        rows.append(
            (
                result.id,
                status.value,
                created,
                created + 1,
                created + 2,
                request.model_dump_json(),
                result.model_dump_json(),
            )
        )
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO runs (id, status, created_at, started_at, finished_at, request, result)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return [row[0] for row in rows]


PAGE_URLS = (
    "/console/runs",
    "/console/runs?page=200",
    "/console/runs?status=failed&page=20",
    "/console/runs?since=24h&page=30",
    "/console/runs?since=1h",
    "/console/runs?tenant=admin&status=failed&since=7d",
    "/console/runs/rows?status=succeeded",
)
SANITY_S = 3.0  # far above what a page takes; only a page that reads the table fails it


def _plan(db: sqlite3.Connection, statement: str) -> list[str]:
    return [row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {statement}")]


async def test_the_runs_pages_read_10000_runs_through_indexes(tmp_path: Path) -> None:
    """Every statement a runs page sends walks an index (the unfiltered page: the primary
    key, in seq order, stopping at its last row), so a page costs its size, not the table's."""
    settings = make_settings(tmp_path, api_tokens=[])
    ids = seed(tmp_path / "runs.sqlite3", 10_000)
    async with running_service(settings, token=None) as svc:
        db = svc.daemon.store._db()
        sent: list[str] = []
        db.set_trace_callback(sent.append)
        try:
            for url in (*PAGE_URLS, f"/console/runs/{ids[0]}"):
                started = time.perf_counter()
                answer = await svc.client.get(url)
                took = time.perf_counter() - started
                assert answer.status_code == 200, url
                assert took < SANITY_S, (url, took)
                print(f"{url}: {took * 1000:.0f} ms")
        finally:
            db.set_trace_callback(None)
        assert "10000 runs" in (await svc.client.get("/console/runs")).text
        reads = [s for s in sent if s.startswith("SELECT") and " FROM runs" in s]
        assert len(reads) >= 2 * len(PAGE_URLS), sent  # a count and a page each
        for statement in reads:
            plan = _plan(db, statement)
            scans = [step for step in plan if step.startswith("SCAN runs")]
            if " WHERE " not in statement and "ORDER BY seq DESC" in statement:
                assert plan == ["SCAN runs"], (statement, plan)  # the primary key, in order
                continue
            assert all("USING" in step and "INDEX" in step for step in scans), (statement, plan)
            assert any("INDEX" in step or "PRIMARY KEY" in step for step in plan), (statement, plan)


def test_the_visit_cookie_refuses_forgery_and_age() -> None:
    signer = Signer(b"k" * 32)
    visit = Visit.fresh("credential")
    value = signer.dump(visit)
    assert signer.load(value) == visit
    payload, signature = value.split(".")
    assert signer.load(f"{payload}x.{signature}") is None
    assert Signer(b"other key 123456").load(value) is None
    assert signer.load(value, now=visit.issued_at + MAX_AGE_S + 1) is None
    for junk in (None, "", "a.b.c", "!!.??", "e30.e30"):
        assert signer.load(junk) is None
    assert signer.csrf_ok(visit, signer.csrf(visit))
    assert not signer.csrf_ok(visit.logged_in("credential"), signer.csrf(visit))


def test_the_key_is_made_once_with_mode_0600_unless_set(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    key = load_key(settings)
    path = tmp_path / KEY_FILENAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(key) == 32
    assert load_key(settings) == key
    assert load_key(make_settings(tmp_path, console_secret="shared")) == b"shared"
    path.write_text("not hex")
    with pytest.raises(Exception, match="holds no key"):
        load_key(settings)


def test_highlight_marks_tokens_and_escapes_everything() -> None:
    html = str(highlight("def f(x):\n    return '<b>' + str(x)  # <i>\n"))
    assert '<span class="k">def</span> <span class="nf">f</span>' in html
    assert '<span class="s">&#39;&lt;b&gt;&#39;</span>' in html
    assert '<span class="nb">str</span>' in html
    assert '<span class="c"># &lt;i&gt;</span>' in html
    broken = str(highlight("x = '<unterminated\n"))  # the tokenizer gives up: text stays
    assert re.sub(r"</?span[^>]*>", "", broken) == "x = &#39;&lt;unterminated\n"


def test_sizes_and_durations_read_well() -> None:
    assert [size(n) for n in (10, 2048, 5 * 1024**3)] == ["10 B", "2.0 KiB", "5.0 GiB"]
    assert [duration(s) for s in (0.25, 3, 600, 7200, 30 * 86400)] == [
        "250 ms",
        "3.0 s",
        "10 min 0 s",
        "2 h 0 min",
        "30 d",
    ]


async def test_every_form_route_checks_origin_and_token(settings: Settings) -> None:
    """No state-changing console route can forget the check: each refuses a bare post."""
    async with running_service(settings, token=None) as svc:
        await sign_in(svc.client)
        routers = [login.router, *(router for _, router in SECTIONS)]
        posts = [
            route.path
            for router in routers
            for route in router.routes
            if isinstance(route, APIRoute) and "POST" in route.methods
        ]
        assert len(posts) >= 4, posts
        for path in posts:
            url = "/console" + path.replace("{run_id}", "r1").replace("{session_id}", "s1")
            url = url.replace("{action}", "close")
            answer = await svc.client.post(url, data={}, headers={"origin": ORIGIN})
            assert answer.status_code == 403, (path, answer.status_code)


async def _agent(client: httpx.AsyncClient, tenant: str) -> str:
    """A new agent tenant and its token's secret, made over the API by the admin."""
    assert (await client.post("/v1/tenants", json={"name": tenant})).status_code == 201
    made = await client.post("/v1/tokens", json={"tenant": tenant, "name": f"{tenant}-1"})
    assert made.status_code == 201, made.text
    secret: str = made.json()["secret"]
    return secret


async def test_a_tenant_sees_only_its_own_and_a_revoked_token_signs_out(
    settings: Settings,
) -> None:
    async with running_service(settings) as svc:
        secret_a = await _agent(svc.client, "team-a")
        secret_b = await _agent(svc.client, "team-b")
        as_a = {"Authorization": f"Bearer {secret_a}"}
        answer = await svc.client.post("/v1/runs", json={"code": "print('a')"}, headers=as_a)
        run_a = answer.json()["id"]
        transport = httpx.ASGITransport(app=svc.app)

        def browser() -> httpx.AsyncClient:
            return httpx.AsyncClient(transport=transport, base_url=ORIGIN)

        async with browser() as b, browser() as a, browser() as admin:
            assert (await sign_in(b, secret_b)).status_code == 303
            listed = await b.get("/console/runs")
            assert "team-b" in listed.text and "0 runs" in listed.text, listed.text
            assert run_a[:12] not in listed.text and ">Tenant<" not in listed.text
            assert "0 runs" in (await b.get("/console/runs?tenant=team-a")).text  # its own only
            for path in ("", "/events", "/artifacts/out.txt", "/preview/out.png"):
                answer = await b.get(f"/console/runs/{run_a}{path}")
                assert answer.status_code == 404, (path, answer.status_code)
            page = await b.get("/console/runs")
            cancel = await b.post(
                f"/console/runs/{run_a}/cancel",
                data={"csrf": csrf_of(page)},
                headers={"origin": ORIGIN},
            )
            assert cancel.status_code == 404

            assert ">Health<" not in listed.text  # the node's page is an admin's
            assert (await b.get("/console/health")).status_code == 403

            assert (await sign_in(a, secret_a)).status_code == 303
            assert run_a[:12] in (await a.get("/console/runs")).text
            assert (await a.get(f"/console/runs/{run_a}")).status_code == 200

            assert (await sign_in(admin)).status_code == 303
            everyone = await admin.get("/console/runs")
            assert run_a[:12] in everyone.text and ">Tenant<" in everyone.text
            assert run_a[:12] not in (await admin.get("/console/runs?tenant=team-b")).text

            revoked = await svc.client.delete("/v1/tokens/team-a-1")
            assert revoked.status_code == 200, revoked.text
            gone = await a.get("/console/runs")
            assert gone.status_code == 303 and "why=revoked" in gone.headers["location"]
            assert (await b.get("/console/runs")).status_code == 200  # B's token still holds


async def test_the_consoles_forms_are_in_the_audit_log_and_its_pages_are_not(
    settings: Settings,
) -> None:
    async with running_service(settings) as svc:
        secret = await _agent(svc.client, "team-a")
        transport = httpx.ASGITransport(app=svc.app)
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as browser:
            assert (await sign_in(browser, "not-a-token")).status_code == 401
            assert (await sign_in(browser, secret)).status_code == 303
            page = await browser.get("/console/runs")
            missing = await browser.post(
                "/console/sessions/s-none/close",
                data={"csrf": csrf_of(page)},
                headers={"origin": ORIGIN},
            )
            assert missing.status_code == 404
        entries = (await svc.client.get("/v1/audit?limit=10")).json()["items"]
        console = [e for e in entries if e["action"].startswith(("console.", "session."))]
        seen = [(e["action"], e["tenant"], e["status"]) for e in reversed(console)]
        assert seen == [
            ("console.login", None, 401),
            ("console.login", "team-a", 303),
            ("session.close", "team-a", 404),
        ], entries
        assert not any(e["action"] == "console.unknown" for e in entries)

        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as browser:
            assert (await sign_in(browser, secret)).status_code == 303
            assert (await browser.get("/console/audit")).status_code == 403  # an agent's token
            assert (await sign_in(browser)).status_code == 303
            page = await browser.get("/console/audit?action=console.")
            assert page.status_code == 200 and ">Audit log<" in page.text
            assert page.text.count("<code>console.login</code>") == 4  # 1 refused, 3 accepted
            assert "<code>session.close</code>" not in page.text
            rows = await browser.get("/console/audit/rows?tenant=team-a&action=session.close")
            assert rows.text.count("<code>session.close</code>") == 1 and "404" in rows.text
            assert (await browser.get("/console/audit?since=1y")).status_code == 400


async def test_an_admin_sees_tenants_makes_a_token_once_and_revokes_it(
    settings: Settings,
) -> None:
    async with running_service(settings) as svc:
        secret = await _agent(svc.client, "team-a")
        quota = {"quotas": {"concurrent_runs": 3, "storage_bytes": 2048}}
        assert (await svc.client.patch("/v1/tenants/team-a", json=quota)).status_code == 200
        transport = httpx.ASGITransport(app=svc.app)
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as browser:
            assert (await sign_in(browser, secret)).status_code == 303
            assert (await browser.get("/console/tenants")).status_code == 403
            assert (await sign_in(browser)).status_code == 303
            page = await browser.get("/console/tenants")
            assert page.status_code == 200, page.text
            assert "team-a" in page.text and "0 / 3" in page.text and "2.0 KiB" in page.text
            assert "team-a-1" in page.text and secret not in page.text

            async def post(path: str, **fields: str) -> httpx.Response:
                form = await browser.get("/console/tenants")
                data = {"csrf": csrf_of(form), **fields}
                return await browser.post(path, data=data, headers={"origin": ORIGIN})

            made = await post("/console/tenants/tokens", tenant="team-a", name="laptop")
            assert made.status_code == 201, made.text
            found = re.search(r'<code id="secret" class="secret">([^<]+)</code>', made.text)
            assert found, made.text
            as_new = {"Authorization": f"Bearer {found.group(1)}"}
            assert (await svc.client.get("/v1/runs", headers=as_new)).status_code == 200
            assert found.group(1) not in (await browser.get("/console/tenants")).text  # once

            again = await post("/console/tenants/tokens", tenant="team-a", name="laptop")
            assert again.status_code == 400 and "exists" in again.text
            for fields in ({"tenant": "nobody", "name": "x"}, {"tenant": "team-a", "name": "a b"}):
                assert (await post("/console/tenants/tokens", **fields)).status_code in (400, 404)
            bad = await post("/console/tenants/tokens", tenant="team-a", name="y", expires_h="x")
            assert bad.status_code == 400 and "expires_h" in bad.text

            revoked = await post("/console/tenants/tokens/laptop/revoke")
            assert revoked.status_code == 303
            assert (await svc.client.get("/v1/runs", headers=as_new)).status_code == 401
        entries = (await svc.client.get("/v1/audit?action=token.")).json()["items"]
        seen = [(e["action"], e["object_id"], e["status"]) for e in reversed(entries)]
        assert seen == [
            ("token.new", "team-a-1", 201),  # over the API
            ("token.new", "laptop", 201),
            ("token.new", "laptop", 400),
            ("token.new", "x", 404),
            ("token.new", "a b", 400),
            ("token.new", "y", 400),
            ("token.revoke", "laptop", 303),
        ]


async def test_the_health_page_names_the_egress_allow_list(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, api_tokens=[], egress_allow=["api.example.com"])
    async with running_service(settings, token=None) as svc:
        page = await svc.client.get("/console/health")
    assert "through the egress proxy, to: api.example.com" in page.text, page.text
