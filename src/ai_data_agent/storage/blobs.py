"""Content-addressed blobs: the `BlobStore` interface and its directory implementation.

    store = LocalBlobStore(Path("/var/lib/ai-data-agent/storage"))
    with store.writer(max_bytes=2 << 30) as writer:
        writer.write(b"col\\n1\\n")
        blob = writer.commit()          # BlobRef(digest='9f86...', size=6)
    store.path(blob.digest)             # <root>/blobs/9f/86d0...; None when absent

A writer streams into a private temporary file beside the blobs (same file
system, so the final rename is atomic), hashing as it goes, the disk writing
behind it (`writeback`); `commit` fsyncs and renames it to its digest's name,
or drops it when that blob exists already. A writer asked for with
``durable=False`` skips the fsyncs (and the early writes): for bytes that are
checked against their digest whenever they are read back (checkpoints), where
a blob that a crash of the machine cut short is refused, never used. A writer left without `commit` (an exception, a cut connection)
removes its file on exit; a crash leaves only a temporary file, which
`sweep` removes once it is old. Nothing here parses what it stores.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol

from ai_data_agent.errors import ConfigurationError, RequestTooLarge
from ai_data_agent.storage.writeback import EarlyWriteback

__all__ = ["BlobRef", "BlobStore", "BlobWriter", "LocalBlobStore", "is_digest"]

DIGEST = re.compile(r"^[0-9a-f]{64}$")
BLOBS = "blobs"
PARTIAL = "partial"
PARTIAL_PREFIX = "upload-"


def is_digest(value: str) -> bool:
    """A sha256 in lower-case hex: the only names a blob has."""
    return bool(DIGEST.match(value))


@dataclass(frozen=True)
class BlobRef:
    """A stored blob: its sha256 (lower-case hex) and its size in bytes."""

    digest: str
    size: int


class BlobWriter(Protocol):
    """One blob being written; a context manager that discards it unless committed."""

    @property
    def size(self) -> int:
        """Bytes written so far."""

    @property
    def digest(self) -> str:
        """The sha256 (lower-case hex) of the bytes written so far: checked before `commit`
        when the writer was told which blob to expect."""

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``.

        Raises:
            RequestTooLarge: the blob would pass its ``max_bytes``; nothing is kept.
        """

    def commit(self) -> BlobRef:
        """Make the blob visible under its digest and return it."""

    def __enter__(self) -> BlobWriter: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class BlobStore(Protocol):
    """Immutable bytes by their sha256. Every method is blocking and thread-safe."""

    def writer(
        self, *, max_bytes: int | None = None, what: str = "upload", durable: bool = True
    ) -> BlobWriter:
        """A writer for one new blob of at most ``max_bytes`` (``what`` names it in errors);
        ``durable``: on disk when `BlobWriter.commit` returns (see the module docstring)."""

    def exists(self, digest: str) -> bool: ...

    def size(self, digest: str) -> int | None:
        """The blob's size, or None when there is no such blob."""

    def open(self, digest: str) -> BinaryIO:
        """The blob for reading.

        Raises:
            FileNotFoundError: no such blob.
        """

    def path(self, digest: str) -> Path | None:
        """A local file holding the blob (for ranged answers), or None when absent."""

    def delete(self, digest: str) -> bool:
        """Remove the blob; False when it was not there."""

    def sweep(self, keep: set[str], *, older_than_s: float) -> list[str]:
        """Remove blobs not in ``keep`` and leftovers of cut writes, both older than
        ``older_than_s`` (a blob just committed, not yet recorded, is spared)."""

    def usage(self) -> tuple[int, int]:
        """(number of blobs, bytes) held."""


