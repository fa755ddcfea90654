"""A worker's `BlobStore`: the cluster's blobs, kept by the API nodes, copied here when read.

    store = HttpBlobStore(data_dir / "blob-cache", peers, cache_max_bytes=20 << 30)
    with store.writer(max_bytes=cap) as writer:     # spooled to a local file, hashed
        writer.write(chunk)
        blob = writer.commit()                       # uploaded: now the cluster has it
    store.path(blob.digest)                          # a local copy, fetched once and verified

The API nodes of a cluster keep its blobs in a directory they share
(`LocalBlobStore`); a worker reaches them only through an API node, over HTTP
at the URLs the live API nodes advertise (`Peers`), presenting the cluster's
node secret in `blob_wire.NODE_AUTH_HEADER` (``service/cluster/blob_routes.py`` is the
other side). Each call tries the API nodes in the order `Peers.urls` gives,
moving to the next on a connection error, a cut transfer or a 502/503/504; a
read cut halfway goes on from where it stopped (HTTP Range) on the next node.

The local copies live in a `LocalBlobStore` of their own: a fetched blob
becomes visible there only whole and once its sha256 is the one asked for, so
a cut or a wrong answer leaves nothing; copies are evicted least recently used
first once they pass ``cache_max_bytes`` (a path handed out stays valid until
then: use it promptly). Two threads asking at once for the same missing blob
may both fetch it; one copy is kept.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

import httpx
from loguru import logger

from ai_data_agent.errors import NotReady, ServerError
from ai_data_agent.storage.blob_wire import BLOBS_ROUTE, CHUNK, NODE_AUTH_HEADER
from ai_data_agent.storage.blobs import BlobRef, BlobWriter, LocalBlobStore, is_digest
from ai_data_agent.wire_errors import rebuild_error

__all__ = ["HttpBlobStore", "Peers"]

CONNECT_TIMEOUT_S = 5.0
UNAVAILABLE = (502, 503, 504)  # this node cannot answer now; another may
PROBE_DIGEST = "0" * 64  # a blob nobody has: asking for it tests the route and the secret

T = TypeVar("T")


class Peers(Protocol):
    """Where the cluster's blobs are served, and the secret that opens the routes."""

    def urls(self) -> list[str]:
        """Base URLs of the live API nodes, in the order to try them.

        Raises:
            NotReady: the directory cannot be read (the database is down).
        """

    def secret(self) -> str:
        """The cluster's node secret.

        Raises:
            NotReady: it cannot be read.
        """


