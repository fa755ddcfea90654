"""An API node's internal blob routes, in-process: the node secret only, Range, digests checked.

The app is a cluster's API node as `create_app` makes it (its middleware, its
routes), not started: these routes need only the node's store and the secret.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_fakes import TOKEN, make_settings

from ai_data_agent.service import create_app
from ai_data_agent.service.audit_store import AuditStore
from ai_data_agent.service.cluster.blob_routes import BlobServer
from ai_data_agent.storage import LocalBlobStore
from ai_data_agent.storage.blob_wire import BLOBS_ROUTE, NODE_AUTH_HEADER
from ai_data_agent.storage.blobs import PARTIAL

pytestmark = pytest.mark.anyio

SECRET = "the-cluster-node-secret"
CAP = 64 * 1024
DATA = bytes(range(256)) * 40  # 10240 bytes
DIGEST = hashlib.sha256(DATA).hexdigest()
NODE = {NODE_AUTH_HEADER: SECRET}


@dataclass
class Node:
    client: httpx.AsyncClient
    server: BlobServer

    @property
    def store(self) -> LocalBlobStore:
        assert isinstance(self.server.store, LocalBlobStore)
        return self.server.store


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    settings = make_settings(
        tmp_path, database_url="postgresql://api@127.0.0.1:1/db", blob_max_bytes=CAP
    )
    app = create_app(settings)
    server: BlobServer = app.state.blob_server
    server.secret = SECRET  # what the node reads from the database at start
    # The audit log on a file instead of the cluster's database, which is not there.
    audit = app.state.daemon.audit
    audit.store = AuditStore(tmp_path / "audit.db")
    audit.start()
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield Node(client, server)
    finally:
        audit.stop()


def _nothing_kept(store: LocalBlobStore) -> bool:
    partial = store.root / PARTIAL
    return store.usage() == (0, 0) and not (partial.is_dir() and any(partial.iterdir()))


async def _put(client: httpx.AsyncClient, digest: str, body: Any, **headers: str) -> httpx.Response:
    return await client.put(f"{BLOBS_ROUTE}/{digest}", content=body, headers={**NODE, **headers})


async def test_a_blob_written_is_in_the_node_store_and_read_back_whole_or_by_range(
    node: Node,
) -> None:
    written = await _put(node.client, DIGEST, DATA)
    assert written.status_code == 201, written.text
    assert written.json() == {"digest": DIGEST, "size": len(DATA)}
    with node.store.open(DIGEST) as fh:
        assert fh.read() == DATA

    whole = await node.client.get(f"{BLOBS_ROUTE}/{DIGEST}", headers=NODE)
    assert whole.status_code == 200 and whole.content == DATA
    head = await node.client.head(f"{BLOBS_ROUTE}/{DIGEST}", headers=NODE)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(DATA))
    part = await node.client.get(f"{BLOBS_ROUTE}/{DIGEST}", headers={**NODE, "Range": "bytes=100-"})
    assert part.status_code == 206 and part.content == DATA[100:]
    assert part.headers["content-range"] == f"bytes 100-{len(DATA) - 1}/{len(DATA)}"

    again = await _put(node.client, DIGEST, DATA)  # the same bytes: one copy
    assert again.status_code == 201 and node.store.usage() == (1, len(DATA))


async def test_absent_blobs_and_names_that_are_no_digest_are_404(
    node: Node,
) -> None:
    for name in (DIGEST, "../../etc/passwd", DIGEST.upper()):
        answer = await node.client.get(f"{BLOBS_ROUTE}/{name}", headers=NODE)
        assert answer.status_code == 404, name
    refused = await _put(node.client, "not-a-digest", b"x")
    assert refused.status_code == 400 and "sha256" in refused.json()["error"]["message"]


async def test_bytes_that_do_not_hash_to_the_claimed_digest_are_refused_and_nothing_kept(
    node: Node,
) -> None:
    answer = await _put(node.client, DIGEST, DATA[:-1] + b"!")
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_request"
    assert "nothing was kept" in answer.json()["error"]["message"]
    assert _nothing_kept(node.store)


async def test_a_body_shorter_than_declared_is_refused_and_nothing_kept(
    node: Node,
) -> None:
    answer = await _put(node.client, DIGEST, DATA[:5000], **{"Content-Length": str(len(DATA))})
    assert answer.status_code == 400 and "ended after 5000" in answer.text
    assert _nothing_kept(node.store)


async def test_the_size_cap_and_a_missing_length_are_refused_before_anything_is_kept(
    node: Node,
) -> None:
    big = b"x" * (CAP + 1)
    answer = await _put(node.client, hashlib.sha256(big).hexdigest(), big)
    assert answer.status_code == 413 and "blob_max_bytes" in answer.text

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length
        yield DATA

    answer = await _put(node.client, DIGEST, chunked())
    assert answer.status_code == 400 and "Content-Length" in answer.text
    assert _nothing_kept(node.store)


async def test_only_the_node_secret_opens_the_routes_never_a_tenant_token(
    node: Node,
) -> None:
    await _put(node.client, DIGEST, DATA)
    tenant = {"Authorization": f"Bearer {TOKEN}"}
    assert (await node.client.get("/v1/info", headers=tenant)).status_code == 200  # a valid token
    url = f"{BLOBS_ROUTE}/{DIGEST}"
    for headers in (
        {},
        tenant,
        {"Authorization": f"Bearer {SECRET}"},  # the secret, but not where it belongs
        {NODE_AUTH_HEADER: TOKEN},
        {NODE_AUTH_HEADER: SECRET[:-1]},
        {NODE_AUTH_HEADER: SECRET + "x"},
    ):
        for method in ("GET", "HEAD"):
            answer = await node.client.request(method, url, headers=headers)
            assert answer.status_code == 401, (method, headers)
        put = await node.client.put(url, content=DATA, headers=headers)
        assert put.status_code == 401, headers
        assert b"\x00\x01" not in (await node.client.get(url, headers=headers)).content
    # And the secret is no bearer token of the tenants' API: unknown to the settings,
    # it is asked of the cluster's database, which is absent here (503), else 401.
    answer = await node.client.get("/v1/info", headers={"Authorization": f"Bearer {SECRET}"})
    assert answer.status_code in (401, 503), answer.text


async def test_a_node_that_has_not_read_the_secret_yet_is_not_ready(
    node: Node,
) -> None:
    node.server.secret = None
    answer = await node.client.get(f"{BLOBS_ROUTE}/{DIGEST}", headers=NODE)
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "not_ready"


async def test_the_routes_are_not_in_the_openapi_document(node: Node) -> None:
    paths = (await node.client.get("/openapi.json")).json()["paths"]
    assert paths and not [path for path in paths if path.startswith("/internal")]


async def test_a_one_node_daemon_has_no_internal_routes(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://one"
    ) as client:
        answer = await client.get(f"{BLOBS_ROUTE}/{DIGEST}", headers=NODE)
    assert answer.status_code == 404
