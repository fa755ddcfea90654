"""Datasets on the engine: versions copied once into read-only volumes, mounted by name.

A run or session that names datasets meets, in order: `volumes.EngineDatasets`
(``volume_mounts``: each pinned version's volume, filled on first use through
the per-engine `index.DataIndex` and its lock), `archive.archive` (the
version's blobs as one tar stream, every blob checked against the manifest),
and the backend's ``fill_volume`` (the engine extracts it into the volume).

    from ai_data_agent.executor.data import DatasetSource, EngineDatasets
"""

from ai_data_agent.executor.data.archive import BlobSource, archive
from ai_data_agent.executor.data.volumes import (
    DATA_VOLUME_PREFIX,
    LABEL_DATASET,
    DatasetSource,
    EngineDatasets,
)

__all__ = [
    "DATA_VOLUME_PREFIX",
    "LABEL_DATASET",
    "BlobSource",
    "DatasetSource",
    "EngineDatasets",
    "archive",
]
