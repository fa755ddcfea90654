"""The warm pool: started, never-used sandboxes per profile, each taken by exactly one run.

    pool = WarmPool(backend, size=2, ttl_s=300, memory_mb=1024, recent_sets=2)
    key = pool.add_profile(make_spec)                    # plain: ``size`` kept ready
    pool.add_profile(make_spec, Warmth(env_paths=(path,)), floor=1)   # pandas imported
    sandbox = pool.take(spec, Warmth(env_paths=(path,)))  # that set's, else a plain one, else None
    pool.settled(sandbox)                                 # its hot start is over: refill now
    pool.remove_profile(key)                              # stop keeping them; the idle ones go
    pool.close()                                          # remove every idle sandbox

A pooled sandbox is a fresh container whose runner is loaded and whose code
interpreter is up (`warm`): a plain one's with nothing imported, a
pre-imported one's with a cached set's environment on its path and the
set's heavy modules imported. A run skips the container start, the runner's
start and the code interpreter's (and its imports) without ever sharing a
container: the driver removes it after its one run, and an empty pool means a
fresh container, never reuse. A run of one set never gets a sandbox of
another set: a pre-imported profile is taken only by the environment it
holds, a plain one by any.

Sizing (`sizing`): the plain profile keeps ``size`` ready; a pre-imported one
as many as its runs asked for lately, at least its floor (1 for the
operator's prewarm sets, 0 for the sets most used recently, which become
profiles when asked for twice), at most ``size``; all of them together
within ``memory_mb`` of resident memory (each profile's last measured
sandbox). Refill happens on one background thread and waits while a taken
sandbox starts its code (until `settled()`, at most ``REFILL_DEFER_S``): on a
small host, starting a container next to that code slows the very run the
pool exists to speed up. Sandboxes older than the TTL, beyond their
profile's target or beyond the budget are recycled. Docker errors are logged
and retried with a backoff; a profile whose imports fail is kept empty.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from loguru import logger

from ai_data_agent.errors import AiDataAgentError
from ai_data_agent.executor.backend import Backend, Sandbox
from ai_data_agent.executor.delivery import launch
from ai_data_agent.executor.sizing import Idle, Key, Profile, ProfileState, Sizing
from ai_data_agent.executor.spec import ContainerSpec
from ai_data_agent.executor.warm import Warmth, warm_up

__all__ = ["ProfileState", "WarmPool"]

RETRY_BACKOFF_S = (0.5, 1, 2, 5, 10, 30)
REFILL_DEFER_S = 1.0


class WarmPool:
    """Pre-started sandboxes per profile (see the module docstring)."""

    def __init__(
        self,
        backend: Backend,
        *,
        size: int,
        ttl_s: float,
        memory_mb: int = 1024,
        recent_sets: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.size = size
        self.ttl_s = ttl_s
        self.sizing = Sizing(size, memory_mb * 1024, recent_sets, clock)
        self._clock = clock
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._unsettled: set[str] = set()
        self._defer_until = 0.0
        self.taken = 0
        self.missed = 0

    def add_profile(
        self,
        make_spec: Callable[[str], ContainerSpec],
        warmth: Warmth | None = None,
        *,
        floor: int | None = None,
    ) -> Key:
        """Keep sandboxes of ``make_spec(pool_id)`` with ``warmth`` ready (plain by default:
        ``size`` of them; a pre-imported profile at least ``floor``, 1 by default); the
        refill thread starts them. A profile added again keeps the higher floor. Returns
        the profile's key (for `remove_profile`)."""
        warmth = warmth or Warmth()
        with self._cond:
            if self._closed:
                return Sizing.key(make_spec, warmth)
            profile = self.sizing.add(make_spec, warmth, floor)
            if self._thread is None:
                self._thread = threading.Thread(target=self._refill, name="warm-pool", daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return profile.key

    def remove_profile(self, key: Key) -> None:
        """Stop keeping sandboxes of the profile ``key``; its idle ones are removed now."""
        with self._cond:
            idle = self.sizing.remove(key)
        for item in idle:
            self._remove(item.sandbox)

    def take(self, spec: ContainerSpec, warmth: Warmth | None = None) -> Sandbox | None:
        """A ready sandbox with the profile of ``spec``: one pre-imported with ``warmth``'s
        environment if one waits, else a plain one; or None."""
        with self._cond:
            found = self.sizing.pick(spec.profile(), warmth)
            if found is None:
                self.missed += self.sizing.knows(spec.profile())
                return None
            self.taken += 1
            self._unsettled.add(found.sandbox.container_id)
            self._defer_until = self._clock() + REFILL_DEFER_S
            self._cond.notify_all()
            return found.sandbox

    def settled(self, sandbox: Sandbox) -> None:
        """``sandbox`` is past its start: refill need not wait for it. Any sandbox may
        be passed; one the pool did not hand out changes nothing."""
        with self._cond:
            if sandbox.container_id in self._unsettled:
                self._unsettled.discard(sandbox.container_id)
                self._cond.notify_all()

    def idle_count(self) -> int:
        with self._cond:
            return sum(len(p.idle) for p in self.sizing.profiles)

    def idle_ids(self) -> set[str]:
        """The containers waiting in the pool now (a leak check spares them)."""
        with self._cond:
            return {i.sandbox.container_id for p in self.sizing.profiles for i in p.idle}

    def profiles(self) -> list[ProfileState]:
        """Each profile as operators see it (readiness, metrics)."""
        with self._cond:
            return self.sizing.states()

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
                doomed, profile = work
                if profile is not None:
                    profile.starting += 1
            for idle in doomed:
                self._remove(idle.sandbox)
            if profile is not None:
                self._start_one(profile)

    def _next_work(self) -> tuple[list[Idle], Profile | None] | None:
        """Under the lock: sandboxes to recycle, and a profile that needs one more."""
        now = self._clock()
        if now >= self._defer_until:
            self._unsettled.clear()  # takers that never settle wait no longer than this
        doomed = self.sizing.recycle(self.ttl_s)
        needy = None if self._unsettled else self.sizing.needy()
        if not doomed and needy is None:
            return None
        return doomed, needy

    def _idle_wait(self) -> float:
        """Under the lock: how long the refill thread may sleep before it looks again."""
        wait = min(self.ttl_s / 4, 5.0)
        now = self._clock()
        if self._unsettled:
            wait = min(wait, self._defer_until - now)
        retries = [p.retry_at - now for p in self.sizing.profiles if p.retry_at > now]
        return max(0.01, min([wait, *retries]))

    def _start_one(self, profile: Profile) -> None:
        pool_id = f"pool-{uuid.uuid4().hex[:12]}"
        sandbox: Sandbox | None = None
        try:
            sandbox = launch(self.backend, profile.make_spec(pool_id), pool_id)
            report = warm_up(sandbox, profile.warmth)
        except AiDataAgentError as exc:
            if sandbox is not None:
                self._remove(sandbox)
            with self._cond:
                profile.starting -= 1
                delay = RETRY_BACKOFF_S[min(profile.failures, len(RETRY_BACKOFF_S) - 1)]
                profile.failures += 1
                profile.retry_at = self._clock() + delay
            logger.warning("warm pool: cannot start a sandbox ({}); retrying in {}s", exc, delay)
            return
        with self._cond:
            profile.starting -= 1
            profile.failures = 0
            # Not kept once closed, or when the profile was removed meanwhile.
            live = any(p is profile for p in self.sizing.profiles)
            keep = not self._closed and live and profile.warmed(report)
            if keep:
                profile.idle.append(Idle(sandbox, self._clock()))
            self._cond.notify_all()
        if report.error:
            logger.warning(
                "warm pool: profile {} stays empty: its imports failed: {}",
                profile.warmth.name,
                report.error[:500],
            )
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
            idle = [i for p in self.sizing.profiles for i in p.idle]
            for p in self.sizing.profiles:
                p.idle.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=30)
        for entry in idle:
            self._remove(entry.sandbox)
