"""What every dataset store does, on SQLite (one node) and PostgreSQL (a cluster).

    records: DatasetRecords = DatasetStore(data_dir / "datasets.sqlite3")   # or PgDatasetStore(db)
    version = records.add_version("admin", "sales", NewVersion(files), quota=StorageQuota(1 << 30))
    records.version("admin", "sales", None)           # the latest, or None
    records.manifest(version.digest)                   # its files (content-addressed)
    with records.blob_lock():                          # blobs are recorded or deleted under it
        ...

A dataset is named within its tenant; its versions are numbered from 1 and
never change. A version names a manifest by digest; manifests (and the
description computed for one) are shared by every version with the same
files. The guarantees, the same on both databases (one contract test,
tests/cluster/test_dataset_store_contract.py): a version is durable and
complete (its manifest with it) when `add_version` returns, numbers are
never given twice within a dataset, and the tenant's storage never passes its
quota because of a version added concurrently. Blobs are the blob store's:
a caller checks they exist, and deletes those no manifest names, only while
it holds `blob_lock`, so a blob is never deleted under a version being
recorded. Every method blocks; call them from threads.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from ai_data_agent.dataset_models import (
    DatasetFile,
    DatasetInfo,
    DatasetSummary,
    DatasetVersion,
    VersionSource,
    manifest_digest,
)
from ai_data_agent.errors import RequestTooLarge

__all__ = ["DatasetRecords", "DatasetUsage", "NewVersion", "StorageQuota"]


@dataclass(frozen=True)
class StorageQuota:
    """What a tenant's datasets may hold, all versions: ``limit`` bytes, and which limit
    that is (the tenant's own quota ``storage_bytes``, or the server's cap)."""

    limit: int
    name: str = "dataset_max_tenant_bytes"

    def left(self, used: int) -> int:
        return max(self.limit - used, 0)

    def refusal(self, size: int, used: int) -> RequestTooLarge:
        """The error of a version of ``size`` bytes that does not fit beside ``used``."""
        return RequestTooLarge(
            self.name,
            f"this version ({size} bytes) would take the tenant's datasets to {used + size} "
            f"bytes, over its storage quota ({self.name}) of {self.limit} bytes ({used} used)",
        )


@dataclass(frozen=True)
class NewVersion:
    """The files of a version about to be recorded (their blobs stored already)."""

    files: list[DatasetFile]
    source: VersionSource = "upload"
    source_id: str | None = None
    digest: str = field(init=False)
    size: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", manifest_digest(self.files))
        object.__setattr__(self, "size", sum(f.size for f in self.files))


@dataclass(frozen=True)
class DatasetUsage:
    """What the datasets hold, for doctor and metrics."""

    datasets: int
    versions: int
    bytes: int  # the versions' sizes, as the tenants' storage counts them
    manifests: int


class DatasetRecords(Protocol):
    """Datasets, versions and manifests. See the module docstring for the guarantees."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def add_version(
        self,
        tenant: str,
        name: str,
        new: NewVersion,
        *,
        quota: StorageQuota,
        now: float | None = None,
    ) -> DatasetVersion:
        """Record the next version of ``name`` (the dataset is created with its first).

        Raises:
            RequestTooLarge: the tenant's datasets would pass ``quota``; nothing recorded.
        """

    def datasets(self, tenant: str | None) -> list[DatasetSummary]:
        """The tenant's datasets by name (None: every tenant's, by tenant and name)."""

    def dataset(self, tenant: str, name: str, *, files: bool = False) -> DatasetInfo | None:
        """A dataset with its versions (newest first), each with its files when ``files``."""

    def version(
        self, tenant: str, name: str, version: int | None, *, files: bool = False
    ) -> DatasetVersion | None:
        """One version (None: the latest), or None when there is no such version."""

    def manifest(self, digest: str) -> list[DatasetFile] | None:
        """The files of a manifest, by path; None when no version names it."""

    def delete(self, tenant: str, name: str, version: int | None) -> list[DatasetVersion]:
        """Delete one version (or, with None, the dataset); the versions deleted.

        A dataset whose last version goes is deleted with it.
        """

    def tenant_bytes(self, tenant: str) -> int:
        """The tenant's storage: the sizes of all its versions (its part of the quota)."""

    def description(self, digest: str) -> str | None:
        """The cached description (JSON) of a manifest, if computed."""

    def set_description(self, digest: str, text: str) -> None: ...

    def blob_lock(self) -> AbstractContextManager[None]:
        """Held while blobs are checked before a version is recorded, and while unnamed
        blobs are deleted: one holder at a time, across the nodes sharing the store."""

    def unnamed(self, digests: list[str]) -> list[str]:
        """Which of ``digests`` no manifest names."""

    def named_blobs(self) -> set[str]:
        """Every blob a manifest names (what a sweep of the blob store keeps)."""

    def drop_orphan_manifests(self) -> int:
        """Delete manifests no version names; how many went."""

    def usage(self) -> DatasetUsage: ...
