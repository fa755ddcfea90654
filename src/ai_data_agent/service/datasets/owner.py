"""Who owns what a request stores or reads, and the audit trail of datasets.

    tenant = dataset_owner(request)                 # in a route
    audit_dataset(request, "upload", "sales@3", "ok")

Every dataset belongs to a tenant, and every operation on datasets takes it
as a parameter. Until bearer tokens name tenants, every request acts for the
built-in ``admin`` tenant: this module is the one place that says so, for the
routes (`dataset_owner`) and for what runs without a request (a run's saved
outputs, ``/mcp``: `ADMIN_TENANT`).
"""

from __future__ import annotations

from fastapi import Request
from loguru import logger

__all__ = ["ADMIN_TENANT", "audit_dataset", "dataset_owner"]

ADMIN_TENANT = "admin"


def dataset_owner(request: Request) -> str:
    """The tenant the request acts for: the built-in admin tenant (every token is its)."""
    return ADMIN_TENANT


def audit_dataset(request: Request, action: str, target: str, outcome: str) -> None:
    """Record an upload, download or delete of a dataset: who, what, how it ended.

    The audit log's call site for datasets; it goes to the daemon's log.
    """
    client = request.client.host if request.client is not None else "-"
    logger.bind(audit=True).info(
        "audit: tenant={} action=dataset.{} target={} outcome={} client={}",
        dataset_owner(request),
        action,
        target,
        outcome,
        client,
    )
