"""Egress connections reach the audit log with their owner's tenant, off the proxy's loop."""

from __future__ import annotations

from pathlib import Path

from ai_data_agent.egress.log import EgressEvent
from ai_data_agent.service.audit import AuditLog
from ai_data_agent.service.audit_store import AuditStore
from ai_data_agent.service.egress_audit import EgressAudit
from ai_data_agent.service.records import AuditQuery


def test_each_connection_is_an_entry_of_its_owners_tenant(tmp_path: Path) -> None:
    log = AuditLog(AuditStore(tmp_path / "audit.db"), retention_s=3600)
    log.start()
    owners = {"run-a": "team-a"}

    def owner_of(owner: str) -> str | None:
        if owner == "run-broken":
            raise OSError("the store is gone")
        return owners.get(owner)

    sink = EgressAudit(log, owner_of)
    try:
        sink.observe(EgressEvent("run-a", "files.test", 443, "allowed", bytes_in=10))
        sink.observe(EgressEvent("run-a", "evil.test", 443, "denied", reason="not allowed"))
        sink.observe(EgressEvent("s-b", "db.test", 5432, "unreachable", tenant="team-b"))
        sink.observe(EgressEvent("run-broken", "x.test", 80, "sni_mismatch"))
        sink.close()
        sink.observe(EgressEvent("run-a", "late.test", 443, "allowed"))  # logged, not raised
    finally:
        log.stop()
    log.start()
    try:
        entries = log.query(AuditQuery(limit=10))
    finally:
        log.stop()
    seen = sorted((e.action, e.tenant, e.object_id, e.status, e.code) for e in entries)
    assert seen == [
        ("egress.allowed", "team-a", "run-a files.test:443", 200, None),
        ("egress.denied", "team-a", "run-a evil.test:443", 403, "denied"),
        ("egress.sni_mismatch", None, "run-broken x.test:80", 403, "sni_mismatch"),
        ("egress.unreachable", "team-b", "s-b db.test:5432", 502, "unreachable"),
    ]
