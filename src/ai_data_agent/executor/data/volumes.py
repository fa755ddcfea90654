"""Dataset versions on an engine: each copied once into a volume, then mounted read-only.

    engine = EngineDatasets(settings, backend)
    engine.connect(source)                          # the node's manifests and blobs
    with engine.using(mounts):                      # pruning spares them meanwhile
        volumes = engine.volume_mounts(mounts)      # VolumeMount(volume, "/data/sales", ro)
    engine.prune_to_bounds()                        # least recently used beyond the bounds

A version is a named volume ``ai-data-agent-data-<digest>``, filled from its
blobs by the engine itself (`Backend.fill_volume`, every blob checked against
the manifest as it streams) the first time a sandbox on this engine needs it,
and mounted read-only into every sandbox that names it afterwards: no copy per
run, and nothing a sandbox can write. Whether a volume is whole is kept in a
per-engine index (`index.DataIndex`) beside the environment cache's; a volume
the index does not know (a fill cut short) is thrown away and filled again.
Copies are evicted by size and age like environments; one in use by a
container is never removed (the engine refuses), and one being mounted is held.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

from loguru import logger

from ai_data_agent.dataset_models import DatasetFile, DatasetMount
from ai_data_agent.errors import ConfigurationError, ExecutorError
from ai_data_agent.executor.backend import Backend
from ai_data_agent.executor.data.archive import BlobSource, archive
from ai_data_agent.executor.data.index import DataIndex
from ai_data_agent.executor.env import default_index_path
from ai_data_agent.executor.spec import LABEL_PREFIX, VolumeMount
from ai_data_agent.settings import Settings

__all__ = ["DATA_VOLUME_PREFIX", "LABEL_DATASET", "DatasetSource", "EngineDatasets"]

DATA_VOLUME_PREFIX = "ai-data-agent-data-"
LABEL_DATASET = LABEL_PREFIX + "dataset"  # the version's digest
INDEX_FILENAME = "datacache.sqlite3"
# A volume found whole is trusted this long without asking the engine again: only this
# process removes dataset copies (one daemon per engine), and it forgets what it removes.
VERIFIED_S = 60.0


class DatasetSource(BlobSource, Protocol):
    """Where a node keeps versions: manifests by digest, and the blobs they name."""

    def manifest(self, digest: str) -> list[DatasetFile] | None:
        """The files of a version's manifest; None when no version names it any more."""


def volume_name(digest: str) -> str:
    return DATA_VOLUME_PREFIX + digest[:48]


class EngineDatasets:
    """The dataset versions copied onto one engine. Thread-safe."""

    def __init__(self, settings: Settings, backend: Backend) -> None:
        self.settings = settings
        self.backend = backend
        self._source: DatasetSource | None = None
        self._index: DataIndex | None = None
        self._guard = threading.Lock()
        self._in_use: dict[str, int] = {}
        self._verified: dict[str, float] = {}  # digest -> when its volume was last found whole

    def connect(self, source: DatasetSource) -> None:
        """Where versions come from (a daemon's store, a worker's view of the cluster's)."""
        self._source = source

    @property
    def index(self) -> DataIndex:
        with self._guard:
            if self._index is None:
                named = self.settings.env_cache_index
                folder = (named or default_index_path(self.backend.engine_id())).parent
                self._index = DataIndex(folder / INDEX_FILENAME)
            return self._index

    # -- mounting ---------------------------------------------------------------------
    @contextmanager
    def using(self, mounts: Sequence[DatasetMount]) -> Iterator[None]:
        """Hold the versions of ``mounts`` (until their sandbox exists: then the engine does)."""
        digests = [_digest(m) for m in mounts]
        with self._guard:
            for digest in digests:
                self._in_use[digest] = self._in_use.get(digest, 0) + 1
        try:
            yield
        finally:
            with self._guard:
                for digest in digests:
                    self._in_use[digest] -= 1
                    if not self._in_use[digest]:
                        del self._in_use[digest]

    def volume_mounts(self, mounts: Sequence[DatasetMount], run_id: str) -> tuple[VolumeMount, ...]:
        """Each pinned mount as a read-only volume, copied onto the engine first if needed.

        Raises:
            ConfigurationError: datasets need a daemon (no source is connected).
            ExecutorError: the version is gone, a blob is bad, or the engine failed.
        """
        return tuple(
            VolumeMount(self.ensure(_digest(m), run_id), m.target, read_only=True) for m in mounts
        )

    def ensure(self, digest: str, run_id: str) -> str:
        """The volume holding version ``digest`` on this engine, filled now if needed."""
        source = self._source
        if source is None:
            raise ConfigurationError("datasets are mounted by a daemon (ai-data-agent serve)")
        name = volume_name(digest)
        with self._guard:
            if time.monotonic() - self._verified.get(digest, -VERIFIED_S) < VERIFIED_S:
                return name
        with self.index.lock(digest):
            known = self.index.get(digest)
            labels = self.backend.volume_labels(name)
            if known is not None and labels is not None and labels.get(LABEL_DATASET) == digest:
                self._found(digest)
                return name
            files = source.manifest(digest)
            if files is None:
                raise ExecutorError(
                    f"dataset version {digest[:12]} no longer exists", run_id=run_id, step="dataset"
                )
            if labels is not None:  # left half-filled by a fill that was cut short
                self.backend.remove_volume(name)
            size = sum(f.size for f in files)
            logger.bind(run_id=run_id).info(
                "copying dataset version {} ({} files, {} bytes) onto the engine",
                digest[:12],
                len(files),
                size,
            )
            self.backend.fill_volume(name, {LABEL_DATASET: digest}, archive(files, source))
            self.index.put(digest, name, size)
            self._found(digest)
        self._prune_quietly(run_id)
        return name

    def _found(self, digest: str) -> None:
        with self._guard:
            self._verified[digest] = time.monotonic()

    # -- eviction ---------------------------------------------------------------------
    def prune(self, *, max_bytes: int | None = None, max_age_s: float | None = None) -> list[str]:
        """Remove copies beyond the bounds, least recently used first; those in use stay.

        Returns the digests removed.
        """
        entries = self.index.by_age()
        total = sum(e.size for e in entries)
        now = time.time()
        removed = []
        for entry in entries:
            too_old = max_age_s is not None and now - entry.last_used > max_age_s
            too_big = max_bytes is not None and total > max_bytes
            with self._guard:
                held = entry.digest in self._in_use
                if (too_old or too_big) and not held:
                    self._verified.pop(entry.digest, None)  # asked the engine again next time
            if not (too_old or too_big) or held:
                continue
            try:
                self.backend.remove_volume(entry.volume)
            except ExecutorError as exc:  # in use by a container: it stays
                logger.debug("dataset copy {} stays: {}", entry.volume, exc)
                continue
            self.index.delete(entry.digest)
            total -= entry.size
            removed.append(entry.digest)
        return removed

    def prune_to_bounds(self) -> list[str]:
        s = self.settings
        return self.prune(max_bytes=s.dataset_cache_max_bytes, max_age_s=s.dataset_cache_max_age_s)

    def _prune_quietly(self, run_id: str) -> None:
        try:
            self.prune_to_bounds()
        except ExecutorError as exc:
            logger.bind(run_id=run_id).warning("dataset copies not evicted: {}", exc)

    def usage(self) -> tuple[int, int]:
        """(versions copied onto this engine, their bytes)."""
        entries = self.index.by_age()
        return len(entries), sum(e.size for e in entries)


def _digest(mount: DatasetMount) -> str:
    if mount.digest is None:
        raise ConfigurationError(f"dataset {mount.ref} is not pinned to a version")
    return mount.digest
