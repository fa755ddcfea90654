"""The contract of datasets: named, versioned, content-addressed sets of files.

    mount = DatasetMount.model_validate("weather@3")      # or {"name": "sales", "path": "/data/s"}
    mount.target                                          # "/data/weather": where a sandbox sees it
    version = DatasetVersion.model_validate_json(text)    # GET /v1/datasets/{name}/versions/{v}

A dataset belongs to one tenant and has immutable versions numbered from 1;
each version is a manifest of files (path, size, sha256) whose own sha256 is
the version's ``digest``. Runs and sessions name datasets in ``datasets``
(latest or pinned) and see them read-only at ``/data/<name>``; the daemon pins
each to the exact version it mounts, so a run's record says what it read.
This module imports nothing of the rest of the package but `paths`.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    WithJsonSchema,
)

from ai_data_agent.paths import check_relative_path

__all__ = [
    "DATA_ROOT",
    "MAX_MOUNTS",
    "ColumnInfo",
    "DatasetDescription",
    "DatasetFile",
    "DatasetInfo",
    "DatasetMount",
    "DatasetMounts",
    "DatasetName",
    "DatasetPage",
    "DatasetSummary",
    "DatasetVersion",
    "FileDescription",
    "PromoteRequest",
    "SavedDataset",
    "manifest_digest",
]

DATA_ROOT = "/data"  # where datasets appear in a sandbox unless a mount says otherwise
MOUNT_ROOTS = ("/data/", "/mnt/")  # the only places a mount may choose
MAX_MOUNTS = 16
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
REF = re.compile(r"^(?P<name>[^@]+)(?:@(?P<version>[0-9]{1,9}))?$")
DIGEST = re.compile(r"^[0-9a-f]{64}$")
VersionSource = Literal["upload", "session", "run"]


def _check_name(value: str) -> str:
    if not NAME.match(value):
        raise ValueError(
            f"dataset name {value[:60]!r}: letters, digits, '_', '.' and '-', starting with a "
            "letter or digit, at most 100 characters"
        )
    return value


DatasetName = Annotated[str, AfterValidator(_check_name)]


def _check_target(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.startswith(MOUNT_ROOTS) or value != posixpath.normpath(value):
        raise ValueError(
            f"mount path {value[:80]!r} must be a normal absolute path under /data/ or /mnt/"
        )
    check_relative_path(value[1:])
    return value


def _check_digest(value: str | None) -> str | None:
    if value is not None and not DIGEST.match(value):
        raise ValueError("digest must be a sha256 in lower-case hex")
    return value


class DatasetMount(BaseModel):
    """A dataset a run or a session mounts read-only; ``"sales"`` and ``"weather@3"`` are
    accepted for ``{"name": "sales"}`` and ``{"name": "weather", "version": 3}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: DatasetName
    version: StrictInt | None = Field(None, ge=1, description="Pinned version; null: the latest.")
    path: Annotated[str | None, AfterValidator(_check_target)] = Field(
        None, description="Where the sandbox sees it (under /data/ or /mnt/); null: /data/<name>."
    )
    digest: Annotated[str | None, AfterValidator(_check_digest)] = Field(
        None,
        description="The version's manifest sha256, set by the daemon when it pins the mount; "
        "a client that sets it gets a refusal unless it is the version's.",
    )

    @property
    def target(self) -> str:
        return self.path or f"{DATA_ROOT}/{self.name}"

    @property
    def ref(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"


def _parse_ref(value: Any) -> Any:
    """``"name"`` or ``"name@3"`` as a mount's fields; anything else as it is."""
    if not isinstance(value, str):
        return value
    found = REF.match(value)
    if found is None:
        raise ValueError(f"dataset reference {value[:60]!r} is not 'name' or 'name@version'")
    version = found.group("version")
    return {"name": found.group("name"), "version": int(version) if version else None}


def _unique_targets(value: list[DatasetMount]) -> list[DatasetMount]:
    if len(value) > MAX_MOUNTS:
        raise ValueError(f"{len(value)} datasets, at most {MAX_MOUNTS}")
    targets = [m.target for m in value]
    for target in targets:
        for other in targets:
            if other != target and other.startswith(target + "/"):
                raise ValueError(f"mount {other!r} lies inside mount {target!r}")
        if targets.count(target) > 1:
            raise ValueError(f"two datasets mounted at {target!r}")
    return value


_REF_SCHEMA = {
    "anyOf": [
        {"type": "string", "description": "name, or name@version", "pattern": REF.pattern},
        DatasetMount.model_json_schema(),
    ]
}
DatasetRef = Annotated[DatasetMount, BeforeValidator(_parse_ref), WithJsonSchema(_REF_SCHEMA)]
DatasetMounts = Annotated[list[DatasetRef], AfterValidator(_unique_targets)]


class DatasetFile(BaseModel):
    """One file of a version: its path under the dataset's root, size and sha256."""

    path: str
    size: int
    sha256: str


def manifest_digest(files: list[DatasetFile]) -> str:
    """The version's digest: sha256 of its files, sorted by path, as canonical JSON lines."""
    digest = hashlib.sha256()
    for item in sorted(files, key=lambda f: f.path):
        line = json.dumps([item.path, item.size, item.sha256], separators=(",", ":"))
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


class DatasetVersion(BaseModel):
    """One immutable version of a dataset."""

    name: str
    version: int
    digest: str = Field(description="sha256 of the manifest (`manifest_digest`).")
    size: int = Field(description="Bytes in all its files.")
    file_count: int
    created_at: datetime
    source: VersionSource = Field(description="upload, or promoted from a session or a run.")
    source_id: str | None = Field(None, description="The session or run it was promoted from.")
    files: list[DatasetFile] | None = Field(
        None, description="Its files, when asked for (at most 10000 listed)."
    )


class DatasetInfo(BaseModel):
    """``GET /v1/datasets/{name}``: a dataset and its versions, newest first."""

    name: str
    created_at: datetime
    size: int = Field(description="Bytes in all versions (what counts toward storage).")
    versions: list[DatasetVersion]


class DatasetSummary(BaseModel):
    tenant: str = Field(description="Its owner (an admin's listing shows every tenant's).")
    name: str
    latest: int = Field(description="The newest version's number.")
    versions: int
    size: int = Field(description="Bytes in all versions.")
    updated_at: datetime


class DatasetPage(BaseModel):
    """``GET /v1/datasets``: the tenant's datasets by name (an admin's: every tenant's, by
    tenant and name), and the storage they use."""

    items: list[DatasetSummary]
    storage_bytes: int = Field(description="Their bytes, all versions (what quotas count).")


class PromoteRequest(BaseModel):
    """``POST /v1/sessions/{id}/datasets``: files of the session as a new dataset version."""

    model_config = ConfigDict(extra="forbid")

    name: DatasetName
    paths: list[str] = Field(
        min_length=1,
        max_length=10_000,
        description="Files under the working directory (e.g. outputs/clean.parquet); each is "
        "stored under its path relative to outputs/ when it lies there, else as it is.",
    )


class SavedDataset(BaseModel):
    """Where a run's ``save_outputs_as`` put its outputs (or why it could not)."""

    name: str
    version: int | None = None
    digest: str | None = None
    error: str | None = None


class ColumnInfo(BaseModel):
    name: str
    type: str = Field(description="integer, number, boolean, date, datetime, string, ... or null.")


class FileDescription(BaseModel):
    """What one tabular file holds, as read inside a sandbox."""

    path: str
    format: Literal["csv", "tsv", "jsonl", "parquet"]
    size: int
    rows: int | None = Field(None, description="Data rows (a CSV's header excluded).")
    columns: list[ColumnInfo] = Field(default_factory=list)
    first_rows: list[list[Any]] = Field(default_factory=list, description="Aligned with columns.")
    notes: list[str] = Field(default_factory=list)
    error: str | None = None


class DatasetDescription(BaseModel):
    """``GET /v1/datasets/{name}/versions/{v}/describe``: computed once per version."""

    name: str
    version: int
    digest: str
    files: list[FileDescription] = Field(default_factory=list)
    other_files: int = Field(0, description="Files that are not CSV, TSV, JSON lines or parquet.")
    truncated: bool = Field(False, description="Files or values left out to fit the cap.")
