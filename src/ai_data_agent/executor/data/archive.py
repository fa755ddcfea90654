"""A dataset version as one tar stream, read from its blobs and checked as it is read.

    for chunk in archive(files, source):      # bytes of a tar: directories, then files
        ...                                   # raises ExecutorError if a blob is not its hash

This is what fills a version's volume on an engine (`Backend.fill_volume`):
directories read-only (0555), files read-only (0444), owned by root, dated
1970, in path order. Every blob is hashed while it streams and must match the
manifest's size and sha256, so a corrupted or substituted blob (a cache on a
worker, a shared directory) never reaches a sandbox: the stream stops with an
error and the volume is thrown away.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterator
from typing import BinaryIO, Protocol

from ai_data_agent.dataset_models import DatasetFile
from ai_data_agent.errors import ExecutorError

__all__ = ["BlobSource", "archive"]

CHUNK = 1024 * 1024


class BlobSource(Protocol):
    def open_blob(self, digest: str) -> BinaryIO:
        """The blob for reading.

        Raises:
            FileNotFoundError: no such blob.
        """


def _header(name: str, *, directory: bool, size: int = 0) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o555 if directory else 0o444
    info.size = size
    info.uid = info.gid = 0
    info.mtime = 0
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _directories(files: list[DatasetFile]) -> list[str]:
    found: set[str] = set()
    for item in files:
        parts = item.path.split("/")
        found.update("/".join(parts[:end]) for end in range(1, len(parts)))
    return sorted(found)


def _blob(item: DatasetFile, source: BlobSource) -> Iterator[bytes]:
    digest = hashlib.sha256()
    size = 0
    try:
        handle = source.open_blob(item.sha256)
    except FileNotFoundError as exc:
        raise ExecutorError(f"the blob of {item.path} is missing", step="dataset") from exc
    with handle:
        while size < item.size and (chunk := handle.read(min(CHUNK, item.size - size))):
            digest.update(chunk)
            size += len(chunk)
            yield chunk
    if size != item.size or digest.hexdigest() != item.sha256:
        raise ExecutorError(
            f"the blob of {item.path} is not the file the manifest names (size or sha256)",
            step="dataset",
        )
    padding = -item.size % tarfile.BLOCKSIZE
    if padding:
        yield bytes(padding)


def archive(files: list[DatasetFile], source: BlobSource) -> Iterator[bytes]:
    """The tar stream of ``files`` (see the module docstring).

    Raises:
        ExecutorError: a blob is missing or differs from the manifest.
    """
    for directory in _directories(files):
        yield _header(directory, directory=True)
    for item in sorted(files, key=lambda f: f.path):
        yield _header(item.path, directory=False, size=item.size)
        yield from _blob(item, source)
    yield bytes(2 * tarfile.BLOCKSIZE)
