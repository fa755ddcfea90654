"""Who is asking, and what the daemon keeps about them: tenants, their tokens and quotas, the
`Principal` of a request, and the audit log's entries (the server, the client and the CLI).

    principal = Principal(tenant="team-a", role=Role.AGENT, token="ci")
    principal.sees("team-a")            # True: its own
    principal.sees("team-b")            # False: the daemon answers 404, as for nothing
    Principal.builtin_admin().sees("team-b")   # True: the admin sees every tenant

A tenant has a name, a role (``admin`` or ``agent``) and quotas (each None:
unlimited). Every run and session belongs to one tenant (`ADMIN_TENANT` for
what was made before tenants existed, or with the operator's configured
tokens). A token is shown as `TokenInfo`, never with its secret, except once
in the `NewToken` answer that made it.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ADMIN_TENANT",
    "TOKEN_PREFIX",
    "AuditEntry",
    "AuditPage",
    "NewToken",
    "Principal",
    "Quotas",
    "Role",
    "Tenant",
    "TenantCreate",
    "TenantUpdate",
    "TokenCreate",
    "TokenInfo",
    "check_name",
]

ADMIN_TENANT = "admin"  # the built-in tenant: configured tokens, and records older than tenants
TOKEN_PREFIX = "ada_"  # noqa: S105 (a prefix, not a secret): what a secret starts with: recognisable in a leak scan
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def check_name(value: str, what: str = "name") -> str:
    """A tenant's or token's name: lower-case letters, digits, ``.``, ``_``, ``-``; 1-63 long.

    Raises:
        ValueError: anything else.
    """
    if not NAME_PATTERN.fullmatch(value):
        raise ValueError(
            f"{what} must be 1-63 of a-z, 0-9, '.', '_', '-' and start with a letter or digit"
        )
    return value


class Role(StrEnum):
    ADMIN = "admin"  # sees and acts on every tenant's things; manages tenants, tokens, audit
    AGENT = "agent"  # sees and acts on its own things only


class Quotas(BaseModel):
    """A tenant's limits; None is unlimited. Stored here, enforced at admission: the runs'
    and sessions' counts (``service/quotas.py``), ``cpu_seconds_per_hour`` over a sliding
    hour of the CPU time charged as runs and cells end (``service/cpu_usage.py``),
    ``storage_bytes`` as datasets are written, ``egress_allow`` on a request's network."""

    model_config = ConfigDict(extra="forbid")

    concurrent_runs: int | None = Field(
        None, ge=0, description="Runs running at once; more wait in the queue."
    )
    queued_runs: int | None = Field(
        None, ge=0, description="Runs held beyond concurrent_runs; more are refused (429)."
    )
    concurrent_sessions: int | None = Field(None, ge=0, description="Live sessions at once.")
    cpu_seconds_per_hour: float | None = Field(
        None, ge=0, description="CPU time of runs and cells in any hour."
    )
    storage_bytes: int | None = Field(None, ge=0, description="Datasets and checkpoints kept.")
    egress_allow: list[str] | None = Field(
        None, description="Hosts its sandboxes may reach (within the operator's list)."
    )


class Tenant(BaseModel):
    name: str
    role: Role
    quotas: Quotas = Field(default_factory=Quotas)
    created_at: datetime
    builtin: bool = Field(False, description="The built-in admin tenant: cannot be removed.")


class TenantCreate(BaseModel):
    """``POST /v1/tenants``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    role: Role = Role.AGENT
    quotas: Quotas = Field(default_factory=Quotas)

    _name = field_validator("name")(check_name)


class TenantUpdate(BaseModel):
    """``PATCH /v1/tenants/{name}``: the role, and the quotas given (each field replaces
    the stored one; a field set to null removes that limit)."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    quotas: Quotas | None = None

    def apply(self, tenant: Tenant) -> Tenant:
        """``tenant`` with this update's fields."""
        quotas = tenant.quotas
        if self.quotas is not None:
            quotas = quotas.model_copy(update=self.quotas.model_dump(exclude_unset=True))
        return tenant.model_copy(update={"role": self.role or tenant.role, "quotas": quotas})


class TokenInfo(BaseModel):
    """A token as listed: never its secret."""

    name: str
    tenant: str
    created_at: datetime
    last_used_at: datetime | None = Field(
        None, description="Within a minute: use is written at most once a minute."
    )
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


class TokenCreate(BaseModel):
    """``POST /v1/tokens``."""

    model_config = ConfigDict(extra="forbid")

    tenant: str
    name: str
    expires_in_s: float | None = Field(None, gt=0, description="Refused after this long.")

    _name = field_validator("name")(check_name)


class NewToken(TokenInfo):
    """The answer that made a token: the only place its secret is ever shown."""

    secret: str


class Principal(BaseModel):
    """Who a request comes from, resolved once from its bearer token."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    role: Role
    token: str | None = Field(None, description="The token's name; None with auth off.")

    @classmethod
    def builtin_admin(cls, token: str | None = None) -> Principal:
        """The built-in admin: configured tokens, auth off, the local command line."""
        return cls(tenant=ADMIN_TENANT, role=Role.ADMIN, token=token)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def sees(self, owner: str) -> bool:
        """Whether what ``owner`` made is visible to (and may be acted on by) this principal."""
        return self.is_admin or owner == self.tenant

    def scope(self, tenant: str | None) -> str | None:
        """The tenant a listing is limited to: an agent's own, whatever it asks; an admin's
        ``tenant`` (None: all)."""
        return tenant if self.is_admin else self.tenant


class AuditEntry(BaseModel):
    """One authenticated action, allowed or refused: who, what, on which object, the answer.
    Never code, data or secrets."""

    seq: int | None = Field(None, description="Its place in the log (None until written).")
    at: datetime
    tenant: str | None = Field(None, description="None when no token was accepted.")
    token: str | None = None
    action: str = Field(description="For example run.create, session.cell, token.revoke.")
    object_id: str | None = None
    status: int = Field(description="The HTTP status answered (or what stands for it).")
    code: str | None = Field(None, description="The error code, when refused.")
    client: str | None = Field(None, description="The client's address.")


class AuditPage(BaseModel):
    """``GET /v1/audit``: entries newest first; ``next_before`` pages on (None: no more)."""

    items: list[AuditEntry]
    next_before: int | None = None
