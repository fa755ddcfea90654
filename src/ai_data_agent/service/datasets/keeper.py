"""The datasets' housekeeping on a node's timer, and what metrics and doctor report of them.

    keeper = DatasetKeeper(datasets, engine)        # engine: None on an API node without one
    keeper.keep_blobs_of(checkpoints.named_blobs)   # every other record of the blob store
    keeper.tick()                                   # GC, then engine copies beyond their bounds
    keeper.bind_metrics(metrics.registry)           # gauges read when scraped

A tick removes what no version names any more (manifests, then blobs older
than the grace period: an upload not recorded yet is spared) and evicts the
engine's dataset copies beyond their size and age bounds. The blob store is
shared with every other kind of record that keeps bytes there (checkpoints):
each registers what it names (`keep_blobs_of`), or the sweep takes its blobs.
It never raises: what fails now is tried again at the next tick.
"""

from __future__ import annotations

from collections.abc import Callable

from loguru import logger
from prometheus_client import CollectorRegistry, Gauge

from ai_data_agent.executor.data import EngineDatasets
from ai_data_agent.service.datasets.service import DatasetService

__all__ = ["DatasetKeeper"]


class DatasetKeeper:
    def __init__(self, datasets: DatasetService, engine: EngineDatasets | None) -> None:
        self.datasets = datasets
        self.engine = engine
        self._others: list[Callable[[], set[str]]] = []

    def keep_blobs_of(self, named: Callable[[], set[str]]) -> None:
        """Spare, at every collection, the blobs ``named()`` answers (another record kind's)."""
        self._others.append(named)

    def _kept(self) -> set[str]:
        return set().union(*(named() for named in self._others))

    def tick(self) -> None:
        try:
            self.datasets.collect_garbage(keep=self._kept)
        except Exception as exc:
            logger.warning("dataset GC failed (will retry): {}", exc)
        if self.engine is not None:
            try:
                self.engine.prune_to_bounds()
            except Exception as exc:
                logger.warning("dataset copies not evicted (will retry): {}", exc)

    def bind_metrics(self, registry: CollectorRegistry) -> None:
        """Gauges of the datasets' storage, computed when scraped."""
        records, blobs = self.datasets.records, self.datasets.blobs
        gauges = (
            ("ai_data_agent_dataset_versions", "Dataset versions recorded.", "versions"),
            ("ai_data_agent_dataset_bytes", "Bytes of all dataset versions.", "bytes"),
        )

        def usage_of(field: str) -> Callable[[], float]:
            return lambda: float(getattr(records.usage(), field))

        for name, text, field in gauges:
            Gauge(name, text, registry=registry).set_function(usage_of(field))
        stored = Gauge(
            "ai_data_agent_storage_bytes",
            "Bytes in the blob store (deduplicated).",
            registry=registry,
        )
        stored.set_function(lambda: float(blobs.usage()[1]))
        engine = self.engine
        if engine is not None:
            copies = Gauge(
                "ai_data_agent_dataset_engine_bytes",
                "Bytes of dataset versions copied onto this node's engine.",
                registry=registry,
            )
            copies.set_function(lambda: float(engine.usage()[1]))
