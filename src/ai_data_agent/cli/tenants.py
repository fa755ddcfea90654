"""``ai-data-agent tenant ...``, ``token ...`` and ``audit``: who may use the daemon, and what
they did.

    ai-data-agent tenant add team-a --concurrent-sessions 2      # an agent tenant
    ai-data-agent tenant ls ; ai-data-agent tenant set team-a --concurrent-sessions none
    ai-data-agent token new team-a ci --expires-in 2592000       # prints the secret, once
    ai-data-agent token ls ; ai-data-agent token revoke ci       # refused from now on
    ai-data-agent audit --tenant team-a --since 2026-01-01T00:00:00Z

They act on this host's stores (the data dir, or the cluster's database), or
on a daemon with ``--server`` (an admin's token). A quota given as ``none``
is unlimited; ``tenant set`` changes only what it is given.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from ai_data_agent.cli.common import err_console, fail, out_console
from ai_data_agent.cli.exits import EXIT_USAGE
from ai_data_agent.cli.tenancy import admin_for
from ai_data_agent.errors import RequestRejected
from ai_data_agent.service.records import AuditQuery
from ai_data_agent.tenant_models import Quotas, Role, TenantCreate, TenantUpdate, TokenCreate

__all__ = ["audit", "tenant_app", "token_app"]

tenant_app = typer.Typer(help="Tenants: who owns runs and sessions, their role and quotas.")
token_app = typer.Typer(help="Tokens of tenants: made, listed, revoked (secrets shown once).")

Server = Annotated[
    str | None,
    typer.Option(metavar="URL", help="A daemon (default: AI_DATA_AGENT_SERVER; else this host)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Limit = Annotated[str | None, typer.Option(metavar="N|none")]
QUOTA_OPTIONS = (
    "concurrent_runs",
    "queued_runs",
    "concurrent_sessions",
    "cpu_seconds_per_hour",
    "storage_bytes",
)


def _quotas(values: dict[str, str | None], egress: list[str] | None) -> Quotas:
    """The quotas given (``none``: unlimited); only those are set on the model."""
    given: dict[str, object] = {}
    for name, text in values.items():
        if text is None:
            continue
        if text.lower() in ("none", "unlimited"):
            given[name] = None
            continue
        try:
            given[name] = float(text) if name == "cpu_seconds_per_hour" else int(text)
        except ValueError as exc:
            flag = "--" + name.replace("_", "-")
            raise fail(f"{flag}: a number or none, not {text!r}", EXIT_USAGE) from exc
    if egress is not None:
        given["egress_allow"] = [] if egress == ["none"] else egress
    try:
        return Quotas.model_validate(given)
    except ValueError as exc:
        raise fail(f"invalid quotas: {exc}", EXIT_USAGE) from exc


def _limits(
    concurrent_runs: str | None,
    queued_runs: str | None,
    concurrent_sessions: str | None,
    cpu_seconds_per_hour: str | None,
    storage_bytes: str | None,
) -> dict[str, str | None]:
    values = (concurrent_runs, queued_runs, concurrent_sessions, cpu_seconds_per_hour)
    return dict(zip(QUOTA_OPTIONS, (*values, storage_bytes), strict=True))


@tenant_app.command("add")
def tenant_add(
    name: str,
    role: Annotated[Role, typer.Option(help="agent: its own things; admin: everything.")] = (
        Role.AGENT
    ),
    concurrent_runs: Limit = None,
    queued_runs: Limit = None,
    concurrent_sessions: Limit = None,
    cpu_seconds_per_hour: Limit = None,
    storage_bytes: Limit = None,
    egress_allow: Annotated[list[str] | None, typer.Option(help="A host (repeatable).")] = None,
    server: Server = None,
    as_json: AsJson = False,
) -> None:
    """Add a tenant."""
    limits = _limits(
        concurrent_runs, queued_runs, concurrent_sessions, cpu_seconds_per_hour, storage_bytes
    )
    try:
        create = TenantCreate(name=name, role=role, quotas=_quotas(limits, egress_allow))
    except ValidationError as exc:  # what is wrong, by field, as the API says it
        raise fail(RequestRejected.from_errors(exc.errors()).reason, EXIT_USAGE) from exc
    with admin_for(server) as admin:
        tenant = admin.add_tenant(create)
    typer.echo(tenant.model_dump_json(indent=2) if as_json else tenant.name)


@tenant_app.command("set")
def tenant_set(
    name: str,
    role: Annotated[Role | None, typer.Option(help="A new role.")] = None,
    concurrent_runs: Limit = None,
    queued_runs: Limit = None,
    concurrent_sessions: Limit = None,
    cpu_seconds_per_hour: Limit = None,
    storage_bytes: Limit = None,
    egress_allow: Annotated[
        list[str] | None, typer.Option(help="A host (repeatable); none: no list.")
    ] = None,
    server: Server = None,
    as_json: AsJson = False,
) -> None:
    """Change a tenant's role or quotas (those given; ``none`` is unlimited)."""
    limits = _limits(
        concurrent_runs, queued_runs, concurrent_sessions, cpu_seconds_per_hour, storage_bytes
    )
    quotas = _quotas(limits, egress_allow)
    update = TenantUpdate(role=role, quotas=quotas if quotas.model_fields_set else None)
    with admin_for(server) as admin:
        tenant = admin.update_tenant(name, update)
    typer.echo(tenant.model_dump_json(indent=2) if as_json else _quota_text(tenant.quotas))


