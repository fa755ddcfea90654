"""What a node does with datasets, the same on one node and on a cluster's nodes.

    datasets = DatasetService(settings, DatasetStore(path), LocalBlobStore(root), tenants)
    version = datasets.upload("admin", "sales", Body.single(chunks, "sales.csv"))
    pinned = datasets.pin("admin", [DatasetMount.model_validate("sales")])   # for a run
    datasets.delete("admin", "sales", None, force=False, mounted=set())
    datasets.collect_garbage()               # unnamed manifests and blobs go

Every operation takes the owning tenant: a dataset of another tenant does not
exist for it (`NotFound`, as for a name never used). What a tenant's datasets
hold, all versions, stays within its storage quota: the smaller of its own
``Quotas.storage_bytes`` (read from ``tenants``) and the server's
``dataset_max_tenant_bytes``. The records are a
`DatasetRecords` (SQLite or PostgreSQL), the bytes a `BlobStore`; a version
is recorded only under the store's blob lock and only once each of its blobs
is found there, and blobs are deleted only under that lock and only when no
manifest names them: a delete never takes a blob from under a version. It is
also the engines' `DatasetSource` (manifests and blobs by digest). Every
method blocks; the routes call them in threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from loguru import logger

from ai_data_agent.dataset_models import (
    DatasetFile,
    DatasetInfo,
    DatasetMount,
    DatasetPage,
    DatasetVersion,
    VersionSource,
)
from ai_data_agent.errors import DatasetInUse, NotFound, RequestRejected, ServerError
from ai_data_agent.service.datasets.formats import read_file, read_multipart, read_tar
from ai_data_agent.service.datasets.ingest import Ingest, UploadCaps, in_flight
from ai_data_agent.service.datasets.records import DatasetRecords, NewVersion, StorageQuota
from ai_data_agent.service.datasets.sql import MAX_LISTED_FILES
from ai_data_agent.service.records import TenantRecords
from ai_data_agent.settings import Settings
from ai_data_agent.storage import BlobStore

__all__ = ["GC_GRACE_S", "Body", "DatasetService", "GarbageReport"]

# A blob younger than this may belong to an upload not recorded yet: a sweep spares it.
GC_GRACE_S = 3600.0
BodyKind = Literal["file", "tar", "multipart"]


@dataclass(frozen=True)
class Body:
    """An upload's body as it arrives: one file, a tar stream, or multipart parts."""

    kind: BodyKind
    chunks: Iterable[bytes]
    path: str | None = None  # the one file's name
    boundary: bytes | None = None  # multipart's

    def read_into(self, ingest: Ingest) -> None:
        if self.kind == "tar":
            read_tar(ingest, self.chunks)
        elif self.kind == "multipart":
            assert self.boundary is not None
            read_multipart(ingest, self.chunks, self.boundary)
        else:
            assert self.path is not None
            read_file(ingest, self.path, self.chunks)


@dataclass(frozen=True)
class GarbageReport:
    manifests: int
    blobs: list[str]


