"""Egress connections in the audit log, each with the tenant of the run or session that made it.

    sink = EgressAudit(node.audit, owner_of)      # owner_of(run or session id) -> tenant or None
    executor.egress.log.add_sink(sink.observe)
    sink.close()                                 # before the audit log stops

The proxy calls `observe` on its event loop, which must not wait for a store:
the entry is made and queued on one thread of its own, where the owner's
tenant is read from the run store or the session registry. An entry names
``egress.<outcome>`` (``egress.allowed``, ``egress.denied``...), the owner and
the host and port asked for as its object, a status (200 for a connection
made, 403 refused, 502 unreachable, 400 malformed) and, for anything but a
plain connection, the outcome as its code. The process log keeps the bytes
and the address connected to (`egress.log`).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from loguru import logger

from ai_data_agent.egress.log import EgressEvent
from ai_data_agent.service.audit import AuditLog
from ai_data_agent.tenant_models import AuditEntry

__all__ = ["EgressAudit", "entry_of"]

STATUS = {"denied": 403, "sni_mismatch": 403, "unreachable": 502, "malformed": 400}
MAX_OBJECT = 300


def entry_of(event: EgressEvent, tenant: str | None) -> AuditEntry:
    return AuditEntry(
        at=datetime.fromtimestamp(event.time, UTC),
        tenant=tenant,
        action=f"egress.{event.outcome}",
        object_id=f"{event.owner} {event.host}:{event.port}"[:MAX_OBJECT],
        status=STATUS.get(event.outcome, 200),
        code=None if event.outcome == "allowed" else event.outcome,
    )


class EgressAudit:
    """An `EgressLog` sink that writes each connection to the audit log."""

    def __init__(self, audit: AuditLog, owner_of: Callable[[str], str | None]) -> None:
        self._audit = audit
        self._owner_of = owner_of
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="egress-audit")

    def observe(self, event: EgressEvent) -> None:
        try:
            self._thread.submit(self._write, event)
        except RuntimeError:  # closed: the node is stopping
            logger.warning("egress event of {} not audited: the node is stopping", event.owner)

    def _write(self, event: EgressEvent) -> None:
        try:
            tenant = event.tenant or self._owner_of(event.owner)
        except Exception as exc:  # the entry is still written, without its tenant
            logger.warning("cannot find the tenant of {}: {}", event.owner, exc)
            tenant = None
        self._audit.add(entry_of(event, tenant))

    def close(self) -> None:
        """Queue what was observed into the audit log; idempotent."""
        self._thread.shutdown(wait=True)
