"""Housekeeping on a timer: leftover sandbox containers and old run records.

    reaper = Reaper(settings, executor, store, metrics)
    reaper.sweep_orphans(ids)  # at startup: dead controllers' sandboxes and those of `ids`
    reaper.start()             # then every reaper_interval_s: expired sandboxes, retention,
                               # and what ``also`` does (the datasets' housekeeping)
    reaper.stop()

If the engine is unreachable at startup, the orphan sweep is retried on every
tick until it succeeds once; until then only expired sandboxes would be swept.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable

from loguru import logger

from ai_data_agent.executor.backend import SweepRule
from ai_data_agent.service.dispatcher import ARTIFACTS_SUBDIR
from ai_data_agent.service.metrics import ServiceMetrics
from ai_data_agent.service.node import RunExecutor
from ai_data_agent.service.store import RunStore
from ai_data_agent.settings import Settings

__all__ = ["Reaper"]


class Reaper:
    """Sweeps sandboxes and applies retention; one daemon thread."""

    def __init__(
        self,
        settings: Settings,
        executor: RunExecutor,
        store: RunStore,
        metrics: ServiceMetrics,
        also: Callable[[], None] | None = None,
    ) -> None:
        self._also = also  # more housekeeping on the same timer (datasets)
        self._settings = settings
        self._backend = executor.backend
        self._controller_id = executor.controller_id  # its own sandboxes are spared
        self._store = store
        self._metrics = metrics
        self._orphans_swept = False
        self._orphan_run_ids: tuple[str, ...] = ()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep_orphans(self, run_ids: tuple[str, ...] = ()) -> bool:
        """Remove the sandboxes of dead controllers and of ``run_ids``; False on failure.

        Sandboxes of live controllers sharing the engine (a CLI run, another
        daemon) are left alone.
        """
        if run_ids:
            self._orphan_run_ids = run_ids
        try:
            rule = SweepRule(keep_controller=self._controller_id, run_ids=self._orphan_run_ids)
            removed = self._backend.sweep(rule)
        except Exception as exc:
            logger.warning("cannot sweep orphaned sandboxes yet (will retry): {}", exc)
            return False
        self._orphans_swept = True
        self._metrics.reaped.inc(len(removed))
        if removed:
            logger.info(
                "removed {} leftover sandbox container(s) and volume(s) at startup", len(removed)
            )
        return True

    def sweep_expired(self) -> None:
        try:
            removed = self._backend.sweep(SweepRule())
        except Exception as exc:
            logger.warning("sweep of expired sandboxes failed: {}", exc)
            return
        self._metrics.reaped.inc(len(removed))
        if removed:
            logger.info("removed {} expired sandbox container(s) and volume(s)", len(removed))

    def apply_retention(self) -> None:
        try:
            deleted = self._store.apply_retention(
                max_age_s=self._settings.retention_max_age_s,
                max_runs=self._settings.retention_max_runs,
            )
        except Exception as exc:
            logger.warning("retention failed: {}", exc)
            return
        self._metrics.retention_deleted.inc(deleted)
        if deleted:
            logger.info("retention removed {} run record(s)", deleted)
        self.remove_orphaned_artifacts()

    def remove_orphaned_artifacts(self) -> None:
        """Artifacts expire with their record: remove the folders of runs no longer stored."""
        root = self._settings.data_dir / ARTIFACTS_SUBDIR
        try:
            folders = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink()]
        except FileNotFoundError:
            return
        known = self._store.known([p.name for p in folders])
        for folder in folders:
            if folder.name not in known:
                shutil.rmtree(folder, ignore_errors=True)

    def tick(self) -> None:
        """One round: the orphan sweep until it has succeeded, else expired ones; retention."""
        if not self._orphans_swept:
            self.sweep_orphans()
        else:
            self.sweep_expired()
        self.apply_retention()
        if self._also is not None:
            self._also()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="reaper", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._settings.reaper_interval_s):
            self.tick()

    def stop(self) -> None:
        """Stop the timer; waits for a tick in progress (bounded by Docker's timeouts)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._settings.docker_timeout_s)