class _LocalWriter:
    def __init__(self, root: Path, max_bytes: int | None, what: str, durable: bool) -> None:
        self._root = root
        self._durable = durable
        self._max = max_bytes
        self._what = what
        fd, name = tempfile.mkstemp(prefix=PARTIAL_PREFIX, dir=root / PARTIAL)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._path = Path(name)
        self._hash = hashlib.sha256()
        self._size = 0
        self._done = False
        self._early = EarlyWriteback(fd) if durable else None

    @property
    def size(self) -> int:
        return self._size

    @property
    def digest(self) -> str:
        return self._hash.hexdigest()

    def write(self, chunk: bytes) -> None:
        if self._file is None:
            raise ValueError("the blob is committed or discarded already")
        if self._max is not None and self._size + len(chunk) > self._max:
            self.discard()
            raise RequestTooLarge(self._what, f"larger than {self._max} bytes")
        self._file.write(chunk)
        self._hash.update(chunk)
        self._size += len(chunk)
        if self._early is not None and self._early.due(self._size):
            self._file.flush()
            self._early.written(self._size)

    def commit(self) -> BlobRef:
        if self._file is None:
            raise ValueError("the blob is committed or discarded already")
        ref = BlobRef(self._hash.hexdigest(), self._size)
        final = _blob_path(self._root, ref.digest)
        final.parent.mkdir(exist_ok=True)
        if final.exists():  # the same bytes are there already: keep the one copy
            self._file.close()
            self._path.unlink(missing_ok=True)
        else:
            self._file.flush()
            if self._durable:
                os.fsync(self._file.fileno())
            os.chmod(self._path, 0o444)
            os.replace(self._path, final)
            if self._durable:
                _fsync_dir(final.parent)
            self._file.close()
        self._file = None
        self._done = True
        return ref

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if not self._done:
            self._path.unlink(missing_ok=True)
            self._done = True

    def __enter__(self) -> _LocalWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()


class LocalBlobStore:
    """Blobs as read-only files under ``root/blobs/<2 hex>/<digest>``. See the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def prepare(self) -> None:
        """Create the directories and check they can be written.

        Raises:
            ConfigurationError: the directory cannot be created or written.
        """
        try:
            (self.root / BLOBS).mkdir(parents=True, exist_ok=True)
            (self.root / PARTIAL).mkdir(exist_ok=True)
            tempfile.TemporaryFile(dir=self.root / PARTIAL).close()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot write the storage directory {self.root}: {exc.strerror}; "
                "check AI_DATA_AGENT_STORAGE_DIR"
            ) from exc

    def writer(
        self, *, max_bytes: int | None = None, what: str = "upload", durable: bool = True
    ) -> _LocalWriter:
        self.prepare()
        return _LocalWriter(self.root, max_bytes, what, durable)

    def exists(self, digest: str) -> bool:
        return self.path(digest) is not None

    def size(self, digest: str) -> int | None:
        path = self.path(digest)
        return path.stat().st_size if path is not None else None

    def open(self, digest: str) -> BinaryIO:
        path = self.path(digest)
        if path is None:
            raise FileNotFoundError(f"no blob {digest[:12]}")
        return path.open("rb")

    def path(self, digest: str) -> Path | None:
        if not is_digest(digest):
            return None
        path = _blob_path(self.root, digest)
        return path if path.is_file() else None

    def delete(self, digest: str) -> bool:
        path = self.path(digest)
        if path is None:
            return False
        path.unlink(missing_ok=True)
        return True

    def sweep(self, keep: set[str], *, older_than_s: float) -> list[str]:
        cutoff = time.time() - older_than_s
        removed = []
        for path in self.blob_files():
            if path.name not in keep and _older(path, cutoff):
                path.unlink(missing_ok=True)
                removed.append(path.name)
        partial = self.root / PARTIAL
        for path in partial.glob(f"{PARTIAL_PREFIX}*") if partial.is_dir() else ():
            if _older(path, cutoff):
                path.unlink(missing_ok=True)
        return removed

    def usage(self) -> tuple[int, int]:
        count = size = 0
        for path in self.blob_files():
            count += 1
            size += path.stat().st_size
        return count, size

    def blob_files(self) -> Iterator[Path]:
        """The files of the blobs held, in no order (a cache evicts by their mtime)."""
        blobs = self.root / BLOBS
        if not blobs.is_dir():
            return
        for path in blobs.glob("??/*"):
            if is_digest(path.name):
                yield path


def _blob_path(root: Path, digest: str) -> Path:
    return root / BLOBS / digest[:2] / digest


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
