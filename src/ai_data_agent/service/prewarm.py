"""Requirement sets installed into the environment cache at the daemon's start, in the background.

    prewarm = Prewarmer(settings, executor)
    prewarm.start()            # returns at once; a thread installs each set in turn
    prewarm.check()            # Check("prewarm", True, "1 of 2 sets ready; installing pandas ...")

Operators know which sets their agents use (``AI_DATA_AGENT_PREWARM``); with
them installed ahead, an agent's first run of one is a cache hit. Each set is
warmed by a run of ``pass`` with it, not by the index alone: the run verifies
the environment in a sandbox, and one the index lists but the volume lost
(another controller pruned it, ``docker volume rm``) is installed again then.
Readiness does not wait for this (a daemon answers at once); it reports the
progress. A set that fails to install is reported and skipped, never retried
in a loop.
"""

from __future__ import annotations

import threading
import uuid

from loguru import logger

from ai_data_agent.checks import Check
from ai_data_agent.errors import AiDataAgentError
from ai_data_agent.models import RunRequest, RunStatus
from ai_data_agent.service.node import RunExecutor
from ai_data_agent.settings import Settings

__all__ = ["Prewarmer"]


class Prewarmer:
    def __init__(self, settings: Settings, executor: RunExecutor) -> None:
        self.sets = [list(s) for s in settings.prewarm]
        self.executor = executor
        self._lock = threading.Lock()
        self._ready: list[list[str]] = []
        self._failed: list[tuple[list[str], str]] = []
        self._current: list[str] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.sets and self._thread is None:
            self._thread = threading.Thread(target=self._warm_all, name="prewarm", daemon=True)
            self._thread.start()

    def _warm_all(self) -> None:
        for requirements in self.sets:
            with self._lock:
                self._current = requirements
            error = self._warm(requirements, f"prewarm-{uuid.uuid4().hex[:12]}")
            with self._lock:
                self._current = None
                if error is None:
                    self._ready.append(requirements)
                else:
                    self._failed.append((requirements, error))
            if error is None:
                logger.info("prewarmed {}", " ".join(requirements))
            else:
                logger.warning("cannot prewarm {}: {}", " ".join(requirements), error)

    def _warm(self, requirements: list[str], run_id: str) -> str | None:
        """Why ``requirements`` could not be made ready, or None once they are."""
        if self.executor.env_cache is None:
            return "the environment cache is off (install_mode=per_run)"
        try:
            result = self.executor.run(
                RunRequest(code="pass", requirements=requirements), run_id=run_id
            )
        except (AiDataAgentError, ValueError) as exc:  # ValueError: pydantic's refusal
            return str(exc)
        if result.status is not RunStatus.SUCCEEDED:
            return result.error or result.status.value
        return None

    def check(self) -> Check:
        """Progress, for /readyz: always ok (readiness never waits for it)."""
        with self._lock:
            ready, failed, current = len(self._ready), list(self._failed), self._current
        parts = [f"{ready} of {len(self.sets)} set(s) ready"]
        if current is not None:
            parts.append(f"installing {' '.join(current)}")
        for requirements, error in failed:
            parts.append(f"failed {' '.join(requirements)}: {error[:200]}")
        return Check("prewarm", True, "; ".join(parts))
