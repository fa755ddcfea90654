"""Managing tenants and tokens: the same operations for ``/v1/tenants``, ``/v1/tokens`` and
the command line on the data directory (or the cluster's database).

    admin = TenantAdmin(store)                  # a records.TenantRecords, opened
    admin.add_tenant(TenantCreate(name="team-a"))
    new = admin.new_token(TokenCreate(tenant="team-a", name="ci"))
    new.secret                                  # shown once; only its digest is stored
    admin.revoke("ci")                          # refused at the next request, on every node

Every method blocks (store calls). Unknown names are `NotFound`, taken names
and changes to the built-in admin tenant's role `RequestRejected`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from ai_data_agent.errors import NotFound, RequestRejected
from ai_data_agent.service.auth import new_secret
from ai_data_agent.service.records import TenantRecords
from ai_data_agent.tenant_models import (
    ADMIN_TENANT,
    NewToken,
    Role,
    Tenant,
    TenantCreate,
    TenantUpdate,
    TokenCreate,
    TokenInfo,
)

__all__ = ["TenantAdmin"]


class TenantAdmin:
    """See the module docstring."""

    def __init__(self, store: TenantRecords) -> None:
        self.store = store

    def add_tenant(self, create: TenantCreate) -> Tenant:
        tenant = Tenant(name=create.name, role=create.role, quotas=create.quotas, created_at=_now())
        self.store.add_tenant(tenant)
        return tenant

    def tenants(self) -> list[Tenant]:
        return self.store.tenants()

    def tenant(self, name: str) -> Tenant:
        found = self.store.get_tenant(name)
        if found is None:
            raise NotFound(f"no tenant named {name[:64]!r}")
        return found

    def update_tenant(self, name: str, update: TenantUpdate) -> Tenant:
        tenant = update.apply(self.tenant(name))
        if name == ADMIN_TENANT and tenant.role is not Role.ADMIN:
            raise RequestRejected("role", "the built-in admin tenant stays an admin")
        if not self.store.update_tenant(tenant):
            raise NotFound(f"no tenant named {name[:64]!r}")
        return tenant

    def remove_tenant(self, name: str) -> None:
        """Remove a tenant and its tokens; its runs and sessions stay, under its name."""
        if not self.store.remove_tenant(name):
            raise NotFound(f"no tenant named {name[:64]!r}")

    def new_token(self, create: TokenCreate) -> NewToken:
        secret, digest = new_secret()
        created = _now()
        expires = None
        if create.expires_in_s is not None:
            expires = created + timedelta(seconds=create.expires_in_s)
        info = TokenInfo(
            name=create.name, tenant=create.tenant, created_at=created, expires_at=expires
        )
        self.store.add_token(info, digest)
        return NewToken(**info.model_dump(), secret=secret)

    def tokens(self, tenant: str | None = None) -> list[TokenInfo]:
        return self.store.tokens(tenant=tenant)

    def revoke(self, name: str) -> TokenInfo:
        info = self.store.revoke_token(name, now=time.time())
        if info is None:
            raise NotFound(f"no token named {name[:64]!r}")
        return info


def _now() -> datetime:
    return datetime.now(UTC)
