"""How many sandboxes each warm pool profile keeps, within the pool's memory budget.

    sizing = Sizing(size=2, budget_kb=1024 * 1024, recent_sets=2, clock=time.monotonic)
    sizing.add(make_spec, Warmth())                  # plain: ``size`` kept
    sizing.add(make_spec, Warmth((env,)), floor=1)   # a prewarm set: 1, more on demand
    idle = sizing.pick(spec.profile(), Warmth((env,)))   # that set's, else plain; demand counted
    doomed = sizing.recycle(ttl_s)                   # too old, beyond target, beyond budget
    profile = sizing.needy()                         # the one to start a sandbox for, or None

The plain profile keeps ``size``. A pre-imported one targets as many as its
runs asked for within `DEMAND_WINDOW_S` (taken or missed), at least its
floor, at most ``size``; a set asked for `RECENT_MIN_REQUESTS` times within
the window becomes a profile of floor 0 (``recent_sets`` of them at most, the
least recently asked for goes first). Every sandbox idle or starting counts
against the budget with its profile's last measured resident memory (a
default before the first is measured); a profile that would break it is not
refilled, and idle sandboxes beyond it go, least wanted first. The pool calls
all of this under its own lock; ``clock`` is injectable for tests.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ai_data_agent.executor.backend import Sandbox
from ai_data_agent.executor.spec import ContainerSpec
from ai_data_agent.executor.warm import WarmReport, Warmth

__all__ = ["DEMAND_WINDOW_S", "Idle", "Key", "Profile", "ProfileState", "Sizing"]

DEMAND_WINDOW_S = 60.0
RECENT_MIN_REQUESTS = 2
PLAIN_ESTIMATE_KB = 40 * 1024  # before a profile's first sandbox is measured
WARM_ESTIMATE_KB = 200 * 1024
MAX_WATCHED_SETS = 64

Key = tuple[tuple[object, ...], tuple[str, ...]]


@dataclass
class Idle:
    sandbox: Sandbox
    born: float


@dataclass
class Profile:
    """One kind of pooled sandbox, its idle ones and what it was asked for."""

    make_spec: Callable[[str], ContainerSpec]
    warmth: Warmth
    floor: int
    order: int
    key: Key
    name: str  # unique among the pool's profiles (see `Sizing.add`)
    idle: list[Idle] = field(default_factory=list)
    starting: int = 0
    failures: int = 0
    retry_at: float = 0.0
    rss_kb: int = 0  # of its last sandbox, when it was warm
    imported: tuple[str, ...] = ()
    broken: str = ""  # why its imports failed: it is kept empty
    asked: deque[float] = field(default_factory=deque)
    taken: int = 0
    missed: int = 0

    @property
    def plain(self) -> bool:
        return not self.warmth.env_paths

    def warmed(self, report: WarmReport) -> bool:
        """Note a new sandbox's warm report; True when the sandbox may be kept."""
        self.rss_kb = report.rss_kb or self.rss_kb
        if report.error:
            self.broken = report.error
            return False
        self.imported = tuple(report.imported)
        return True

    def estimate_kb(self) -> int:
        return self.rss_kb or (PLAIN_ESTIMATE_KB if self.plain else WARM_ESTIMATE_KB)

    def held(self) -> int:
        return len(self.idle) + self.starting


@dataclass(frozen=True)
class ProfileState:
    """A profile as operators see it (``/readyz``, metrics)."""

    name: str
    preimported: bool  # its sandboxes hold a cached set's environment, modules imported
    modules: tuple[str, ...]
    idle: int
    starting: int
    target: int
    rss_mb: float
    taken: int
    missed: int
    broken: str


