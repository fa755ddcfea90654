"""What a client may do with runs, the same through both doors: the HTTP routes and ``/mcp``.

    handle = await admit(node, principal, request)   # limits resolved once; QueueFull, NotReady
    result = await final_result(node, handle)        # waits without a thread; NoWorker
    record = await record_or_404(node, principal, run_id)
    items, total = await page(node, principal, status=None, tenant=None, limit=50, offset=0)
    artifact, body = await listed_artifact(node, principal, run_id, "out.csv")
    handle, record = await events_of(node, principal, run_id)   # live, or the stored record
    await cancel(node, principal, run_id)            # waits (bounded) for the terminal record

Each takes the `node.ServiceNode` (one node or a cluster's API node) and the
request's `Principal`, and runs its blocking calls in worker threads, so the
event loop never waits on a store or an engine. A run belongs to the tenant
that submitted it; another tenant's run is `NotFound`, exactly as one that
never existed (`ownership`). Errors are the tree's (`NotFound` is a 404 over
HTTP and a tool error over MCP).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial

import anyio

from ai_data_agent.api_models import ACTIVE_RUN_STATUSES, RunRecord
from ai_data_agent.errors import NotFound, ServerError
from ai_data_agent.limits import check_tenant_network, resolve_run
from ai_data_agent.models import Artifact, RunRequest, RunResult
from ai_data_agent.service.handles import RunHandle, wait_done
from ai_data_agent.service.node import CANCEL_WAIT_S, ArtifactBody, ServiceNode
from ai_data_agent.service.ownership import owned
from ai_data_agent.service.quotas import quotas_of
from ai_data_agent.service.records import result_of
from ai_data_agent.tenant_models import Principal

__all__ = [
    "EXECUTION_CHECK_S",
    "admit",
    "cancel",
    "events_of",
    "executed_events",
    "final_result",
    "listed_artifact",
    "page",
    "record_or_404",
    "stored_result",
    "wait_executed",
]

# How often a waiter asks whether anything can execute its run (a cluster's live workers).
EXECUTION_CHECK_S = 2.0


async def admit(node: ServiceNode, principal: Principal, request: RunRequest) -> RunHandle:
    """Resolve ``request``'s limits, pin its datasets (the tenant's) and submit it as the
    principal's tenant's run.

    Raises:
        RequestRejected: it breaks a server limit, or asks for a host off the tenant's own
            egress allow-list (nothing recorded).
        NotFound: it names a dataset the tenant does not have.
        QuotaExceeded: the tenant used its ``cpu_seconds_per_hour`` (nothing recorded).
        QueueFull, NotReady: as `RunDispatcher.submit`.
    """
    limits = resolve_run(request, node.settings)
    quotas = await anyio.to_thread.run_sync(quotas_of, node.tenants, principal.tenant)
    if request.network:
        check_tenant_network(request.network, quotas.egress_allow, principal.tenant)
    await anyio.to_thread.run_sync(partial(node.cpu.admit, principal.tenant, quotas, run=True))
    if request.datasets:  # the record names the versions the run will read
        pinned = await anyio.to_thread.run_sync(
            node.datasets.pin, principal.tenant, request.datasets
        )
        request = request.model_copy(update={"datasets": pinned})
    return await anyio.to_thread.run_sync(
        partial(node.dispatcher.submit, request, limits, tenant=principal.tenant)
    )


def stored_result(record: RunRecord | None, run_id: str) -> RunResult:
    """A finished run's result from its record, or one saying why there is none.

    Raises:
        ServerError: there is no terminal record.
    """
    if record is None or record.status in ACTIVE_RUN_STATUSES:
        raise ServerError(f"run {run_id} has no terminal record", run_id=run_id)
    return result_of(record)


async def wait_executed(node: ServiceNode, handle: RunHandle) -> None:
    """Wait until the run has ended, asking at once and every `EXECUTION_CHECK_S` whether
    anything can execute it.

    Raises:
        NoWorker: it is queued on a cluster with no live worker (it stays queued).
    """
    while not handle.done:
        await anyio.to_thread.run_sync(node.dispatcher.check_execution, handle.id)
        with anyio.move_on_after(EXECUTION_CHECK_S):
            await wait_done(handle)
            return


async def executed_events(node: ServiceNode, handle: RunHandle) -> AsyncIterator[tuple[str, str]]:
    """The run's events (`RunEvents.follow`), asking at once and after every quiet
    `EXECUTION_CHECK_S` whether anything can execute it.

    Raises:
        NoWorker: it is queued on a cluster with no live worker (it stays queued).
    """
    await anyio.to_thread.run_sync(node.dispatcher.check_execution, handle.id)
    events = handle.events.follow().__aiter__()
    pending: asyncio.Future[tuple[str, str]] | None = None
    try:
        while True:
            pending = pending or asyncio.ensure_future(events.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=EXECUTION_CHECK_S)
            if not done:
                await anyio.to_thread.run_sync(node.dispatcher.check_execution, handle.id)
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield item
    finally:
        if pending is not None:
            pending.cancel()


async def final_result(node: ServiceNode, handle: RunHandle) -> RunResult:
    """The run's result once it has ended: the one in hand, else its record's.

    Raises:
        NoWorker: as `wait_executed`: nothing waits for a run that nothing can execute.
    """
    await wait_executed(node, handle)
    if handle.result is not None:
        return handle.result
    # A worker that never finished the run: its record says what happened.
    return stored_result(await anyio.to_thread.run_sync(node.store.get, handle.id), handle.id)


async def record_or_404(node: ServiceNode, principal: Principal, run_id: str) -> RunRecord:
    """The run's record, if the principal sees it.

    Raises:
        NotFound: no such run, or another tenant's.
    """
    record = await anyio.to_thread.run_sync(node.store.get, run_id)
    missing = NotFound(f"no run with id {run_id[:64]!r}", run_id=run_id)
    owned(principal, None if record is None else record.tenant, missing)
    assert record is not None
    return record


async def page(
    node: ServiceNode,
    principal: Principal,
    *,
    status: str | None,
    tenant: str | None,
    limit: int,
    offset: int,
    since: float | None = None,
) -> tuple[list[RunRecord], int]:
    """A page of the runs the principal sees (an admin: every tenant's, or ``tenant``'s),
    created at or after ``since`` (unix seconds) when given."""
    scope = principal.scope(tenant)
    listing = partial(
        node.store.list, status=status, tenant=scope, limit=limit, offset=offset, since=since
    )
    return await anyio.to_thread.run_sync(listing)


async def events_of(
    node: ServiceNode, principal: Principal, run_id: str
) -> tuple[RunHandle | None, RunRecord]:
    """The live handle of a run the principal sees (None once it ended), and its record.

    Raises:
        NotFound: no such run, or another tenant's.
    """
    record = await record_or_404(node, principal, run_id)
    return await anyio.to_thread.run_sync(node.dispatcher.find, run_id), record


async def listed_artifact(
    node: ServiceNode, principal: Principal, run_id: str, path: str
) -> tuple[Artifact, ArtifactBody]:
    """An artifact the run's result lists, and its bytes from the run's own storage.

    Raises:
        NotFound: no such run (or another tenant's), or it lists no such artifact (or its
            bytes are gone).
    """
    record = await record_or_404(node, principal, run_id)
    listed = {a.path: a for a in record.result.artifacts} if record.result is not None else {}
    artifact = listed.get(path)
    body = None
    if artifact is not None:
        body = await anyio.to_thread.run_sync(node.artifact_body, run_id, path)
    if artifact is None or body is None:
        raise NotFound(f"run {run_id[:64]!r} has no artifact {path[:200]!r}", run_id=run_id)
    return artifact, body


async def cancel(node: ServiceNode, principal: Principal, run_id: str) -> RunRecord:
    """Cancel an active run and wait (up to `CANCEL_WAIT_S`) for its terminal record; a run
    that is not active is left as it is. Its record after.

    Raises:
        NotFound: no such run, or another tenant's.
    """
    await record_or_404(node, principal, run_id)
    handle = await anyio.to_thread.run_sync(node.dispatcher.cancel, run_id)
    if handle is not None:
        with anyio.move_on_after(CANCEL_WAIT_S):
            await wait_done(handle)
    return await record_or_404(node, principal, run_id)
