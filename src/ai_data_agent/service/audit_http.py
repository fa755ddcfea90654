"""Every ``/v1`` and ``/mcp`` request, and every form the console posts, in the audit log,
before its answer leaves.

    app.add_middleware(AuditMiddleware, log=node.audit)

An entry names the time, the principal's tenant and token name (none when no
token was accepted), the action (`ACTIONS`: the route's, such as ``run.create``
or ``session.upload``), the object (the id in the path, or what the route
created, `deps.note_object`), the status answered and the error code of a
refusal (read from the error body), and the client's address. Nothing of the
request's body, its code, files or token. The answer's first bytes wait for
the entry's commit (`AuditLog.record`), so an answered request always has its
entry; if the log cannot be written, the answer is ``503 not_ready`` instead.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from loguru import logger
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ai_data_agent.errors import NotReady
from ai_data_agent.service.audit import AuditLog
from ai_data_agent.service.http_errors import error_response
from ai_data_agent.tenant_models import AuditEntry, Principal

__all__ = ["ACTIONS", "CONSOLE_ACTIONS", "AuditMiddleware", "is_audited"]

# The action of each route, by its endpoint's name (every /v1 route has one here).
ACTIONS = {
    "get_info": "info",
    "submit_run": "run.create",
    "list_runs": "run.list",
    "get_run": "run.get",
    "cancel_run": "run.cancel",
    "list_artifacts": "run.artifacts",
    "get_artifact": "run.download",
    "run_events": "run.events",
    "create_session": "session.create",
    "list_sessions": "session.list",
    "get_session": "session.get",
    "close_session": "session.close",
    "run_cell": "session.cell",
    "get_cell": "session.cell.get",
    "cell_events": "session.cell.events",
    "interrupt_session": "session.interrupt",
    "restart_session": "session.restart",
    "add_packages": "session.packages",
    "list_session_files": "session.files",
    "put_session_file": "session.upload",
    "get_session_file": "session.download",
    "promote_session_files": "session.promote",
    "list_datasets": "dataset.list",
    "upload_version": "dataset.put",
    "get_dataset": "dataset.get",
    "get_version": "dataset.version",
    "get_file": "dataset.download",
    "describe_version": "dataset.describe",
    "delete_dataset": "dataset.rm",
    "delete_version": "dataset.rm",
    "checkpoint_session": "session.checkpoint",
    "list_checkpoints": "session.checkpoints",
    "pause_session": "session.pause",
    "resume_session": "session.resume",
    "fork_session": "session.fork",
    "list_tenants": "tenant.list",
    "add_tenant": "tenant.add",
    "get_tenant": "tenant.get",
    "update_tenant": "tenant.set",
    "remove_tenant": "tenant.rm",
    "list_tokens": "token.list",
    "new_token": "token.new",
    "revoke_token": "token.revoke",
    "read_audit": "audit.read",
}
# The console's forms (its pages are reads, refreshed every few seconds: not logged).
CONSOLE_PREFIX = "/console/"
CONSOLE_ACTIONS = {
    "login": "console.login",
    "logout": "console.logout",
    "cancel_run": "run.cancel",
    "session_action": "session.{action}",
    "console_new_token": "token.new",
    "console_revoke_token": "token.revoke",
}
MAX_FIELD = 300  # an object id or path kept in an entry
_OBJECT_PARAMS = ("run_id", "session_id", "name")


def is_audited(scope: Scope) -> bool:
    path: str = scope["path"]
    if path.startswith("/v1/") or path == "/v1" or path == "/mcp":
        return True
    return path.startswith(CONSOLE_PREFIX) and scope["method"] == "POST"


def _action(scope: Scope) -> str:
    route = scope.get("route")
    name = getattr(route, "name", None)
    if scope["path"] == "/mcp":
        return "mcp"
    if scope["path"].startswith(CONSOLE_PREFIX):
        action = CONSOLE_ACTIONS.get(name or "", "console.unknown")
        return action.format(**(scope.get("path_params") or {}))[:64]
    if name in ACTIONS:
        return ACTIONS[name]
    return f"unknown {scope['method']}"  # no route: an unknown path, answered 404 or 405


def _object(scope: Scope) -> str | None:
    state = scope.get("state") or {}
    if "audit_object" in state:
        return str(state["audit_object"])[:MAX_FIELD]
    params: dict[str, Any] = scope.get("path_params") or {}
    found = next((str(params[key]) for key in _OBJECT_PARAMS if key in params), None)
    if found is not None and "count" in params:
        found = f"{found}/cells/{params['count']}"
    if found is not None and "version" in params:  # a dataset's: sales@3
        found = f"{found}@{params['version']}"
    if found is not None and "path" in params:
        found = f"{found}/{params['path']}"
    if found is None and not scope.get("route") and scope["path"] != "/mcp":
        found = scope["path"]
    return None if found is None else found[:MAX_FIELD]


def _code(body: bytes) -> str | None:
    """The error code of our error body; None for anything else."""
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return str(code)[:64] if isinstance(code, str) else None


def entry_of(scope: Scope, status: int, code: str | None) -> AuditEntry:
    state = scope.get("state") or {}
    principal, refused = state.get("principal"), state.get("refused")
    tenant = token = None
    if isinstance(principal, Principal):
        tenant, token = principal.tenant, principal.token
    elif isinstance(refused, tuple):  # a revoked or expired token: say whose
        tenant, token = refused
    client = scope.get("client")
    return AuditEntry(
        at=datetime.now(UTC),
        tenant=tenant,
        token=token,
        action=_action(scope),
        object_id=_object(scope),
        status=status,
        code=code,
        client=client[0] if client else None,
    )


class AuditMiddleware:
    """ASGI: the audit entry of each audited request, committed before its answer starts."""

    def __init__(self, app: ASGIApp, log: AuditLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_audited(scope):
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        held: Message | None = None  # an error's start, until its body names the code
        state = {"started": False, "refused": False}

        async def forward(start: Message, code: str | None) -> bool:
            state["started"] = True
            if await self._commit(scope, start["status"], code):
                await send(start)
                return True
            state["refused"] = True
            await error_response(NotReady("the audit log cannot be written"))(scope, receive, send)
            return False

        async def audited(message: Message) -> None:
            nonlocal held
            if state["refused"]:
                return
            if message["type"] == "http.response.start":
                if message["status"] >= 400:
                    held = message
                else:
                    await forward(message, None)
                return
            if held is not None:
                start, held = held, None
                if not await forward(start, _code(message.get("body", b""))):
                    return
            await send(message)

        try:
            await self.app(scope, receive, audited)
        except Exception:
            if not state["started"]:  # answered 500 by the server's outermost layer
                await self._commit(scope, 500, "internal")
            raise

    async def _commit(self, scope: Scope, status: int, code: str | None) -> bool:
        try:
            await self.log.record(entry_of(scope, status, code))
        except Exception as exc:
            logger.error("audit entry not written; answering 503: {}", exc)
            return False
        return True
