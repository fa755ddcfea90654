"""A worker's blob store against real API node routes under uvicorn (no database).

The API node is `create_app`'s cluster node, not started (its routes need only
its store and the secret), served on a free loopback port; a second app cuts
its answers halfway. `StaticPeers` stands in for the database's list of API nodes.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from ai_data_agent.errors import NotReady, RequestTooLarge, ServerError, Unauthorized
from ai_data_agent.service import create_app
from ai_data_agent.service.cluster.blob_routes import BlobServer
from ai_data_agent.settings import Settings
from ai_data_agent.storage import BlobRef, LocalBlobStore
from ai_data_agent.storage.blobs import PARTIAL
from ai_data_agent.storage.remote import HttpBlobStore
from tests.support.wait import poll

SECRET = "node-secret-for-tests"
DATA = os.urandom(300 * 1024)
DIGEST = hashlib.sha256(DATA).hexdigest()


@dataclass
class StaticPeers:
    listed: list[str]
    key: str = SECRET

    def urls(self) -> list[str]:
        return list(self.listed)

    def secret(self) -> str:
        return self.key


@dataclass
class Recorder:
    """ASGI middleware noting each request's method and Range header."""

    app: ASGIApp
    seen: list[tuple[str, str | None]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            value = headers.get(b"range")
            self.seen.append((scope["method"], value.decode() if value else None))
        await self.app(scope, receive, send)

    def methods(self) -> list[str]:
        return [method for method, _ in self.seen]


@dataclass
class ApiNode:
    url: str
    server: BlobServer
    recorder: Recorder

    @property
    def store(self) -> LocalBlobStore:
        assert isinstance(self.server.store, LocalBlobStore)
        return self.server.store

    def put(self, data: bytes) -> BlobRef:
        with self.store.writer() as writer:
            writer.write(data)
            return writer.commit()


@contextmanager
def served(app: ASGIApp) -> Iterator[str]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        poll(lambda: server.started, timeout_s=10, what="the test server")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def api_node_app(tmp_path: Path, **settings: object) -> tuple[Recorder, BlobServer]:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "api",
        "database_url": "postgresql://api@127.0.0.1:1/db",
        "api_tokens": "tenant-token",
        **settings,
    }
    app = create_app(Settings(**values))
    server: BlobServer = app.state.blob_server
    server.secret = SECRET
    return Recorder(app), server


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiNode]:
    recorder, server = api_node_app(tmp_path)
    with served(recorder) as url:
        yield ApiNode(url, server, recorder)


@pytest.fixture
def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there now


@pytest.fixture
def worker_store(tmp_path: Path) -> Iterator[Callable[..., HttpBlobStore]]:
    made: list[HttpBlobStore] = []

    def make(
        *urls: str, secret: str = SECRET, cache_max_bytes: int = 64 << 20, name: str = "w1"
    ) -> HttpBlobStore:
        store = HttpBlobStore(
            tmp_path / name / "blob-cache",
            StaticPeers(list(urls), secret),
            cache_max_bytes=cache_max_bytes,
        )
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def nothing_cached(store: HttpBlobStore) -> bool:
    partial = store.cache.root / PARTIAL
    return store.usage() == (0, 0) and not (partial.is_dir() and any(partial.iterdir()))


def test_a_worker_writes_a_blob_the_api_node_keeps_and_another_worker_reads_it(
    api: ApiNode, worker_store: Callable[..., HttpBlobStore]
) -> None:
    one = worker_store(api.url)
    with one.writer(max_bytes=len(DATA)) as writer:
        for start in range(0, len(DATA), 100_000):
            writer.write(DATA[start : start + 100_000])
        blob = writer.commit()
    assert blob == BlobRef(DIGEST, len(DATA))
    with api.store.open(DIGEST) as fh:
        assert fh.read() == DATA
    assert one.usage() == (1, len(DATA))  # the writer keeps its copy

    two = worker_store(api.url, name="w2")
    assert two.exists(DIGEST) and two.size(DIGEST) == len(DATA)
    path = two.path(DIGEST)
    assert path is not None and path.read_bytes() == DATA
    requests = len(api.recorder.seen)
    with two.open(DIGEST) as fh:
        assert fh.read() == DATA
    assert len(api.recorder.seen) == requests  # read from the local copy


def test_a_blob_nobody_has_is_none_and_a_name_that_is_no_digest_asks_nobody(
    api: ApiNode, worker_store: Callable[..., HttpBlobStore]
) -> None:
    store = worker_store(api.url)
    assert store.path(DIGEST) is None and not store.exists(DIGEST) and store.size(DIGEST) is None
    with pytest.raises(FileNotFoundError):
        store.open(DIGEST)
    asked = len(api.recorder.seen)
    assert store.path("../../etc/passwd") is None and not store.exists("x")
    assert len(api.recorder.seen) == asked
    assert nothing_cached(store)


def test_bytes_the_cluster_has_already_are_not_sent_again(
    api: ApiNode, worker_store: Callable[..., HttpBlobStore]
) -> None:
    api.put(DATA)
    store = worker_store(api.url)
    with store.writer() as writer:
        writer.write(DATA)
        assert writer.commit().digest == DIGEST
    assert api.recorder.methods() == ["HEAD"]


