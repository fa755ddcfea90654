"""An admin's calls: tenants, their tokens and the audit log (an agent's token: `Forbidden`).

    client.tenants.add("team-a", quotas=Quotas(concurrent_sessions=2))
    new = client.tokens.new("team-a", "ci", expires_in_s=30 * 86400)
    new.secret                                    # shown this once
    client.tokens.revoke("ci")
    for entry in client.audit.entries(tenant="team-a"): ...   # newest first, every page

Each is a view over the client's `Connection` (``client.tenants``,
``client.tokens``, ``client.audit``).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from ai_data_agent.client.connection import Connection
from ai_data_agent.client.wire import parse, segment
from ai_data_agent.tenant_models import (
    AuditEntry,
    AuditPage,
    NewToken,
    Quotas,
    Role,
    Tenant,
    TenantCreate,
    TenantUpdate,
    TokenCreate,
    TokenInfo,
)

__all__ = ["Audit", "Tenants", "Tokens"]

_TENANTS = TypeAdapter(list[Tenant])
_TOKENS = TypeAdapter(list[TokenInfo])


class Tenants:
    """``/v1/tenants``."""

    def __init__(self, connection: Connection) -> None:
        self._transport = connection.transport

    def list(self) -> builtins.list[Tenant]:
        return _TENANTS.validate_json(self._transport.request("GET", "/v1/tenants").content)

    def get(self, name: str) -> Tenant:
        return parse(self._transport.request("GET", f"/v1/tenants/{segment(name)}"), Tenant)

    def add(self, name: str, *, role: Role = Role.AGENT, quotas: Quotas | None = None) -> Tenant:
        body = TenantCreate(name=name, role=role, quotas=quotas or Quotas())
        response = self._transport.request("POST", "/v1/tenants", json=body.model_dump())
        return parse(response, Tenant)

    def update(
        self, name: str, *, role: Role | None = None, quotas: Quotas | None = None
    ) -> Tenant:
        """Change the role, and the quotas set in ``quotas`` (a field set to None there
        removes that limit; fields not set stay)."""
        body = TenantUpdate(role=role, quotas=quotas)
        response = self._transport.request(
            "PATCH",
            f"/v1/tenants/{segment(name)}",
            json=body.model_dump(mode="json", exclude_unset=True, exclude_none=False),
        )
        return parse(response, Tenant)

    def remove(self, name: str) -> None:
        self._transport.request("DELETE", f"/v1/tenants/{segment(name)}")


class Tokens:
    """``/v1/tokens``."""

    def __init__(self, connection: Connection) -> None:
        self._transport = connection.transport

    def list(self, tenant: str | None = None) -> builtins.list[TokenInfo]:
        params = {} if tenant is None else {"tenant": tenant}
        response = self._transport.request("GET", "/v1/tokens", params=params)
        return _TOKENS.validate_json(response.content)

    def new(self, tenant: str, name: str, *, expires_in_s: float | None = None) -> NewToken:
        """A new token of ``tenant``; its ``secret`` is in this answer only."""
        body = TokenCreate(tenant=tenant, name=name, expires_in_s=expires_in_s)
        response = self._transport.request("POST", "/v1/tokens", json=body.model_dump())
        return parse(response, NewToken)

    def revoke(self, name: str) -> TokenInfo:
        return parse(self._transport.request("DELETE", f"/v1/tokens/{segment(name)}"), TokenInfo)


class Audit:
    """``/v1/audit``."""

    def __init__(self, connection: Connection) -> None:
        self._transport = connection.transport

    def page(
        self,
        *,
        tenant: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> AuditPage:
        """One page, newest first; pass its ``next_before`` as ``before`` for the next."""
        params: dict[str, Any] = {"limit": limit}
        for key, value in (("tenant", tenant), ("action", action), ("before", before)):
            if value is not None:
                params[key] = value
        for key, when in (("since", since), ("until", until)):
            if when is not None:
                params[key] = when.isoformat()
        return parse(self._transport.request("GET", "/v1/audit", params=params), AuditPage)

    def entries(self, **filters: Any) -> Iterator[AuditEntry]:
        """Every matching entry, newest first, page after page (filters as `page`'s)."""
        before = filters.pop("before", None)
        while True:
            found = self.page(before=before, **filters)
            yield from found.items
            if found.next_before is None:
                return
            before = found.next_before