class DatasetService:
    """A node's datasets; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        records: DatasetRecords,
        blobs: BlobStore,
        tenants: TenantRecords | None = None,
    ) -> None:
        self.settings = settings
        self.records = records
        self.blobs = blobs
        self.tenants = tenants  # whose quotas bound their storage (None: the setting alone)

    def storage_quota(self, tenant: str) -> StorageQuota:
        """The tenant's storage quota: its own ``storage_bytes``, where that is below the
        server's ``dataset_max_tenant_bytes``."""
        cap = StorageQuota(self.settings.dataset_max_tenant_bytes)
        found = self.tenants.get_tenant(tenant) if self.tenants is not None else None
        own = None if found is None else found.quotas.storage_bytes
        return StorageQuota(own, "storage_bytes") if own is not None and own < cap.limit else cap

    def own_storage_quota(self, tenant: str) -> int | None:
        """The tenant's own ``storage_bytes`` quota (None: none), which what it stores
        besides datasets (checkpoints) counts against with its datasets' bytes."""
        found = self.tenants.get_tenant(tenant) if self.tenants is not None else None
        return None if found is None else found.quotas.storage_bytes

    # -- writes -------------------------------------------------------------------------
    def upload(self, tenant: str, name: str, body: Body) -> DatasetVersion:
        """Stream ``body`` into blobs and record it as the next version of ``name``.

        Raises:
            RequestRejected: a bad name or entry, nothing in it; `RequestTooLarge`
                over a cap (the message names it). Nothing is recorded then.
        """
        return self.ingest(tenant, name, body.read_into, "upload", None)

    def ingest(
        self,
        tenant: str,
        name: str,
        fill: Callable[[Ingest], None],
        source: VersionSource,
        source_id: str | None,
    ) -> DatasetVersion:
        """``fill`` an `Ingest` (upload, promotion), then record the version; an ingest
        that fails leaves no version and takes its blobs away again."""
        quota = self.storage_quota(tenant)
        caps = UploadCaps.of(self.settings, quota=quota, used=self.records.tenant_bytes(tenant))
        ingest = Ingest(self.blobs, caps)
        try:
            fill(ingest)
            if not ingest.files:
                raise RequestRejected("files", "a version needs at least one file")
            new = NewVersion(ingest.files, source, source_id)
            version = self._record(tenant, name, new, quota)
        except BaseException:
            ingest.abandon(self.records)
            raise
        ingest.release()
        logger.info(
            "dataset {} version {} recorded: {} files, {} bytes ({})",
            name,
            version.version,
            version.file_count,
            version.size,
            source,
        )
        # Its files as `GET .../versions/{n}` lists them: what was stored, named in the answer.
        listed = sorted(new.files, key=lambda f: f.path)[:MAX_LISTED_FILES]
        return version.model_copy(update={"files": listed})

    def _record(
        self, tenant: str, name: str, new: NewVersion, quota: StorageQuota
    ) -> DatasetVersion:
        with self.records.blob_lock():
            missing = [f.path for f in new.files if not self.blobs.exists(f.sha256)]
            if missing:  # removed meanwhile by another upload's cleanup: nothing is lost
                raise ServerError(
                    f"{len(missing)} file(s) vanished from storage during the upload "
                    f"(first: {missing[0]!r}); upload again"
                )
            return self.records.add_version(tenant, name, new, quota=quota)

    def delete(
        self, tenant: str, name: str, version: int | None, *, force: bool, mounted: set[str]
    ) -> list[DatasetVersion]:
        """Delete a version (or the whole dataset); its blobs go at the next collection.

        ``mounted`` are the digests live sessions mount now.

        Raises:
            NotFound: no such dataset or version.
            DatasetInUse: a live session mounts it, and not ``force``.
        """
        found = self.records.dataset(tenant, name)
        doomed = [v for v in (found.versions if found else []) if version in (None, v.version)]
        if not doomed:
            raise self._missing(name, version)
        busy = [v for v in doomed if v.digest in mounted]
        if busy and not force:
            raise DatasetInUse(
                f"dataset {name} version {busy[0].version} is mounted by a live session; "
                "close it first, or delete with force"
            )
        return self.records.delete(tenant, name, version)

    # -- reads ----------------------------------------------------------------------------
    def page(self, tenant: str | None) -> DatasetPage:
        """The tenant's datasets (None: every tenant's) and the bytes they hold."""
        items = self.records.datasets(tenant)
        return DatasetPage(items=items, storage_bytes=sum(item.size for item in items))

    def dataset(self, tenant: str, name: str) -> DatasetInfo:
        found = self.records.dataset(tenant, name, files=True)
        if found is None:
            raise self._missing(name, None)
        return found

    def version(
        self, tenant: str, name: str, version: int | None, *, files: bool = True
    ) -> DatasetVersion:
        found = self.records.version(tenant, name, version, files=files)
        if found is None:
            raise self._missing(name, version)
        return found

    def file(self, tenant: str, name: str, version: int, path: str) -> tuple[DatasetFile, Path]:
        """A file of a version and where its bytes are.

        Raises:
            NotFound: no such version or file (or its blob is gone).
        """
        found = self.version(tenant, name, version, files=False)
        entry = next((f for f in self.manifest(found.digest) or [] if f.path == path), None)
        local = self.blobs.path(entry.sha256) if entry is not None else None
        if entry is None or local is None:
            raise NotFound(f"dataset {name} version {version} has no file {path[:200]!r}")
        return entry, local

    def pin(self, tenant: str, mounts: list[DatasetMount]) -> list[DatasetMount]:
        """Each mount with the version it resolves to now, and that version's digest.

        Raises:
            NotFound: a dataset or version the tenant does not have.
            RequestRejected: a digest given that is not the version's.
        """
        pinned = []
        for mount in mounts:
            found = self.version(tenant, mount.name, mount.version, files=False)
            if mount.digest is not None and mount.digest != found.digest:
                raise RequestRejected(
                    f"datasets.{mount.name}", f"digest is not that of version {found.version}"
                )
            update = {"version": found.version, "digest": found.digest, "path": mount.target}
            pinned.append(mount.model_copy(update=update))
        return pinned

    @staticmethod
    def _missing(name: str, version: int | None) -> NotFound:
        which = f"dataset {name[:100]!r}" + (f" version {version}" if version is not None else "")
        return NotFound(f"no {which}")

    # -- what engines read (`executor.data.DatasetSource`) --------------------------------
    def manifest(self, digest: str) -> list[DatasetFile] | None:
        return self.records.manifest(digest)

    def open_blob(self, digest: str) -> BinaryIO:
        return self.blobs.open(digest)

    # -- lifecycle ------------------------------------------------------------------------
    def collect_garbage(
        self, *, grace_s: float = GC_GRACE_S, keep: Callable[[], set[str]] | None = None
    ) -> GarbageReport:
        """Drop manifests no version names, then blobs no manifest names (nor ``keep()``:
        what other records of the same store name, such as checkpoints), older than
        ``grace_s``. ``keep`` is asked under the blob lock."""
        with self.records.blob_lock():
            manifests = self.records.drop_orphan_manifests()
            spared = self.records.named_blobs() | in_flight() | (keep() if keep else set())
            removed = self.blobs.sweep(spared, older_than_s=grace_s)
        if manifests or removed:
            logger.info(
                "dataset GC: {} manifest(s) and {} blob(s) removed", manifests, len(removed)
            )
        return GarbageReport(manifests, removed)
