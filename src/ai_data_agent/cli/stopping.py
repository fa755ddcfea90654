"""Stopping a command on SIGINT, SIGTERM or SIGHUP as Ctrl-C stops it: by an exception,
so that every ``finally`` runs (the sandbox is removed) before the process exits.

    with stoppable():
        result = executor.run(request)          # SIGTERM here: KeyboardInterrupt, cleanup runs
    ...
    except KeyboardInterrupt as exc:
        sys.exit(stop_code(exc))                # 130 for SIGINT, 143 SIGTERM, 129 SIGHUP

Without this, SIGTERM (what ``timeout`` and service managers send) and SIGHUP (a
closed terminal) end the process at once and leave its sandbox behind. Only the
first signal raises: later ones are ignored until the block is left, so that a
second ``kill`` cannot cut the cleanup short.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

__all__ = ["STOP_SIGNALS", "Stopped", "noting", "stop_code", "stoppable"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """A stop signal, raised where the program was (a `KeyboardInterrupt`, so that code
    that lets Ctrl-C through lets this through too).

    Attributes:
        signum: the signal's number.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def stoppable(signals: Sequence[signal.Signals] = STOP_SIGNALS) -> Iterator[None]:
    """Within the block, the first of ``signals`` raises `Stopped`; later ones are
    ignored. The previous handlers are back when the block is left. Main thread only.

    The repl leaves SIGINT out: there Ctrl-C interrupts a cell, and only SIGTERM and
    SIGHUP end the prompt (closing its session)."""
    stopping: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        if not stopping:
            stopping.append(signum)
            raise Stopped(signum)

    previous = {number: signal.signal(number, stop) for number in signals}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextmanager
def noting(signals: Sequence[signal.Signals] = STOP_SIGNALS) -> Iterator[list[int]]:
    """Within the block, ``signals`` raise nothing: each is noted, in order, in the list
    this yields, for a loop that looks at it. The previous handlers are back when the
    block is left. Main thread only.

    Nothing can land in the middle of an exchange this way (a raising handler can
    stop any line, lock and socket calls included); a loop that waits with a timeout
    sees each signal within that timeout."""
    noted: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        noted.append(signum)

    previous = {number: signal.signal(number, note) for number in signals}
    try:
        yield noted
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def stop_code(exc: KeyboardInterrupt) -> int:
    """The exit status a shell gives a process the signal killed: 128 + its number."""
    return 128 + (exc.signum if isinstance(exc, Stopped) else signal.SIGINT)
