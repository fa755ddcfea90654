"""Datasets on a daemon, through the client: upload once, mount in any run or session.

    with Client(url, token) as client:
        version = client.datasets.put("sales", Path("sales.csv"))         # a DatasetVersion
        version = client.datasets.put("weather", Path("weather/"), progress=print)  # a folder
        client.datasets.list()                       # the datasets, and the storage they use
        client.datasets.show("sales")                # versions, sizes, hashes, files
        client.datasets.describe("sales")            # columns, types, rows, first rows
        client.datasets.get("sales", Path("out/"))   # every file of the latest, checked
        client.run("import pandas as pd; print(pd.read_csv('/data/sales/sales.csv'))",
                   requirements=["pandas"], datasets=["sales"])
        client.datasets.delete("sales", version=1)

A file is sent as its bytes (``application/octet-stream``), a folder as a tar
stream made as it is sent (its files in path order, links refused, nothing
held whole); ``progress(done, total)`` sees the bytes go (and come, for
`get`). Downloads are written beside their target and renamed only once
their size and sha256 are the manifest's. Errors are the package's tree:
`NotFound` (no such dataset or version: also another tenant's),
`RequestTooLarge` (a cap or the storage quota), `DatasetInUse` (a delete
while a live session mounts it), `RequestRejected` (a bad name or entry).
"""

from __future__ import annotations

import builtins
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from ai_data_agent.client.connection import Connection
from ai_data_agent.client.transport import Transport
from ai_data_agent.client.wire import invalid_response, parse, segment
from ai_data_agent.dataset_models import (
    DatasetDescription,
    DatasetInfo,
    DatasetPage,
    DatasetVersion,
)
from ai_data_agent.errors import RequestRejected
from ai_data_agent.paths import check_relative_path

__all__ = ["Datasets", "Progress", "folder_tar", "folder_tar_size"]

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)
CHUNK = 1024 * 1024
UPLOAD_READ_S = 3600.0  # after the last byte the daemon syncs the files: wait for it
_VERSIONS = TypeAdapter(list[DatasetVersion])


def _files_of(folder: Path) -> list[tuple[str, Path, int]]:
    """(name in the dataset, path, size) of every regular file under ``folder``, by name.

    Raises:
        RequestRejected: a link, device or other special file (nothing is sent).
    """
    found = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in [*names, *(d for d in dirs if os.path.islink(os.path.join(root, d)))]:
            path = Path(root, name)
            info = path.lstat()
            rel = path.relative_to(folder).as_posix()
            if not stat.S_ISREG(info.st_mode):
                raise RequestRejected(rel, "is not a regular file (a dataset holds files only)")
            found.append((rel, path, info.st_size))
    return sorted(found)


def folder_tar(files: list[tuple[str, Path, int]]) -> Iterator[bytes]:
    """A tar stream of ``files`` (name, path, size), made as it is read."""
    for name, path, size in files:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o644
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        sent = 0
        with path.open("rb") as handle:
            while sent < size and (chunk := handle.read(min(CHUNK, size - sent))):
                sent += len(chunk)
                yield chunk
        if sent != size:
            raise RequestRejected(name, "changed size while it was being sent")
        if size % tarfile.BLOCKSIZE:
            yield bytes(tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE)
    yield bytes(2 * tarfile.BLOCKSIZE)


def folder_tar_size(files: list[tuple[str, Path, int]]) -> int:
    """The length of `folder_tar` of ``files``: headers, data padded to blocks, the end."""
    total = 2 * tarfile.BLOCKSIZE
    for name, _, size in files:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o644
        total += len(info.tobuf(format=tarfile.PAX_FORMAT)) + size + (-size % tarfile.BLOCKSIZE)
    return total


def _counted(chunks: Iterator[bytes], total: int, progress: Progress | None) -> Iterator[bytes]:
    done = 0
    for chunk in chunks:
        yield chunk
        done += len(chunk)
        if progress is not None:
            progress(min(done, total), total)


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


