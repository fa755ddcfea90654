"""The egress connection log: one `EgressEvent` per connection, allowed or refused, to every sink.

    log = EgressLog()                          # writes each event to the process log
    log.add_sink(metrics.egress.observe)       # and anything else: metrics, an audit log
    log.record(EgressEvent(owner="run-1", host="example.com", ...))

A sink is any callable that takes an event. Sinks are called on the proxy's
event-loop thread, so they must be quick and must not block (hand heavy work
to a queue); one that raises is logged and the others still get the event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from loguru import logger

__all__ = ["EgressEvent", "EgressLog", "EgressSink", "Outcome"]

Outcome = Literal[
    "allowed",  # connected and ended normally
    "denied",  # refused before connecting (403)
    "unreachable",  # allowed, but no checked address answered (502)
    "sni_mismatch",  # closed: the TLS ClientHello named another host
    "capped",  # closed: a byte cap of the sandbox was reached
    "idle",  # closed: no data either way for the idle timeout
    "closed",  # closed because the run or session ended
    "malformed",  # not a request the proxy understands (400)
]


@dataclass(frozen=True)
class EgressEvent:
    """One connection as the proxy saw it, when it ended (refusals at once)."""

    owner: str  # the run's or session's id
    host: str  # the name (or address) the sandbox asked for
    port: int
    outcome: Outcome
    address: str | None = None  # the checked address connected to, if any
    bytes_out: int = 0  # from the sandbox
    bytes_in: int = 0  # to the sandbox
    reason: str | None = None  # for refusals and closes
    via: Literal["proxy", "publish"] = "proxy"
    tenant: str | None = None
    time: float = field(default_factory=time.time)


EgressSink = Callable[[EgressEvent], None]


class EgressLog:
    """Sends each event to the process log and to every added sink."""

    def __init__(self) -> None:
        self._sinks: list[EgressSink] = []
        self._lock = threading.Lock()

    def add_sink(self, sink: EgressSink) -> None:
        with self._lock:
            self._sinks.append(sink)

    def record(self, event: EgressEvent) -> None:
        level = "INFO" if event.outcome == "allowed" else "WARNING"
        logger.bind(run_id=event.owner).log(
            level,
            "egress {} {}:{} address={} out={} in={} via={}{}",
            event.outcome,
            event.host,
            event.port,
            event.address or "-",
            event.bytes_out,
            event.bytes_in,
            event.via,
            f": {event.reason}" if event.reason else "",
        )
        with self._lock:
            sinks = list(self._sinks)
        for sink in sinks:
            try:
                sink(event)
            except Exception as exc:
                logger.warning("egress log sink {!r} failed: {}", sink, exc)
