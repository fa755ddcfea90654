"""The storage part of the one `Settings` object: where blobs live, the URL workers reach
them at, a worker's copies of them, and the datasets' caps, quota and engine copies.

    settings = Settings(dataset_max_version_bytes=50 << 30)     # AI_DATA_AGENT_DATASET_...

`settings.Settings` inherits these fields (one object, one prefix, read once at
the entry point); they are declared here only to keep each module readable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["StorageSettings"]


def _http_base_url(value: str) -> str:
    parts = urlsplit(value)  # the base of a node's routes: http(s), a host, no query
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ValueError("must be an http(s):// URL with a host, such as http://10.0.0.5:8000")
    return value.rstrip("/")


GiB = 1024 * 1024 * 1024
DAY_S = 24 * 3600.0


class StorageSettings(BaseSettings):
    """Blobs (docs/scale-out.md) and datasets (docs/datasets.md); every dataset cap is
    checked while an upload streams."""

    model_config = SettingsConfigDict(env_prefix="AI_DATA_AGENT_", extra="forbid")

    storage_dir: Path | None = Field(
        None,
        description="Datasets and checkpoints (content-addressed blobs); unset: data_dir/storage. "
        "In a cluster, a directory every API node shares.",
    )
    advertise_url: Annotated[str, AfterValidator(_http_base_url)] | None = Field(
        None,
        description="The URL workers reach this API node at, to read and write the cluster's "
        "storage (datasets, checkpoints). Default: http://HOST:PORT of `serve`, unless HOST "
        "is a wildcard address (0.0.0.0, ::): then set it.",
    )
    blob_max_bytes: int = Field(
        20 * GiB, ge=1, description="Largest blob a worker may write through an API node."
    )
    blob_cache_max_bytes: int = Field(
        20 * GiB, ge=0, description="A worker's copies of the cluster's blobs (LRU)."
    )
    dataset_max_file_bytes: int = Field(20 * GiB, ge=0, description="Largest dataset file.")
    dataset_max_version_bytes: int = Field(
        20 * GiB, ge=0, description="Bytes in all files of one dataset version."
    )
    dataset_max_files: int = Field(10_000, ge=1, description="Most files in one dataset version.")
    dataset_max_tenant_bytes: int = Field(
        100 * GiB, ge=0, description="A tenant's storage quota: its datasets, all versions."
    )
    dataset_cache_max_bytes: int = Field(
        50 * GiB,
        ge=0,
        description="Dataset versions copied onto an engine (to mount them) beyond this: the "
        "least recently used are evicted.",
    )
    dataset_cache_max_age_s: float = Field(
        7 * DAY_S, gt=0, description="A dataset copy on an engine unused this long: evicted."
    )
    pool_data_profiles: int = Field(
        2, ge=0, description="Dataset mount sets the warm pool also keeps containers for."
    )