class HttpBlobStore:
    """`BlobStore` of a worker (see the module docstring). ``delete`` and ``sweep`` act
    on the local copies only: deleting a blob from the cluster's store is an API
    node's business, decided by the records that name it."""

    def __init__(
        self,
        cache_dir: Path,
        peers: Peers,
        *,
        cache_max_bytes: int,
        max_bytes: int | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.cache = LocalBlobStore(cache_dir)
        self._peers = peers
        self._cache_max = cache_max_bytes
        self._max = max_bytes
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S),
            follow_redirects=False,
            trust_env=False,  # never through a proxy of the environment: the secret goes along
        )

    def close(self) -> None:
        self._client.close()

    # -- BlobStore ----------------------------------------------------------------------
    def writer(
        self, *, max_bytes: int | None = None, what: str = "upload", durable: bool = True
    ) -> _UploadWriter:
        """A writer that spools to a local file (within ``max_bytes`` and the cluster's
        cap) and uploads on `commit`, which returns once an API node has the blob (which
        the API node keeps as it keeps any: ``durable`` counts for the spool only)."""
        caps = [cap for cap in (max_bytes, self._max) if cap is not None]
        spool = self.cache.writer(max_bytes=min(caps, default=None), what=what, durable=durable)
        return _UploadWriter(self, spool)

    def exists(self, digest: str) -> bool:
        return self.size(digest) is not None

    def size(self, digest: str) -> int | None:
        if not is_digest(digest):
            return None
        local = self.cache.size(digest)
        if local is not None:
            return local
        return self._attempt("look up", digest, lambda url: self._head(url, digest))

    def open(self, digest: str) -> BinaryIO:
        path = self.path(digest)
        if path is None:
            raise FileNotFoundError(f"no blob {digest[:12]} in the cluster's store")
        return path.open("rb")

    def path(self, digest: str) -> Path | None:
        """The local copy, fetched first when there is none; None when the cluster has
        no such blob.

        Raises:
            NotReady: no API node could be reached, or all cut the transfer.
            ServerError: the bytes that arrived are not the blob (code ``invalid_response``).
        """
        if not is_digest(digest):
            return None
        local = self.cache.path(digest)
        if local is not None:
            _touch(local)
            return local
        return self._fetch(digest)

    def delete(self, digest: str) -> bool:
        """Drop the local copy only (see the class docstring)."""
        return self.cache.delete(digest)

    def sweep(self, keep: set[str], *, older_than_s: float) -> list[str]:
        """Sweep the local copies only (see the class docstring)."""
        return self.cache.sweep(keep, older_than_s=older_than_s)

    def usage(self) -> tuple[int, int]:
        """(number, bytes) of the local copies."""
        return self.cache.usage()

    def probe(self) -> str:
        """The URL of an API node that answers its internal route to this node's secret.

        Raises:
            NotReady: none does (or none is advertised).
        """
        return self._attempt("reach", PROBE_DIGEST, self._reach)

    # -- the wire -----------------------------------------------------------------------
    def _attempt(self, what: str, digest: str, call: Callable[[str], T]) -> T:
        """``call(url)`` on each live API node in turn until one answers."""
        urls = self._peers.urls()
        if not urls:
            raise NotReady(
                f"cannot {what} blob {digest[:12]}: no live API node advertises a URL "
                "(set AI_DATA_AGENT_ADVERTISE_URL on the API nodes)"
            )
        failures = []
        for url in urls:
            try:
                return call(url)
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except NotReady as exc:
                if exc.status_code is None:
                    raise  # not the node's answer: this side cannot go on (the secret)
                reason = str(exc)
            logger.warning("API node {} could not {} blob {}: {}", url, what, digest[:12], reason)
            failures.append(f"{url}: {reason}")
        raise NotReady(f"no API node could {what} blob {digest[:12]}: " + "; ".join(failures))

    def _url(self, base: str, digest: str) -> str:
        return f"{base}{BLOBS_ROUTE}/{digest}"

    def _headers(self) -> dict[str, str]:
        return {NODE_AUTH_HEADER: self._peers.secret()}

    def _reach(self, base: str) -> str:
        self._head(base, PROBE_DIGEST)
        return base

    def _head(self, base: str, digest: str) -> int | None:
        response = self._client.head(self._url(base, digest), headers=self._headers())
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            _refuse(response, base)
        return int(response.headers["content-length"])

    def _fetch(self, digest: str) -> Path | None:
        with self.cache.writer(what=f"blob {digest[:12]}") as writer:
            found = self._attempt("read", digest, lambda url: self._download(url, digest, writer))
            if not found:
                return None
            if writer.digest != digest:
                raise ServerError(
                    f"blob {digest[:12]} arrived as {writer.size} bytes hashing to "
                    f"{writer.digest[:12]}: refused, nothing kept",
                    code="invalid_response",
                )
            writer.commit()
        self._evict(keep=digest)
        return self.cache.path(digest)

    def _download(self, base: str, digest: str, writer: BlobWriter) -> bool:
        """Append the blob to ``writer`` from where it stands; False when there is none."""
        offset = writer.size
        headers = {**self._headers(), **({"Range": f"bytes={offset}-"} if offset else {})}
        with self._client.stream("GET", self._url(base, digest), headers=headers) as response:
            if response.status_code == 404:
                return False
            if response.status_code not in (200, 206):
                response.read()
                _refuse(response, base)
            if response.status_code == 206:
                _check_range(response, offset)
            skip = offset if response.status_code == 200 else 0  # the Range was not honoured
            for chunk in response.iter_bytes():  # as they arrive: a cut keeps what came
                if skip:
                    cut = min(skip, len(chunk))
                    chunk, skip = chunk[cut:], skip - cut
                if chunk:
                    writer.write(chunk)
        return True

    def _publish(self, inner: BlobWriter) -> BlobRef:
        """Commit ``inner`` into the local copies and upload it; no local copy stays
        behind when the upload fails (it would claim a blob the cluster lacks)."""
        had = self.cache.exists(inner.digest)
        ref = inner.commit()
        try:
            with self.cache.open(ref.digest) as fh:
                self._attempt("write", ref.digest, lambda url: self._upload(url, ref, fh))
        except BaseException:
            if not had:
                self.cache.delete(ref.digest)
            raise
        self._evict(keep=ref.digest)
        return ref

    def _upload(self, base: str, ref: BlobRef, fh: BinaryIO) -> None:
        if self._head(base, ref.digest) is not None:
            return  # the cluster has these bytes already
        fh.seek(0)
        response = self._client.put(
            self._url(base, ref.digest),
            content=_chunks(fh),
            headers={
                **self._headers(),
                "Content-Length": str(ref.size),
                "Content-Type": "application/octet-stream",
            },
        )
        if response.status_code not in (200, 201):
            _refuse(response, base)
        logger.debug("blob {} ({} bytes) written through {}", ref.digest[:12], ref.size, base)

    def _evict(self, *, keep: str) -> None:
        """Remove the least recently used copies (``keep`` spared) down to the bound."""
        held = []
        for path in self.cache.blob_files():
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            held.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in held)
        for _, size, path in sorted(held):
            if total <= self._cache_max:
                break
            if path.name != keep:
                path.unlink(missing_ok=True)
                total -= size
                logger.debug("blob {} evicted from the local cache", path.name[:12])


