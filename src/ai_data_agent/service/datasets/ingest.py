"""Files of a new dataset version, streamed into the blob store under the caps.

    ingest = Ingest(blobs, UploadCaps.of(settings, used=records.tenant_bytes(tenant)))
    try:
        ingest.add("sales.csv", chunks)           # hashed while it streams, then a blob
        ...
        files = ingest.files                      # path, size, sha256 of each
    except BaseException:
        ingest.abandon(records)                   # the blobs no version names go again
        raise

Every name is checked by the one rule for paths (`paths.check_relative_path`):
no absolute path, no ``..``, no empty part; no name twice, and no file where
another file's directory is. Each file streams into a blob writer whose cap is
the smallest of what is left: the per-file cap, the version's, the tenant's
quota; passing one stops the upload at once (`RequestTooLarge` naming the file
and the cap), so an upload that inflates (a tar bomb) stops where its bytes do.
Nothing is buffered beyond one chunk, and nothing is a version yet: the caller
records one only once every file is in (`DatasetRecords.add_version`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from loguru import logger

from ai_data_agent.dataset_models import DatasetFile
from ai_data_agent.errors import RequestRejected, RequestTooLarge
from ai_data_agent.paths import check_relative_path
from ai_data_agent.service.datasets.records import DatasetRecords, StorageQuota
from ai_data_agent.settings import Settings
from ai_data_agent.storage import BlobRef, BlobStore, BlobWriter

__all__ = ["IncomingFile", "Ingest", "UploadCaps", "in_flight"]

# Blobs committed by ingests of this process not recorded yet: a failed ingest's
# cleanup spares them (another upload of the same bytes is still going on).
_IN_FLIGHT: dict[str, int] = {}
_IN_FLIGHT_LOCK = threading.Lock()


def in_flight() -> set[str]:
    with _IN_FLIGHT_LOCK:
        return set(_IN_FLIGHT)


@dataclass(frozen=True)
class UploadCaps:
    """The caps of one upload, in bytes and files; ``quota_left``: the tenant's room."""

    max_file_bytes: int
    max_version_bytes: int
    max_files: int
    quota_left: int
    quota_name: str = "dataset_max_tenant_bytes"

    @classmethod
    def of(cls, settings: Settings, *, quota: StorageQuota, used: int) -> UploadCaps:
        return cls(
            max_file_bytes=settings.dataset_max_file_bytes,
            max_version_bytes=settings.dataset_max_version_bytes,
            max_files=settings.dataset_max_files,
            quota_left=quota.left(used),
            quota_name=quota.name,
        )


@dataclass
class Ingest:
    """The files of one upload (see the module docstring). Not thread-safe: one thread."""

    blobs: BlobStore
    caps: UploadCaps
    files: list[DatasetFile] = field(default_factory=list)
    size: int = 0
    _names: set[str] = field(default_factory=set)
    _dirs: set[str] = field(default_factory=set)
    _held: list[str] = field(default_factory=list)

    def check_name(self, path: str, *, what: str) -> str:
        """``path`` if it may name one more file of this version.

        Raises:
            RequestRejected: unsafe, given twice, or where a file and a directory meet.
            RequestTooLarge: one file more than the cap allows.
        """
        try:
            check_relative_path(path)
        except ValueError as exc:
            raise RequestRejected(what, str(exc)) from exc
        if path in self._names or path in self._dirs:
            kind = "file" if path in self._names else "directory"
            raise RequestRejected(what, f"{path!r} is given twice (a {kind} has that name)")
        parts = path.split("/")
        for end in range(1, len(parts)):
            parent = "/".join(parts[:end])
            if parent in self._names:
                raise RequestRejected(what, f"{path!r} lies under the file {parent!r}")
        if len(self.files) >= self.caps.max_files:
            raise RequestTooLarge(what, f"more than {self.caps.max_files} files in one version")
        return path

    def add_dir(self, path: str, *, what: str) -> None:
        """A directory entry (a tar's): checked, so that no file takes its name later."""
        self.check_name(path, what=what)
        self._dirs.add(path)

    def _cap(self) -> tuple[int, str]:
        caps = self.caps
        return min(
            (caps.max_file_bytes, "the per-file cap"),
            (caps.max_version_bytes - self.size, "the cap of a version"),
            (caps.quota_left - self.size, f"the tenant's storage quota ({caps.quota_name})"),
        )

    def add(self, path: str, chunks: Iterable[bytes], *, what: str | None = None) -> DatasetFile:
        """Stream one file's ``chunks`` into a blob; its entry.

        Raises:
            RequestRejected, RequestTooLarge: see `check_name`; over a cap while streaming.
        """
        with self.begin(path, what=what or path) as incoming:
            for chunk in chunks:
                incoming.write(chunk)
            return incoming.commit()

    def begin(self, path: str, *, what: str) -> IncomingFile:
        """One file, written piece by piece (`IncomingFile`); a context manager that drops
        it unless committed. Raises as `check_name`."""
        self.check_name(path, what=what)
        limit, cap = self._cap()
        writer = self.blobs.writer(max_bytes=max(limit, 0), what=what)
        return IncomingFile(self, path, what, writer, f"larger than {cap} allows ({limit} bytes)")

    def _added(self, path: str, blob: BlobRef) -> DatasetFile:
        self._hold(blob.digest)
        entry = DatasetFile(path=path, size=blob.size, sha256=blob.digest)
        self.files.append(entry)
        self.size += blob.size
        self._names.add(path)
        parts = path.split("/")
        self._dirs.update("/".join(parts[:end]) for end in range(1, len(parts)))
        return entry

    def _hold(self, digest: str) -> None:
        with _IN_FLIGHT_LOCK:
            _IN_FLIGHT[digest] = _IN_FLIGHT.get(digest, 0) + 1
        self._held.append(digest)

    def release(self) -> None:
        """Stop sparing this upload's blobs (it is recorded, or abandoned)."""
        with _IN_FLIGHT_LOCK:
            for digest in self._held:
                _IN_FLIGHT[digest] -= 1
                if not _IN_FLIGHT[digest]:
                    del _IN_FLIGHT[digest]
        self._held = []

    def abandon(self, records: DatasetRecords) -> None:
        """Remove the blobs this upload stored that no version names (nor another upload
        holds). Never raises: what is left, the garbage collection takes."""
        digests = sorted(set(self._held))
        self.release()
        if not digests:
            return
        try:
            with records.blob_lock():
                spare = in_flight()
                for digest in records.unnamed([d for d in digests if d not in spare]):
                    self.blobs.delete(digest)
        except Exception as exc:
            logger.warning("cannot remove the blobs of an abandoned upload (GC will): {}", exc)


class IncomingFile:
    """One file of an `Ingest` as it arrives: `write` its pieces, then `commit`."""

    def __init__(
        self, ingest: Ingest, path: str, what: str, writer: BlobWriter, too_large: str
    ) -> None:
        self._ingest = ingest
        self.path = path
        self._what = what
        self._writer = writer
        self._too_large = too_large

    def write(self, chunk: bytes) -> None:
        """Raises:
        RequestTooLarge: past the smallest cap left (the message names it)."""
        try:
            self._writer.write(chunk)
        except RequestTooLarge as exc:
            raise RequestTooLarge(self._what, self._too_large) from exc

    def commit(self) -> DatasetFile:
        return self._ingest._added(self.path, self._writer.commit())

    def __enter__(self) -> IncomingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._writer.__exit__(None, None, None)
