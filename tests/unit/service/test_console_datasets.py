"""The console's datasets pages, a run's mounted datasets, and a session's pause and resume,
in-process: tenants see only their own datasets, every value is escaped, the forms are
guarded and audited like the console's others."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from service_fakes import TOKEN, Service, running_service
from test_console import ORIGIN, _agent, csrf_of, sign_in
from test_service_sessions import daemon

from ai_data_agent.settings import Settings

pytestmark = pytest.mark.anyio
CSV = b"city,units\n<b>Oslo</b>,3\nLima,4\n"
HOSTILE = "<script>document.body.dataset.pwned=1</script>.csv"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _upload(
    svc: Service, name: str, path: str, data: bytes, secret: str | None = None
) -> dict[str, object]:
    headers = {"content-type": "application/octet-stream"}
    if secret is not None:
        headers["authorization"] = f"Bearer {secret}"
    answer = await svc.client.post(
        f"/v1/datasets/{name}/versions", params={"path": path}, content=data, headers=headers
    )
    assert answer.status_code == 201, answer.text
    version: dict[str, object] = answer.json()
    return version


def _browser(svc: Service) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=svc.app), base_url=ORIGIN)


async def test_datasets_pages_show_a_tenants_own_escaped(settings: Settings) -> None:
    async with running_service(settings) as svc:
        secret_a = await _agent(svc.client, "team-a")
        secret_b = await _agent(svc.client, "team-b")
        version = await _upload(svc, "sales", HOSTILE, CSV, secret_a)
        await _upload(svc, "sales", "sales.csv", CSV, secret_a)
        description = {
            "files": [
                {
                    "path": "sales.csv",
                    "format": "csv",
                    "size": len(CSV),
                    "rows": 2,
                    "columns": [{"name": "<i>city</i>", "type": "string"}],
                    "first_rows": [["<b>Oslo</b>"], ["Lima"]],
                }
            ]
        }
        await _describe_cached(svc, "team-a", "sales", 2, json.dumps(description))
        async with _browser(svc) as a, _browser(svc) as b, _browser(svc) as admin:
            assert (await sign_in(a, secret_a)).status_code == 303
            listed = await a.get("/console/datasets")
            assert 'href="/console/datasets" aria-current="page">Datasets<' in listed.text
            assert listed.status_code == 200 and ">sales</code>" in listed.text, listed.text
            assert "1 dataset," in listed.text and ">Tenant<" not in listed.text
            first = await a.get("/console/datasets/sales/versions/1")
            assert first.status_code == 200
            assert "<script>document" not in first.text and "&lt;script&gt;" in first.text
            assert "/files/%3Cscript%3E" in first.text  # the file's link is quoted
            got = await a.get(f"/console/datasets/sales/versions/1/files/{HOSTILE}")
            assert got.status_code == 200 and got.content == CSV
            assert got.headers["content-disposition"].startswith("attachment")
            assert got.headers["content-type"] == "application/octet-stream"
            versions = await a.get("/console/datasets/sales")
            assert "version 2" in versions.text and str(version["digest"])[:12] in versions.text
            shown = await a.get("/console/datasets/sales/versions/2/describe")
            assert shown.status_code == 200, shown.text
            assert "&lt;b&gt;Oslo&lt;/b&gt;" in shown.text and "<b>Oslo" not in shown.text
            assert "&lt;i&gt;city&lt;/i&gt;" in shown.text and "2 rows" in shown.text

            assert (await sign_in(b, secret_b)).status_code == 303
            assert "No datasets." in (await b.get("/console/datasets")).text
            assert "No datasets." in (await b.get("/console/datasets?tenant=team-a")).text
            for path in (
                "/sales",
                "/sales/versions/1",
                "/sales/versions/2/describe",
                "/sales/versions/1/files/sales.csv",
                "/sales?tenant=team-a",
            ):
                answer = await b.get(f"/console/datasets{path}")
                assert answer.status_code == 404, (path, answer.status_code)

            assert (await sign_in(admin)).status_code == 303
            everyone = await admin.get("/console/datasets")
            assert (
                ">Tenant<" in everyone.text
                and "/console/datasets/sales?tenant=team-a" in everyone.text
            )
            assert "No datasets." in (await admin.get("/console/datasets?tenant=team-b")).text
            owned = await admin.get("/console/datasets/sales/versions/2?tenant=team-a")
            assert owned.status_code == 200 and "sales.csv" in owned.text
            assert (await admin.get("/console/datasets/sales")).status_code == 404  # admin's own
            assert (await admin.get("/console/datasets/sales/versions/0")).status_code == 400


async def _describe_cached(svc: Service, tenant: str, name: str, version: int, body: str) -> None:
    """A description kept with the version, as a describe run leaves it."""
    datasets = svc.daemon.datasets
    found = datasets.version(tenant, name, version, files=False)
    datasets.records.set_description(found.digest, body)


async def test_a_runs_page_names_the_datasets_it_mounted(settings: Settings) -> None:
    async with running_service(settings) as svc:
        await _upload(svc, "weather", "w.csv", CSV)
        request = {
            "code": "print(1)",
            "datasets": ["weather", {"name": "weather", "path": "/mnt/w"}],
        }
        answer = await svc.client.post("/v1/runs", json=request)
        assert answer.status_code in (200, 201, 202), answer.text
        run_id = answer.json()["id"]
        async with _browser(svc) as browser:
            assert (await sign_in(browser)).status_code == 303
            page = await browser.get(f"/console/runs/{run_id}")
        assert page.status_code == 200
        assert 'id="datasets"' in page.text and "<code>/data/weather</code>" in page.text
        assert "<code>/mnt/w</code>" in page.text
        assert "/console/datasets/weather/versions/1" in page.text


async def test_a_session_shows_its_cells_code_pauses_and_resumes_from_its_page(
    tmp_path: Path, sandbox_tmp: Path
) -> None:
    async with daemon(tmp_path, sandbox_tmp) as (client, _):
        sid = (await client.post("/v1/sessions", json={})).json()["id"]
        cell = await client.post(f"/v1/sessions/{sid}/cells", json={"code": "x = 41"})
        assert cell.json()["status"] == "succeeded", cell.text
        origin = str(client.base_url).rstrip("/")
        form = await client.get("/console/login")
        login = {"csrf": csrf_of(form), "token": TOKEN, "next": "/console/runs"}
        assert (
            await client.post("/console/login", data=login, headers={"origin": origin})
        ).status_code == 303

        async def act(action: str, **headers: str) -> httpx.Response:
            page = await client.get(f"/console/sessions/{sid}")
            data = {"csrf": csrf_of(page)} if "csrf" not in headers else {}
            headers.pop("csrf", None)
            return await client.post(
                f"/console/sessions/{sid}/{action}",
                data=data,
                headers={"origin": origin, **headers},
            )

        tagged = await client.post(f"/v1/sessions/{sid}/cells", json={"code": "t = '<b>x</b>'"})
        assert tagged.json()["status"] == "succeeded", tagged.text
        page = await client.get(f"/console/sessions/{sid}")
        assert page.text.count('<pre class="code cell-code">') == 2  # each cell's code
        assert "&lt;b&gt;x&lt;/b&gt;" in page.text and "<b>x</b>" not in page.text
        assert 'id="pause"' in page.text and 'id="resume"' not in page.text
        assert "live: a container holds" in page.text
        assert (await act("pause", csrf="none")).status_code == 403
        assert (await act("pause", origin="http://elsewhere")).status_code == 403
        assert (await client.get(f"/v1/sessions/{sid}")).json()["status"] == "idle"
        assert (await act("pause")).status_code == 303
        page = await client.get(f"/console/sessions/{sid}")
        assert (await client.get(f"/v1/sessions/{sid}")).json()["status"] == "paused"
        assert 'id="resume"' in page.text and 'id="pause"' not in page.text
        assert "paused: checkpointed" in page.text and ">Interrupt<" not in page.text
        assert "1 paused" in (await client.get("/console/sessions/rows")).text
        assert (await act("resume")).status_code == 303
        assert (await client.get(f"/v1/sessions/{sid}")).json()["status"] == "idle"
        value = await client.post(f"/v1/sessions/{sid}/cells", json={"code": "x + 1"})
        assert value.json()["result"]["data"]["text/plain"] == "42", value.text
        entries = (await client.get("/v1/audit?action=session.")).json()["items"]
        seen = [(e["action"], e["object_id"], e["status"]) for e in reversed(entries)]
        console = [s for s in seen if s[0] in ("session.pause", "session.resume")]
        assert console == [
            ("session.pause", sid, 403),
            ("session.pause", sid, 403),
            ("session.pause", sid, 303),
            ("session.resume", sid, 303),
        ], seen
