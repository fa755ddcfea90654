"""Staging volumes for installs, made ready before they are needed and removed after, in the background.

    staging = StagingVolumes(backend, labels_for)
    name = staging.take()          # one made earlier (or now, if none is ready)
    ...                            # install into it, publish from it
    staging.discard(name)          # removed in the background
    staging.close()                # waits for the background work

An install writes into a fresh volume of its own (never the shared cache),
and a second container copies the result into place. Creating a volume owned
by the sandbox user takes a helper container (~0.3 s) and removing one about
half a second: neither needs to be on the path of a first run, so one volume
waits ready and used ones go after the answer. Leftovers (a crash) carry a
deadline label and are swept.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from loguru import logger

from ai_data_agent.errors import AiDataAgentError
from ai_data_agent.executor.backend import Backend

__all__ = ["StagingVolumes"]

PREFIX = "ai-data-agent-stage-"


class StagingVolumes:
    def __init__(self, backend: Backend, labels_for: Callable[[], dict[str, str]]) -> None:
        self.backend = backend
        self.labels_for = labels_for
        self._lock = threading.Lock()
        self._ready: Future[str] | None = None
        self._work = ThreadPoolExecutor(1, thread_name_prefix="staging")
        self._closed = False

    def _create(self) -> str:
        name = f"{PREFIX}{uuid.uuid4().hex[:12]}"
        self.backend.ensure_volume(name, self.labels_for())
        return name

    def _prepare_next(self) -> None:
        """Lock held: start making the next volume, unless one is on its way."""
        if self._ready is None and not self._closed:
            self._ready = self._work.submit(self._create)

    def prefetch(self) -> None:
        """Start making one volume now, for the next `take`."""
        with self._lock:
            self._prepare_next()

    def spare(self) -> str | None:
        """The name of the volume made ahead, once it is made."""
        with self._lock:
            ready = self._ready
        if ready is None or not ready.done() or ready.exception() is not None:
            return None
        return ready.result()

    def take(self) -> str:
        """A fresh staging volume, owned by the sandbox user.

        Raises:
            ExecutorError: Docker failed to make one.
        """
        with self._lock:
            ready, self._ready = self._ready, None
            self._prepare_next()
        if ready is not None:
            try:
                return ready.result()
            except AiDataAgentError as exc:
                logger.warning("a staging volume made ahead failed ({}); making one now", exc)
        return self._create()

    def discard(self, name: str) -> None:
        """Remove a used volume, after the caller has moved on."""
        with self._lock:
            if self._closed:
                self._remove(name)
                return
            self._work.submit(self._remove, name)

    def _remove(self, name: str) -> None:
        try:
            self.backend.remove_volume(name)
        except AiDataAgentError as exc:
            logger.warning("staging volume {} stays for the sweep: {}", name, exc)

    def close(self) -> None:
        """Finish the background work and remove the volume made ahead. Idempotent."""
        with self._lock:
            self._closed = True
            ready, self._ready = self._ready, None
        self._work.shutdown(wait=True)
        if ready is not None:
            try:
                self._remove(ready.result())
            except AiDataAgentError:
                pass  # never made: nothing to remove