def _quota_text(quotas: Quotas) -> str:
    set_ = {k: v for k, v in quotas.model_dump().items() if v is not None}
    return ", ".join(f"{k}={v}" for k, v in set_.items()) or "unlimited"


@tenant_app.command("ls")
def tenant_ls(server: Server = None, as_json: AsJson = False) -> None:
    """Every tenant, with its role and quotas."""
    with admin_for(server) as admin:
        tenants = admin.tenants()
    if as_json:
        for tenant in tenants:
            typer.echo(tenant.model_dump_json())
        return
    table = Table("name", "role", "quotas", "created")
    for t in tenants:
        table.add_row(t.name, t.role.value, _quota_text(t.quotas), f"{t.created_at:%Y-%m-%d %H:%M}")
    out_console.print(table)


@tenant_app.command("rm")
def tenant_rm(name: str, server: Server = None) -> None:
    """Remove a tenant and its tokens (its runs and sessions stay, under its name)."""
    with admin_for(server) as admin:
        admin.remove_tenant(name)


@token_app.command("new")
def token_new(
    tenant: str,
    name: str,
    expires_in: Annotated[
        float | None, typer.Option(metavar="SECONDS", help="Refused after this long.")
    ] = None,
    server: Server = None,
    as_json: AsJson = False,
) -> None:
    """Make a token of TENANT; print its secret (shown this once, never stored)."""
    try:
        create = TokenCreate(tenant=tenant, name=name, expires_in_s=expires_in)
    except ValueError as exc:
        raise fail(str(exc), EXIT_USAGE) from exc
    with admin_for(server) as admin:
        new = admin.new_token(create)
    if as_json:
        typer.echo(new.model_dump_json(indent=2))
        return
    err_console.print("the secret is shown this once; keep it now:", highlight=False)
    typer.echo(new.secret)


@token_app.command("ls")
def token_ls(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's.")] = None,
    server: Server = None,
    as_json: AsJson = False,
) -> None:
    """Tokens: name, tenant, created, last used, expires, revoked (never a secret)."""
    with admin_for(server) as admin:
        tokens = admin.tokens(tenant)
    if as_json:
        for token in tokens:
            typer.echo(token.model_dump_json())
        return
    table = Table("name", "tenant", "created", "last used", "expires", "revoked")
    for t in tokens:
        table.add_row(
            t.name,
            t.tenant,
            _time(t.created_at),
            _time(t.last_used_at),
            _time(t.expires_at),
            _time(t.revoked_at),
        )
    out_console.print(table)


def _time(when: datetime | None) -> str:
    return "-" if when is None else f"{when:%Y-%m-%d %H:%M}"


@token_app.command("revoke")
def token_revoke(name: str, server: Server = None) -> None:
    """Revoke a token: refused from its next request on, with no restart."""
    with admin_for(server) as admin:
        admin.revoke(name)


def audit(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's.")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action (run.create, ...).")] = None,
    since: Annotated[datetime | None, typer.Option(help="At or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, typer.Option(help="Before (ISO 8601).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    server: Server = None,
    as_json: AsJson = False,
) -> None:
    """The audit log, newest first: who did what, to which object, and the answer."""
    query = AuditQuery.of(tenant=tenant, action=action, since=since, until=until, limit=limit)
    with admin_for(server) as admin:
        entries = admin.audit(query)
    if as_json:
        for entry in entries:
            typer.echo(entry.model_dump_json())
        return
    table = Table("at", "tenant", "token", "action", "object", "status", "client")
    for e in entries:
        status = f"{e.status} {e.code}" if e.code else str(e.status)
        table.add_row(
            f"{e.at:%Y-%m-%d %H:%M:%S}",
            e.tenant or "-",
            e.token or "-",
            e.action,
            e.object_id or "-",
            status,
            e.client or "-",
        )
    out_console.print(table)
