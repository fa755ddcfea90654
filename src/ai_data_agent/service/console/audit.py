"""The audit log's page (admins): every action and egress connection, newest first, filtered.

    GET /console/audit?tenant=&action=&since=&before=     the page; /audit/rows: its table

``action`` is one action (``run.create``) or a family ending in a dot
(``egress.`` is the egress log); ``since`` is one of the runs page's ages;
``before`` pages on by the entries' sequence numbers.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ai_data_agent.service.console.pages import SINCE, Page, since_cutoff
from ai_data_agent.service.console.web import Viewer, console_of, current_admin, render
from ai_data_agent.service.records import AuditQuery

__all__ = ["PAGE", "router"]

PAGE = Page("audit", "Audit log", admin_only=True)
PAGE_SIZE = 100
FAMILIES = ("run.", "session.", "egress.", "console.", "token.", "tenant.", "mcp")

router = APIRouter()
AdminDep = Annotated[Viewer, Depends(current_admin)]


async def _entries(
    request: Request,
    viewer: AdminDep,
    tenant: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    since: str | None = None,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, object]:
    """One page of the log as the query asks (a dependency of the page and its rows)."""
    query = AuditQuery(
        tenant=tenant or None,
        action=action or None,
        since=since_cutoff(since),
        before=before,
        limit=PAGE_SIZE,
    )
    entries = await console_of(request).backend.audit(query)
    more = len(entries) == PAGE_SIZE and entries[-1].seq is not None
    return {
        "entries": entries,
        "next_before": entries[-1].seq if more else None,
        "tenant": tenant or "",
        "action": action or "",
        "since": since or "",
        "before": before or "",
        "since_choices": list(SINCE),
        "families": FAMILIES,
    }


Entries = Annotated[dict[str, object], Depends(_entries)]


@router.get("/audit")
async def audit_page(request: Request, viewer: AdminDep, entries: Entries) -> Response:
    return render(request, "audit.html", entries, viewer=viewer)


@router.get("/audit/rows")
async def audit_rows(request: Request, viewer: AdminDep, entries: Entries) -> Response:
    return render(request, "_audit_table.html", entries, viewer=viewer)