class Datasets:
    """``client.datasets``: see the module docstring. Thread-safe."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    @property
    def _transport(self) -> Transport:
        return self._connection.transport

    def put(self, name: str, path: Path, *, progress: Progress | None = None) -> DatasetVersion:
        """Upload a file, or a folder's files, as the next version of ``name``.

        Raises:
            RequestRejected: a special file in the folder, a bad name or entry.
            RequestTooLarge: a cap of the daemon's, or the tenant's storage quota.
        """
        url = f"/v1/datasets/{segment(name)}/versions"
        if path.is_dir():
            files = _files_of(path)
            total = sum(size for _, _, size in files)
            body, kind, length = folder_tar(files), "application/x-tar", folder_tar_size(files)
            params: dict[str, str] = {}
        else:
            total = length = path.stat().st_size
            body, kind = _file_chunks(path), "application/octet-stream"
            params = {"path": path.name}
        # A declared length, not chunks: the daemon refuses one over its cap before any byte.
        headers = {"Content-Type": kind, "Content-Length": str(length)}
        response = self._transport.request(
            "POST",
            url,
            content=_counted(body, total, progress),
            headers=headers,
            params=params,
            timeout=self._connection.read_timeout(UPLOAD_READ_S),
        )
        return parse(response, DatasetVersion)

    def list(self, *, tenant: str | None = None) -> DatasetPage:
        """The tenant's datasets; an admin's token: every tenant's, or ``tenant``'s."""
        params = {} if tenant is None else {"tenant": tenant}
        return parse(self._transport.request("GET", "/v1/datasets", params=params), DatasetPage)

    def show(self, name: str) -> DatasetInfo:
        """A dataset's versions (newest first), each with its files."""
        return parse(self._transport.request("GET", f"/v1/datasets/{segment(name)}"), DatasetInfo)

    def version(self, name: str, version: int | None = None) -> DatasetVersion:
        """One version (the latest by default), with its files."""
        which = "latest" if version is None else str(version)
        url = f"/v1/datasets/{segment(name)}/versions/{which}"
        return parse(self._transport.request("GET", url), DatasetVersion)

    def describe(self, name: str, version: int | None = None) -> DatasetDescription:
        """Columns, types, row counts and first rows of its tabular files (computed once
        by the daemon, in a sandbox: the first call may take seconds)."""
        which = "latest" if version is None else str(version)
        url = f"/v1/datasets/{segment(name)}/versions/{which}/describe"
        timeout = self._connection.read_timeout(UPLOAD_READ_S)
        return parse(self._transport.request("GET", url, timeout=timeout), DatasetDescription)

    def get(
        self,
        name: str,
        target: Path,
        *,
        version: int | None = None,
        path: str | None = None,
        progress: Progress | None = None,
    ) -> builtins.list[Path]:
        """Download a version's files (or the one at ``path``) under ``target``; each is
        checked against the manifest. Returns the files written.

        Raises:
            NotFound: no such dataset, version or file.
            ServerError: a file arrived with another size or sha256 (nothing kept of it).
        """
        found = self.version(name, version)
        files = [f for f in found.files or [] if path is None or f.path == path]
        if path is not None and not files:
            raise RequestRejected("path", f"{name}@{found.version} has no file {path!r}")
        total, done, written = sum(f.size for f in files), 0, []
        for item in files:
            local = target.joinpath(*check_relative_path(item.path).split("/"))
            local.parent.mkdir(parents=True, exist_ok=True)
            url = f"/v1/datasets/{segment(name)}/versions/{found.version}/files/" + "/".join(
                segment(part) for part in item.path.split("/")
            )
            self._transport.download(
                url, local, what=f"{name}/{item.path}", size=item.size, sha256=item.sha256
            )
            written.append(local)
            done += item.size
            if progress is not None:
                progress(done, total)
        return written

    def delete(
        self, name: str, *, version: int | None = None, force: bool = False
    ) -> builtins.list[DatasetVersion]:
        """Delete a version, or the whole dataset; the versions deleted.

        Raises:
            DatasetInUse: a live session mounts it (pass ``force``).
        """
        url = f"/v1/datasets/{segment(name)}"
        if version is not None:
            url += f"/versions/{version}"
        params = {"force": "true"} if force else {}
        response = self._transport.request("DELETE", url, params=params)
        try:
            return _VERSIONS.validate_json(response.content)
        except ValidationError as exc:
            raise invalid_response(f"not a list of versions: {exc}", response) from exc