class _UploadWriter:
    """A local writer whose `commit` also uploads (`HttpBlobStore._publish`)."""

    def __init__(self, store: HttpBlobStore, inner: BlobWriter) -> None:
        self._store = store
        self._inner = inner

    @property
    def size(self) -> int:
        return self._inner.size

    @property
    def digest(self) -> str:
        return self._inner.digest

    def write(self, chunk: bytes) -> None:
        self._inner.write(chunk)

    def commit(self) -> BlobRef:
        """Upload the blob and return it.

        Raises:
            NotReady: no API node took it (nothing is kept here).
            RequestRejected: an API node refused it (its cap, a wrong digest).
        """
        return self._store._publish(self._inner)

    def __enter__(self) -> _UploadWriter:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._inner.__exit__(*exc_info)  # discards the spool unless committed


def _refuse(response: httpx.Response, base: str) -> None:
    """Raise what an API node's error answer stands for; `NotReady` for 502-504 (a node
    that cannot answer now, which `HttpBlobStore._attempt` passes over)."""
    code, message = None, response.reason_phrase
    try:
        detail = response.json()["error"]
        code, message = str(detail["code"]), str(detail["message"])
    except (ValueError, KeyError, TypeError):
        pass
    message = f"{message} (API node {base})"
    if response.status_code in UNAVAILABLE:
        raise NotReady(message, status_code=response.status_code)
    raise rebuild_error(code, message, status=response.status_code)


def _check_range(response: httpx.Response, offset: int) -> None:
    start = response.headers.get("content-range", "").removeprefix("bytes ").partition("-")[0]
    if start != str(offset):
        raise ServerError(
            f"asked for bytes from {offset}, got {response.headers.get('content-range')!r}",
            code="invalid_response",
        )


def _chunks(fh: BinaryIO) -> Iterator[bytes]:
    while chunk := fh.read(CHUNK):
        yield chunk


def _touch(path: Path) -> None:
    """Mark a copy as just used (eviction goes by mtime: atime is often not kept)."""
    try:
        os.utime(path)
    except OSError:
        pass
