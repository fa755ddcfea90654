"""Warm sandboxes with datasets mounted: the pool keeps a few recent mount sets ready too.

    profiles = WarmDataProfiles(pool, limit=2)
    profiles.keep(make_spec)        # after a run that mounted datasets: the next one is warm

A pooled sandbox is made before its run is known, and its mounts cannot
change once it exists; so a run that mounts datasets can take a pooled
sandbox only from a profile with those very mounts. After such a run its
profile joins the pool (the most recent ``limit`` mount sets, the oldest
dropped with its idle sandboxes), so the next run of the same datasets starts
as fast as one without. A profile names versions by digest: only a run that
resolved the same versions (the same bytes) can take its sandboxes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from ai_data_agent.executor.pool import WarmPool
from ai_data_agent.executor.sizing import Key
from ai_data_agent.executor.spec import ContainerSpec

__all__ = ["WarmDataProfiles"]


class WarmDataProfiles:
    """The pool's dataset profiles, most recently used last. Thread-safe."""

    def __init__(self, pool: WarmPool | None, limit: int) -> None:
        self._pool = pool
        self._limit = limit
        self._recent: OrderedDict[Key, None] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, make_spec: Callable[[str], ContainerSpec]) -> None:
        """Keep sandboxes like ``make_spec``'s ready, dropping the least recent beyond the limit."""
        if self._pool is None or self._limit <= 0:
            return
        key = self._pool.add_profile(make_spec)
        with self._lock:
            self._recent[key] = None
            self._recent.move_to_end(key)
            doomed = []
            while len(self._recent) > self._limit:
                doomed.append(self._recent.popitem(last=False)[0])
        for old in doomed:
            self._pool.remove_profile(old)
