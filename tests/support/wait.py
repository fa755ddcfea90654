"""Polling that fails with diagnostics, instead of sleeps that hope.

session = poll(lambda: pool.take(spec), timeout_s=5, what="a pooled sandbox")
poll(lambda: not leftovers(), timeout_s=10, what="no leftovers", diagnostics=leftovers)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["poll"]

T = TypeVar("T")


def poll(
    check: Callable[[], T],
    *,
    timeout_s: float,
    what: str,
    diagnostics: Callable[[], Any] = lambda: "",
    interval_s: float = 0.02,
) -> T:
    """Call ``check`` until it returns something truthy, and return that.

    Raises:
        AssertionError: still falsy after ``timeout_s``; the message names ``what``
            and ends with ``diagnostics()``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s:g} s waiting for {what}\n{diagnostics()}"
            )
        time.sleep(interval_s)