class Sizing:
    """The pool's profiles and the rules above; not thread-safe (the pool locks)."""

    def __init__(
        self, size: int, budget_kb: int, recent_sets: int, clock: Callable[[], float]
    ) -> None:
        self.size = size
        self.budget_kb = budget_kb
        self.recent_sets = recent_sets
        self.clock = clock
        self.profiles: list[Profile] = []
        self._by_key: dict[Key, Profile] = {}
        self._watched: dict[Key, deque[float]] = {}
        self._retired: list[Idle] = []
        self._made = 0

    # -- profiles -----------------------------------------------------------------
    def add(
        self, make_spec: Callable[[str], ContainerSpec], warmth: Warmth, floor: int | None = None
    ) -> Profile:
        key = self.key(make_spec, warmth)
        floor = 1 if floor is None else floor
        known = self._by_key.get(key)
        if known is not None:
            known.floor = max(known.floor, floor)
            return known
        self._made += 1
        profile = Profile(make_spec, warmth, floor, self._made, key, self._name(warmth, key))
        self.profiles.append(profile)
        self._by_key[key] = profile
        return profile

    def _name(self, warmth: Warmth, key: Key) -> str:
        """``warmth``'s name, with a digest of the sandbox's settings when another profile
        has that name (plain ones with datasets mounted): one label per profile."""
        if all(p.name != warmth.name for p in self.profiles):
            return warmth.name
        return f"{warmth.name}-{hashlib.sha256(repr(key).encode()).hexdigest()[:8]}"

    @staticmethod
    def key(make_spec: Callable[[str], ContainerSpec], warmth: Warmth) -> Key:
        return (make_spec("pool").profile(), warmth.env_paths)

    def remove(self, key: Key) -> list[Idle]:
        """Forget the profile ``key`` (if known); its idle sandboxes, to remove."""
        profile = self._by_key.pop(key, None)
        if profile is None:
            return []
        self.profiles.remove(profile)
        idle, profile.idle = profile.idle, []
        return idle

    def _drop(self, key: Key) -> None:
        self._retired += self.remove(key)

    # -- demand -------------------------------------------------------------------
    def _ask(self, times: deque[float], now: float) -> int:
        times.append(now)
        while times and now - times[0] > DEMAND_WINDOW_S:
            times.popleft()
        return len(times)

    def demand(self, profile: Profile) -> int:
        now = self.clock()
        while profile.asked and now - profile.asked[0] > DEMAND_WINDOW_S:
            profile.asked.popleft()
        return len(profile.asked)

    def target(self, profile: Profile) -> int:
        if profile.broken:
            return 0
        if profile.plain:
            return self.size
        return min(self.size, max(profile.floor, self.demand(profile)))

    def knows(self, spec_profile: tuple[object, ...]) -> bool:
        """Whether a plain profile serves sandboxes like ``spec_profile``."""
        return (spec_profile, ()) in self._by_key

    def pick(self, spec_profile: tuple[object, ...], warmth: Warmth | None) -> Idle | None:
        """A sandbox for a run: pre-imported with ``warmth``'s environments if one waits,
        else plain, else None. Every profile asked counts the demand."""
        now = self.clock()
        if warmth is not None and warmth.env_paths:
            key = (spec_profile, warmth.env_paths)
            profile = self._by_key.get(key)
            if profile is None:
                self._watch(key, warmth, now)
            else:
                found = self._take(profile, now)
                if found is not None:
                    return found
        plain = self._by_key.get((spec_profile, ()))
        return self._take(plain, now) if plain is not None else None

    def _take(self, profile: Profile, now: float) -> Idle | None:
        self._ask(profile.asked, now)
        if not profile.idle:
            profile.missed += 1
            return None
        profile.taken += 1
        return profile.idle.pop(0)

    def _watch(self, key: Key, warmth: Warmth, now: float) -> None:
        """A set without a profile was asked for: often enough lately, and it gets one."""
        base = self._by_key.get((key[0], ()))
        if self.recent_sets <= 0 or base is None:
            return
        times = self._watched.pop(key, deque())
        if self._ask(times, now) < RECENT_MIN_REQUESTS:
            self._watched[key] = times  # re-inserted: the oldest entries go first
            while len(self._watched) > MAX_WATCHED_SETS:
                del self._watched[next(iter(self._watched))]
            return
        recent = [(p.asked[-1] if p.asked else 0.0, k) for k, p in self._by_key.items()]
        recent = [(t, k) for t, k in recent if self._by_key[k].floor == 0 and k[1]]
        if len(recent) >= self.recent_sets:
            self._drop(min(recent, key=lambda entry: entry[0])[1])
        profile = self.add(base.make_spec, warmth, floor=0)
        profile.asked = times

    # -- memory and refill --------------------------------------------------------
    def used_kb(self) -> int:
        return sum(p.held() * p.estimate_kb() for p in self.profiles)

    def _rank(self, profile: Profile) -> tuple[bool, int, bool, int]:
        """Who is refilled first (highest) and trimmed first (lowest): empty profiles, then
        the most asked for, the plain one, the oldest."""
        return (profile.held() == 0, self.demand(profile), profile.plain, -profile.order)

    def needy(self) -> Profile | None:
        """The profile to start a sandbox for now: below its target, not waiting to retry,
        and within the budget with one more."""
        now = self.clock()
        used = self.used_kb()
        short = [
            p
            for p in self.profiles
            if p.held() < self.target(p)
            and now >= p.retry_at
            and used + p.estimate_kb() <= self.budget_kb
        ]
        return max(short, key=self._rank, default=None)

    def recycle(self, ttl_s: float) -> list[Idle]:
        """Idle sandboxes to remove now: retired profiles', past the TTL, beyond their
        profile's target, and beyond the budget (the least wanted first)."""
        now = self.clock()
        doomed, self._retired = self._retired, []
        for profile in self.profiles:
            keep = [i for i in profile.idle if now - i.born <= ttl_s]
            excess = max(0, len(keep) + profile.starting - self.target(profile))
            doomed += [i for i in profile.idle if i not in keep] + keep[:excess]
            profile.idle = keep[excess:]
        for profile in sorted(self.profiles, key=self._rank):
            while profile.idle and self.used_kb() > self.budget_kb:
                doomed.append(profile.idle.pop(0))
        return doomed

    def states(self) -> list[ProfileState]:
        return [
            ProfileState(
                name=p.name,
                preimported=not p.plain,
                modules=p.imported,
                idle=len(p.idle),
                starting=p.starting,
                target=self.target(p),
                rss_mb=round(p.rss_kb / 1024, 1),
                taken=p.taken,
                missed=p.missed,
                broken=p.broken[:200],
            )
            for p in self.profiles
        ]