def test_a_dead_api_node_is_skipped_and_none_at_all_is_not_ready(
    api: ApiNode, dead_url: str, worker_store: Callable[..., HttpBlobStore]
) -> None:
    store = worker_store(dead_url, api.url)
    with store.writer() as writer:
        writer.write(DATA)
        writer.commit()
    assert api.store.exists(DIGEST)
    assert worker_store(dead_url, api.url, name="w2").path(DIGEST) is not None

    alone = worker_store(dead_url, name="w3")
    with pytest.raises(NotReady, match=dead_url):
        alone.path(DIGEST)
    with pytest.raises(NotReady, match=dead_url), alone.writer() as writer:
        writer.write(b"new bytes")
        writer.commit()
    assert nothing_cached(alone)  # no copy of a blob the cluster lacks
    with pytest.raises(NotReady, match="ADVERTISE_URL"):
        worker_store(name="w4").path(DIGEST)
    with pytest.raises(NotReady):
        alone.probe()
    assert store.probe() == api.url


def test_an_api_node_answering_503_is_passed_over(
    api: ApiNode, tmp_path: Path, worker_store: Callable[..., HttpBlobStore]
) -> None:
    api.put(DATA)
    recorder, starting = api_node_app(tmp_path / "starting")
    starting.secret = None  # it has not read the secret yet: 503 not_ready
    with served(recorder) as url:
        store = worker_store(url, api.url)
        assert store.path(DIGEST) is not None
        with pytest.raises(NotReady, match="HTTP 503 not_ready"):
            worker_store(url, name="w2").path(DIGEST)
    assert recorder.methods() == ["GET", "GET"]


def test_a_wrong_secret_is_refused_and_nothing_is_kept(
    api: ApiNode, worker_store: Callable[..., HttpBlobStore]
) -> None:
    api.put(DATA)
    store = worker_store(api.url, secret="guessed")
    with pytest.raises(Unauthorized, match=api.url):
        store.path(DIGEST)
    with pytest.raises(Unauthorized), store.writer() as writer:
        writer.write(b"other bytes")
        writer.commit()
    assert nothing_cached(store) and api.store.usage() == (1, len(DATA))


def test_bytes_that_are_not_the_blob_asked_for_are_refused_and_nothing_kept(
    api: ApiNode, worker_store: Callable[..., HttpBlobStore]
) -> None:
    path = api.store.path(api.put(DATA).digest)
    assert path is not None
    path.chmod(0o644)
    path.write_bytes(DATA[:-1] + b"\x00")  # the shared directory changed under the node
    store = worker_store(api.url)
    with pytest.raises(ServerError) as caught:
        store.path(DIGEST)
    assert caught.value.code == "invalid_response"
    assert nothing_cached(store)


async def cutting_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers every GET with the start of the blob, then drops the connection."""
    assert scope["type"] == "http"
    headers = [(b"content-length", str(len(DATA)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": DATA[: len(DATA) // 2], "more_body": True})
    raise ConnectionResetError("cut on purpose")


def test_a_cut_transfer_leaves_nothing_and_goes_on_from_where_it_stopped_elsewhere(
    api: ApiNode, worker_store: Callable[..., HttpBlobStore]
) -> None:
    api.put(DATA)
    with served(cutting_app) as cutting:
        alone = worker_store(cutting)
        with pytest.raises(NotReady, match="RemoteProtocolError"):
            alone.path(DIGEST)
        assert nothing_cached(alone)

        store = worker_store(cutting, api.url, name="w2")
        path = store.path(DIGEST)
    assert path is not None and path.read_bytes() == DATA
    assert api.recorder.seen == [("GET", f"bytes={len(DATA) // 2}-")]


def test_the_caps_of_the_writer_and_of_the_api_node_keep_nothing(
    tmp_path: Path, worker_store: Callable[..., HttpBlobStore]
) -> None:
    recorder, server = api_node_app(tmp_path, blob_max_bytes=1024)
    with served(recorder) as url:
        store = worker_store(url)
        with pytest.raises(RequestTooLarge), store.writer(max_bytes=10) as writer:
            writer.write(b"x" * 11)
        with pytest.raises(RequestTooLarge, match="blob_max_bytes"), store.writer() as writer:
            writer.write(b"y" * 2048)
            writer.commit()
    assert nothing_cached(store) and server.store.usage() == (0, 0)


def test_copies_are_evicted_least_recently_used_first(
    api: ApiNode, worker_store: Callable[..., HttpBlobStore]
) -> None:
    blobs = [api.put(bytes([n]) * 1000).digest for n in range(3)]
    store = worker_store(api.url, cache_max_bytes=2500)
    first, second, third = blobs
    assert store.path(first) and store.path(second)
    assert store.path(first)  # used again: now the second is the oldest
    assert store.path(third)
    held = {path.name for path in store.cache.blob_files()}
    assert held == {first, third}


def test_delete_and_sweep_touch_only_the_local_copies(
    api: ApiNode, worker_store: Callable[..., HttpBlobStore]
) -> None:
    api.put(DATA)
    store = worker_store(api.url)
    assert store.path(DIGEST) is not None
    assert store.delete(DIGEST) and store.usage() == (0, 0)
    assert api.store.exists(DIGEST) and store.exists(DIGEST)  # still the cluster's
    assert store.path(DIGEST) is not None
    assert store.sweep(set(), older_than_s=-1) == [DIGEST]
    assert api.store.exists(DIGEST)
