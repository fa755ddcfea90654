"""The datasets API in-process (no Docker): uploads, reads, deletes, caps, and tenants
(agent tenants ``a`` and ``b`` with tokens of their own, beside the configured admin token),
their storage quotas and the audit log."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from service_fakes import Service, assert_error, make_settings, running_service

from ai_data_agent.service import app as app_module
from ai_data_agent.service import session_routes, tenant_routes
from ai_data_agent.service.audit_http import ACTIONS
from ai_data_agent.service.datasets import routes
from ai_data_agent.service.datasets.service import DatasetService
from ai_data_agent.service.tenant_admin import TenantAdmin
from ai_data_agent.service.tenant_store import TenantStore
from ai_data_agent.tenant_models import Quotas, TenantCreate, TokenCreate

pytestmark = pytest.mark.anyio
CSV = b"date,units\n2024-01-01,3\n2024-01-02,4\n"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


SECRETS: dict[str, str] = {}  # tenant -> its token's secret, for the running test


def add_tenants(data_dir: Path, **quotas: Quotas) -> None:
    """Agent tenants ``a`` and ``b`` (and any in ``quotas``), each with a token."""
    store = TenantStore(data_dir / "tenants.sqlite3")
    store.open()
    try:
        admin = TenantAdmin(store)
        for name in sorted({"a", "b", *quotas}):
            admin.add_tenant(TenantCreate(name=name, quotas=quotas.get(name, Quotas())))
            token = TokenCreate(tenant=name, name=f"{name}-1")
            SECRETS[name] = admin.new_token(token).secret
    finally:
        store.close()


@pytest.fixture
async def svc(tmp_path: Path) -> AsyncIterator[Service]:
    settings = make_settings(tmp_path, dataset_max_file_bytes=1 << 20)
    add_tenants(tmp_path)
    async with running_service(settings) as service:
        yield service


def as_tenant(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS[name]}"}


async def put(
    client: httpx.AsyncClient, name: str, data: bytes = CSV, tenant: str = "a"
) -> httpx.Response:
    return await client.post(
        f"/v1/datasets/{name}/versions",
        params={"path": "sales.csv"},
        content=data,
        headers={"Content-Type": "application/octet-stream", **as_tenant(tenant)},
    )


async def test_a_version_is_uploaded_listed_read_and_deleted(svc: Service) -> None:
    created = await put(svc.client, "sales")
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1
    # The answer names what was stored, as the version's own page lists it.
    page = await svc.client.get("/v1/datasets/sales/versions/1", headers=as_tenant("a"))
    assert (
        created.json()["files"]
        == page.json()["files"]
        == [{"path": "sales.csv", "size": len(CSV), "sha256": hashlib.sha256(CSV).hexdigest()}]
    )
    second = await put(svc.client, "sales", CSV + b"2024-01-03,5\n")
    assert second.json()["version"] == 2
    listed = (await svc.client.get("/v1/datasets", headers=as_tenant("a"))).json()
    assert [(d["name"], d["latest"], d["versions"]) for d in listed["items"]] == [("sales", 2, 2)]
    assert listed["storage_bytes"] == 2 * len(CSV) + 13
    info = (await svc.client.get("/v1/datasets/sales", headers=as_tenant("a"))).json()
    (first_file,) = info["versions"][1]["files"]
    assert first_file["sha256"] == hashlib.sha256(CSV).hexdigest()
    ranged = await svc.client.get(
        "/v1/datasets/sales/versions/1/files/sales.csv",
        headers={"Range": "bytes=5-9", **as_tenant("a")},
    )
    assert (ranged.status_code, ranged.content) == (206, CSV[5:10])
    latest = await svc.client.get("/v1/datasets/sales/versions/latest", headers=as_tenant("a"))
    assert latest.json()["version"] == 2
    gone = await svc.client.delete("/v1/datasets/sales/versions/1", headers=as_tenant("a"))
    assert [v["version"] for v in gone.json()] == [1]
    missing = await svc.client.get("/v1/datasets/sales/versions/1", headers=as_tenant("a"))
    assert_error(missing, 404, "not_found")


async def test_another_tenant_gets_404_everywhere_and_cannot_mount(svc: Service) -> None:
    assert (await put(svc.client, "secret", tenant="a")).status_code == 201
    b = as_tenant("b")
    for method, url in (
        ("GET", "/v1/datasets/secret"),
        ("GET", "/v1/datasets/secret/versions/1"),
        ("GET", "/v1/datasets/secret/versions/latest"),
        ("GET", "/v1/datasets/secret/versions/1/files/sales.csv"),
        ("GET", "/v1/datasets/secret/versions/1/describe"),
        ("DELETE", "/v1/datasets/secret"),
        ("DELETE", "/v1/datasets/secret/versions/1"),
    ):
        answer = await svc.client.request(method, url, headers=b)
        assert_error(answer, 404, "not_found")
    assert (await svc.client.get("/v1/datasets", headers=b)).json()["items"] == []
    run = await svc.client.post(
        "/v1/runs", json={"code": "print(1)", "datasets": ["secret"]}, headers=b
    )
    assert_error(run, 404, "not_found")
    session = await svc.client.post("/v1/sessions", json={"datasets": ["secret@1"]}, headers=b)
    assert_error(session, 404, "not_found")
    # B's own dataset of the same name is B's, and A's stays A's.
    assert (await put(svc.client, "secret", b"other\n", tenant="b")).json()["version"] == 1
    mine = (await svc.client.get("/v1/datasets/secret", headers=as_tenant("a"))).json()
    assert mine["size"] == len(CSV)


async def test_the_admin_sees_every_tenants_datasets_and_names_one(svc: Service) -> None:
    await put(svc.client, "sales", tenant="a")
    await put(svc.client, "sales", CSV + CSV, tenant="b")
    everyone = (await svc.client.get("/v1/datasets")).json()  # the configured admin token
    assert [(d["tenant"], d["name"]) for d in everyone["items"]] == [("a", "sales"), ("b", "sales")]
    assert everyone["storage_bytes"] == 3 * len(CSV)
    only_b = (await svc.client.get("/v1/datasets", params={"tenant": "b"})).json()
    assert [d["tenant"] for d in only_b["items"]] == ["b"]
    bs = await svc.client.get("/v1/datasets/sales", params={"tenant": "b"})
    assert bs.json()["size"] == 2 * len(CSV)
    assert_error(await svc.client.get("/v1/datasets/sales"), 404, "not_found")  # the admin's own
    nobody = await svc.client.post(
        "/v1/datasets/x/versions",
        params={"path": "x", "tenant": "ghost"},
        content=b"1",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert "no tenant 'ghost'" in assert_error(nobody, 404, "not_found")
    # An agent naming another tenant acts on its own, as on every list.
    own = await svc.client.get("/v1/datasets/sales", params={"tenant": "b"}, headers=as_tenant("a"))
    assert own.json()["size"] == len(CSV)


async def test_a_tenants_storage_quota_bounds_its_datasets(tmp_path: Path) -> None:
    add_tenants(tmp_path, q=Quotas(storage_bytes=2 * len(CSV)))
    async with running_service(make_settings(tmp_path)) as svc:
        assert (await put(svc.client, "one", tenant="q")).status_code == 201
        assert (await put(svc.client, "two", tenant="q")).status_code == 201
        over = await put(svc.client, "three", tenant="q")
        message = assert_error(over, 413, "payload_too_large")
        assert "storage quota (storage_bytes)" in message
        listed = (await svc.client.get("/v1/datasets", headers=as_tenant("q"))).json()
        assert [d["name"] for d in listed["items"]] == ["one", "two"]
        assert (await put(svc.client, "three", tenant="a")).status_code == 201  # a's own room


async def test_dataset_requests_are_in_the_audit_log(svc: Service) -> None:
    await put(svc.client, "sales", tenant="a")
    await svc.client.get("/v1/datasets/sales/versions/1/files/sales.csv", headers=as_tenant("a"))
    await svc.client.get("/v1/datasets/sales", headers=as_tenant("b"))
    await svc.client.delete("/v1/datasets/sales", headers=as_tenant("a"))
    page = (await svc.client.get("/v1/audit", params={"action": "dataset.put"})).json()
    entries = (await svc.client.get("/v1/audit")).json()["items"]
    seen = [(e["tenant"], e["action"], e["object_id"], e["status"]) for e in reversed(entries)]
    assert ("a", "dataset.put", "sales@1", 201) in seen
    assert ("a", "dataset.download", "sales@1/sales.csv", 200) in seen
    assert ("b", "dataset.get", "sales", 404) in seen
    assert ("a", "dataset.rm", "sales", 200) in seen
    assert [e["object_id"] for e in page["items"]] == ["sales@1"]


def test_every_v1_route_has_its_audit_action() -> None:
    routers = (app_module.v1, session_routes.router, routes.router, tenant_routes.router)
    names = {r.name for router in routers for r in router.routes if isinstance(r, APIRoute)}
    assert len(names) > 30 and not names - set(ACTIONS)


async def test_a_pinned_mount_is_in_the_record(svc: Service) -> None:
    await put(svc.client, "sales")
    answer = await svc.client.post(
        "/v1/runs",
        json={"code": "print(1)", "datasets": ["sales", {"name": "sales", "path": "/mnt/s"}]},
        params={"wait": "false"},
        headers=as_tenant("a"),
    )
    assert answer.status_code == 202, answer.text
    record = (await svc.client.get(f"/v1/runs/{answer.json()['id']}")).json()
    pinned = record["request"]["datasets"]
    assert [(m["version"], m["path"]) for m in pinned] == [(1, "/data/sales"), (1, "/mnt/s")]
    assert all(len(m["digest"]) == 64 for m in pinned)
    wrong = await svc.client.post(
        "/v1/runs",
        json={"code": "1", "datasets": [{"name": "sales", "digest": "0" * 64}]},
        headers=as_tenant("a"),
    )
    assert_error(wrong, 400, "invalid_request")


async def test_uploads_are_refused_with_what_is_wrong(svc: Service) -> None:
    bad_name = await put(svc.client, "-bad")
    assert "dataset name" in assert_error(bad_name, 400, "invalid_request")
    no_path = await svc.client.post(
        "/v1/datasets/x/versions",
        content=b"1",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert "?path=" in assert_error(no_path, 400, "invalid_request")
    other_type = await svc.client.post(
        "/v1/datasets/x/versions", content=b"{}", headers={"Content-Type": "application/json"}
    )
    assert_error(other_type, 400, "invalid_request")
    too_big = await put(svc.client, "big", bytes((1 << 20) + 1))
    assert "per-file cap" in assert_error(too_big, 413, "payload_too_large")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        link = tarfile.TarInfo("escape")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    tarred = await svc.client.post(
        "/v1/datasets/t/versions",
        content=buffer.getvalue(),
        headers={"Content-Type": "application/x-tar"},
    )
    assert "'escape'" in assert_error(tarred, 400, "invalid_request")
    assert (await svc.client.get("/v1/datasets")).json()["items"] == []


async def test_the_body_cap_of_an_upload_is_the_datasets_not_the_json_one(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, max_body_bytes=1024, dataset_max_version_bytes=1 << 20)
    add_tenants(tmp_path)
    async with running_service(settings) as svc:
        fits = await put(svc.client, "ok", bytes(64 * 1024))  # far past max_body_bytes
        assert fits.status_code == 201, fits.text
        declared = await svc.client.post(
            "/v1/datasets/x/versions",
            params={"path": "x"},
            content=bytes(100),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(1 << 40)},
        )
        assert_error(declared, 413, "payload_too_large")


def test_gc_takes_what_no_version_names_and_nothing_else(tmp_path: Path) -> None:
    from ai_data_agent.service.datasets.service import Body
    from ai_data_agent.service.datasets.sqlite_store import DatasetStore
    from ai_data_agent.settings import Settings
    from ai_data_agent.storage import LocalBlobStore

    store = DatasetStore(tmp_path / "d.sqlite3")
    store.open()
    service = DatasetService(Settings(data_dir=tmp_path), store, LocalBlobStore(tmp_path / "s"))
    old = service.upload("a", "d", Body("file", [b"old"], path="x"))
    kept = service.upload("a", "d", Body("file", [b"new"], path="x"))
    shared = service.upload("a", "e", Body("file", [b"old"], path="y"))  # the same bytes
    spare = service.blobs.writer()
    spare.write(b"a checkpoint's")
    checkpoint = spare.commit().digest
    service.delete("a", "d", 1, force=False, mounted=set())
    assert service.collect_garbage(grace_s=0, keep=lambda: {checkpoint}).blobs == []
    service.delete("a", "e", None, force=False, mounted=set())
    report = service.collect_garbage(grace_s=0, keep=lambda: {checkpoint})
    old_blob = (service.manifest(kept.digest) or [])[0]
    assert report.manifests == 1 and len(report.blobs) == 1
    assert service.blobs.exists(old_blob.sha256) and service.blobs.exists(checkpoint)
    assert not service.blobs.exists(hashlib.sha256(b"old").hexdigest())
    assert service.manifest(old.digest) is None and shared.digest != kept.digest
    store.close()
