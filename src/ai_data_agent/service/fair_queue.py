"""The run queue of one node, fair between tenants.

    queue = FairQueue[str]()
    queue.push("a", "run-1", cap=None); queue.push("a", "run-2"); queue.push("b", "run-3")
    queue.pop()          # ("a", "run-1"): a and b run nothing; a came first
    queue.pop()          # ("b", "run-3"): b runs nothing, a runs one
    queue.done("a")      # run-1 ended: a runs nothing again

A free slot goes to the tenant with the fewest runs running; among equals, to
the one served longest ago (round-robin), and a tenant's own runs keep their
order. A tenant at its cap (its ``concurrent_runs``) is skipped until one of
its runs is `done`. So one tenant with hundreds queued delays another's single
run by at most one run per slot. Not thread-safe: the dispatcher holds its lock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["FairQueue"]

T = TypeVar("T")


@dataclass(eq=False)
class _Tenant(Generic[T]):
    waiting: deque[T] = field(default_factory=deque)
    running: int = 0
    cap: int | None = None
    served: int = 0  # the turn it was last served (0: never)

    def ready(self) -> bool:
        return bool(self.waiting) and (self.cap is None or self.running < self.cap)


class FairQueue(Generic[T]):
    """See the module docstring."""

    def __init__(self) -> None:
        self._tenants: dict[str, _Tenant[T]] = {}
        self._turn = 0
        self._length = 0

    def __len__(self) -> int:
        """Items waiting, every tenant's."""
        return self._length

    def queued(self, tenant: str) -> int:
        found = self._tenants.get(tenant)
        return 0 if found is None else len(found.waiting)

    def running(self, tenant: str) -> int:
        found = self._tenants.get(tenant)
        return 0 if found is None else found.running

    def push(self, tenant: str, item: T, *, cap: int | None = None) -> None:
        """Queue ``item`` of ``tenant``, which may run ``cap`` at once (None: no cap of its own;
        the latest push's cap counts)."""
        entry = self._tenants.setdefault(tenant, _Tenant())
        entry.waiting.append(item)
        entry.cap = cap
        self._length += 1

    def ready(self) -> bool:
        """Whether `pop` has an item to give (a tenant with one waiting, below its cap)."""
        return any(entry.ready() for entry in self._tenants.values())

    def pop(self) -> tuple[str, T] | None:
        """The next item and its tenant, counted as running until `done`; None when no tenant
        with items waiting is below its cap."""
        ready = [(name, entry) for name, entry in self._tenants.items() if entry.ready()]
        if not ready:
            return None
        name, entry = min(ready, key=lambda pair: (pair[1].running, pair[1].served))
        self._turn += 1
        entry.served = self._turn
        entry.running += 1
        self._length -= 1
        return name, entry.waiting.popleft()

    def done(self, tenant: str) -> None:
        """One of ``tenant``'s popped items ended."""
        entry = self._tenants.get(tenant)
        if entry is not None and entry.running:
            entry.running -= 1
            self._forget_idle(tenant, entry)

    def remove(self, tenant: str, item: T) -> bool:
        """Take ``item`` out of the queue (a cancel); False when it is not waiting."""
        entry = self._tenants.get(tenant)
        if entry is None or item not in entry.waiting:
            return False
        entry.waiting.remove(item)
        self._length -= 1
        self._forget_idle(tenant, entry)
        return True

    def drain(self) -> list[T]:
        """Take every waiting item out (a shutdown); running counts stay until `done`."""
        drained = [item for entry in self._tenants.values() for item in entry.waiting]
        for name, entry in list(self._tenants.items()):
            entry.waiting.clear()
            self._forget_idle(name, entry)
        self._length = 0
        return drained

    def _forget_idle(self, tenant: str, entry: _Tenant[T]) -> None:
        """Keep only tenants with something waiting or running: memory stays bounded."""
        if not entry.waiting and not entry.running:
            del self._tenants[tenant]
