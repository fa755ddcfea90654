"""The warm pool: started, never-used sandboxes, each taken by exactly one run.

    pool = WarmPool(backend, size=2, ttl_s=300)
    key = pool.add_profile(spec)        # keep `size` sandboxes like `spec` ready
    sandbox = pool.take(spec)           # one of them, or None: start a fresh one
    pool.settled(sandbox)               # its hot start is over: refill now
    pool.remove_profile(key)            # stop keeping them; the idle ones go
    pool.close()                        # remove every idle sandbox

A pooled sandbox is a fresh container whose runner is loaded and waits for
its job on stdin (`delivery.launch`), so a run skips the container start and
the runner's start without ever sharing a container: the driver removes it
after its one run. Refill happens on a background
thread; an empty pool means a fresh container, never reuse. A refill waits
while a taken sandbox starts its user code (until `settled()`, at most
``REFILL_DEFER_S``): on a small host, starting a container next to that code
slows the very run the pool exists to speed up. Sandboxes that
wait longer than the TTL are recycled. Docker errors are logged and retried
with a backoff; the pool never holds more than ``size`` per profile.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from loguru import logger

from ai_data_agent.errors import AiDataAgentError
from ai_data_agent.executor.backend import Backend, Sandbox
from ai_data_agent.executor.delivery import launch
from ai_data_agent.executor.spec import ContainerSpec

__all__ = ["WarmPool"]

RETRY_BACKOFF_S = (0.5, 1, 2, 5, 10, 30)
REFILL_DEFER_S = 1.0


@dataclass
class _Idle:
    sandbox: Sandbox
    born: float


@dataclass
class _Profile:
    make_spec: Callable[[str], ContainerSpec]
    idle: list[_Idle] = field(default_factory=list)
    starting: int = 0
    failures: int = 0
    retry_at: float = 0.0


class WarmPool:
    """Pre-started sandboxes per profile (see the module docstring)."""

    def __init__(self, backend: Backend, *, size: int, ttl_s: float) -> None:
        self.backend = backend
        self.size = size
        self.ttl_s = ttl_s
        self._profiles: dict[tuple[object, ...], _Profile] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._unsettled: set[str] = set()
        self._defer_until = 0.0
        self.taken = 0
        self.missed = 0

    def add_profile(self, make_spec: Callable[[str], ContainerSpec]) -> tuple[object, ...]:
        """Keep sandboxes of ``make_spec(pool_id)`` ready; the refill thread starts them.
        Returns the profile's key (for `remove_profile`)."""
        profile = make_spec("pool").profile()
        with self._cond:
            if self._closed or profile in self._profiles:
                return profile
            self._profiles[profile] = _Profile(make_spec)
            if self._thread is None:
                self._thread = threading.Thread(target=self._refill, name="warm-pool", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return profile

    def remove_profile(self, profile: tuple[object, ...]) -> None:
        """Stop keeping sandboxes of ``profile``; its idle ones are removed now."""
        with self._cond:
            entry = self._profiles.pop(profile, None)
            idle = entry.idle if entry is not None else []
            if entry is not None:
                entry.idle = []
        for item in idle:
            self._remove(item.sandbox)

    def take(self, spec: ContainerSpec) -> Sandbox | None:
        """A ready sandbox with the profile of ``spec``, or None."""
        with self._cond:
            entry = self._profiles.get(spec.profile())
            if entry is None or not entry.idle:
                if entry is not None:
                    self.missed += 1
                return None
            idle = entry.idle.pop(0)
            self.taken += 1
            self._unsettled.add(idle.sandbox.container_id)
            self._defer_until = time.monotonic() + REFILL_DEFER_S
            self._cond.notify_all()
            return idle.sandbox

    def settled(self, sandbox: Sandbox) -> None:
        """``sandbox`` is past its start: refill need not wait for it. Any sandbox may
        be passed; one the pool did not hand out changes nothing."""
        with self._cond:
            if sandbox.container_id in self._unsettled:
                self._unsettled.discard(sandbox.container_id)
                self._cond.notify_all()

    def idle_count(self) -> int:
        with self._cond:
            return sum(len(p.idle) for p in self._profiles.values())

    # -- background ---------------------------------------------------------------
    def _refill(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                work = self._next_work()
                if work is None:
                    self._cond.wait(timeout=self._idle_wait())
                    continue
                expired, profile = work
                if profile is not None:
                    profile.starting += 1
            for idle in expired:
                self._remove(idle.sandbox)
            if profile is not None:
                self._start_one(profile)

    def _next_work(self) -> tuple[list[_Idle], _Profile | None] | None:
        """Under the lock: sandboxes past their TTL, and a profile that needs one more."""
        now = time.monotonic()
        expired: list[_Idle] = []
        needy = None
        if now >= self._defer_until:
            self._unsettled.clear()  # takers that never settle wait no longer than this
        deferred = bool(self._unsettled)
        for profile in self._profiles.values():
            stale = [i for i in profile.idle if now - i.born > self.ttl_s]
            if stale:
                profile.idle = [i for i in profile.idle if i not in stale]
                expired += stale
            short = len(profile.idle) + profile.starting < self.size
            if needy is None and short and not deferred and now >= profile.retry_at:
                needy = profile
        if not expired and needy is None:
            return None
        return expired, needy

    def _idle_wait(self) -> float:
        """Under the lock: how long the refill thread may sleep before it looks again."""
        wait = min(self.ttl_s / 4, 5.0)
        now = time.monotonic()
        if self._unsettled:
            wait = min(wait, self._defer_until - now)
        retries = [p.retry_at - now for p in self._profiles.values() if p.retry_at > now]
        return max(0.01, min([wait, *retries]))

    def _start_one(self, profile: _Profile) -> None:
        pool_id = f"pool-{uuid.uuid4().hex[:12]}"
        try:
            sandbox = launch(self.backend, profile.make_spec(pool_id), pool_id)
        except AiDataAgentError as exc:
            with self._cond:
                profile.starting -= 1
                delay = RETRY_BACKOFF_S[min(profile.failures, len(RETRY_BACKOFF_S) - 1)]
                profile.failures += 1
                profile.retry_at = time.monotonic() + delay
            logger.warning("warm pool: cannot start a sandbox ({}); retrying in {}s", exc, delay)
            return
        with self._cond:
            profile.starting -= 1
            profile.failures = 0
            if self._closed or not any(p is profile for p in self._profiles.values()):
                keep = False  # closed, or the profile was removed meanwhile
            else:
                profile.idle.append(_Idle(sandbox, time.monotonic()))
                keep = True
            self._cond.notify_all()
        if not keep:
            self._remove(sandbox)

    @staticmethod
    def _remove(sandbox: Sandbox) -> None:
        try:
            sandbox.remove()
        except AiDataAgentError as exc:
            logger.warning("warm pool: cannot remove {}: {}", sandbox.container_id[:12], exc)

    # -- lifecycle ----------------------------------------------------------------
    def close(self) -> None:
        """Stop refilling and remove every idle sandbox. Idempotent."""
        with self._cond:
            self._closed = True
            idle = [i for p in self._profiles.values() for i in p.idle]
            for p in self._profiles.values():
                p.idle.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=30)
        for entry in idle:
            self._remove(entry.sandbox)
