"""One finding of a check, for `doctor` and the daemon's readiness: its name, pass or fail, and why.

Check("docker", True, "engine 20.10.24")
Check.failed("store", exc)   # Check("store", False, "OperationalError: disk I/O error")
Check("workers", True, "0 live", degraded=True)   # passes, yet nothing can execute now
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Check"]

MAX_DETAIL = 500


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    degraded: bool = False  # passing, but work cannot execute now (a cluster with no worker)

    @classmethod
    def failed(cls, name: str, exc: BaseException) -> Check:
        return cls(name, False, f"{type(exc).__name__}: {exc}"[:MAX_DETAIL])
