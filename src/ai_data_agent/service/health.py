"""Readiness, the same on every node: the checks a node names, run at once with a timeout.

    probes = {**engine_probes(executor), "store": probe("store", store.probe_writable, "writable")}
    probes["writable"] = writable_probe(executor, settings.data_dir)   # each directory it writes
    answer = await readiness(node, request.app, *accepting(node))   # {"status": "ready", ...}
    checks = await node_checks(node, limiter)            # every Check by name, failed ones too

A node (one daemon, a cluster's API node, a worker) lists its checks that may
block (`probes`: the engine, the image, a database) and those that answer at
once (`instant_checks`: prewarm progress); ``/readyz`` runs the first kind in
threads of its own limiter, each abandoned after `READY_CHECK_TIMEOUT_S`, so a
hung engine is reported ("no answer") instead of holding the answer or
starving the API's own threads. The console's health page runs the same
checks (`node_checks`) and shows them whether they pass or not. A passing check
may be ``degraded`` (a cluster's API node with no live worker): the node is
ready to admit (200), and the answer says ``"execution": "degraded"`` and which
check says why.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import anyio
from starlette.applications import Starlette

from ai_data_agent.checks import Check
from ai_data_agent.errors import AiDataAgentError, NotReady
from ai_data_agent.executor.pool import WarmPool
from ai_data_agent.service.node import RunExecutor, ServiceNode

__all__ = [
    "READY_CHECK_TIMEOUT_S",
    "Probed",
    "accepting",
    "engine_probes",
    "node_checks",
    "probe",
    "readiness",
    "timed",
    "warm_pool_check",
    "writable_probe",
]

READY_CHECK_TIMEOUT_S = 5.0
PROBE_THREADS = 6  # readiness checks in flight at once (three per probe)

Probe = Callable[[], Check]
Limiter = anyio.CapacityLimiter


class Probed(Protocol):
    def probes(self) -> dict[str, Probe]:
        """Readiness checks that may block (run in threads, with a timeout), by name."""

    def instant_checks(self) -> list[Check]:
        """Readiness checks that answer at once."""


def probe(name: str, call: Callable[[], object], detail: str | None = None) -> Probe:
    """A check named ``name`` that passes when ``call`` returns (``detail``, else what it
    returned, says how) and fails with the error it raises."""

    def check() -> Check:
        try:
            value = call()
        except Exception as exc:
            return Check.failed(name, exc)
        return Check(name, True, str(value) if detail is None else detail)

    return check


def engine_probes(executor: RunExecutor) -> dict[str, Probe]:
    """The executor's engine answers, and the sandbox image is there."""
    backend = executor.backend
    return {
        "docker": probe("docker", backend.ping, "reachable"),
        "image": probe("image", backend.check_image),
    }


def writable_probe(executor: RunExecutor | None, *dirs: Path, name: str = "writable") -> Probe:
    """Every directory a node writes: ``dirs`` (data_dir, a storage directory) and, when
    it executes with the environment cache, its index's. A file is made in each."""

    def check() -> Check:
        cache = executor.env_cache if executor is not None else None
        try:
            paths = [*dirs, *([cache.index_path.parent] if cache else [])]
        except AiDataAgentError as exc:  # the engine, asked for its id: the docker check says
            return Check.failed(name, exc)
        for path in paths:
            try:
                path.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryFile(dir=path):
                    pass
            except OSError as exc:
                return Check(name, False, f"{path}: {exc.strerror or exc}")
        return Check(name, True, ", ".join(str(p) for p in paths))

    return check


async def timed(name: str, call: Callable[[], list[Check]], limiter: Limiter) -> list[Check]:
    """The checks ``call`` returns, or one named ``name`` saying it gave no answer within
    `READY_CHECK_TIMEOUT_S`.

    A hung call is abandoned, not waited for. Its thread holds a token of ``limiter``
    (the probes' own) until it returns, so probes that hang can only starve later
    probes (which then report "no answer"), never the API's store calls.
    """
    with anyio.move_on_after(READY_CHECK_TIMEOUT_S):
        found: list[Check] = await anyio.to_thread.run_sync(
            call, abandon_on_cancel=True, limiter=limiter
        )
        return found
    return [Check(name, False, f"no answer within {READY_CHECK_TIMEOUT_S:g} s")]


async def node_checks(node: Probed, limiter: Limiter, *extra: Check) -> dict[str, Check]:
    """Every check of ``node`` (and ``extra``) by name, the blocking ones run at once
    in threads of ``limiter``, each within `READY_CHECK_TIMEOUT_S`."""
    checks: dict[str, Check] = {}

    async def run(check: Probe, name: str) -> None:
        checks[name] = (await timed(name, lambda: [check()], limiter))[0]

    async with anyio.create_task_group() as group:
        for name, check in node.probes().items():
            group.start_soon(run, check, name)
    checks.update((check.name, check) for check in (*node.instant_checks(), *extra))
    return checks


def warm_pool_check(pool: WarmPool | None) -> Check:
    """The warm pool per profile: idle and target, memory, hand-outs and misses."""
    if pool is None:
        return Check("warm pool", True, "off (pool_size 0): every run starts a container")
    profiles = [
        f"{p.name}{' (' + ' '.join(p.modules) + ')' if p.modules else ''}: "
        f"{p.idle}/{p.target} idle, {p.rss_mb:.0f} MB each, {p.taken} taken, "
        f"{p.missed} missed" + (f", imports failed: {p.broken}" if p.broken else "")
        for p in pool.profiles()
    ]
    return Check(
        "warm pool",
        True,
        f"{pool.idle_count()} idle (up to {pool.size} per profile); {pool.taken} run(s) "
        f"took one, {pool.missed} found none" + "".join(f"; {p}" for p in profiles),
    )


def accepting(node: ServiceNode) -> list[Check]:
    """A failed ``accepting`` check while ``node`` takes no runs (starting, stopping)."""
    if node.dispatcher.accepting:
        return []
    return [Check("accepting", False, "shutting down" if node.started else "starting")]


def _limiter(app: Starlette) -> Limiter:
    limiter: Limiter | None = getattr(app.state, "probe_limiter", None)
    if limiter is None:  # made on the event loop, at the first probe
        limiter = app.state.probe_limiter = anyio.CapacityLimiter(PROBE_THREADS)
    return limiter


async def readiness(node: Probed, app: Starlette, *extra: Check) -> dict[str, Any]:
    """Every check of ``node`` (and ``extra``) by name, when all pass: ``admission`` is
    ready, ``execution`` ready or, when a check says so, ``degraded``.

    Raises:
        NotReady: some failed; the message names each with why.
    """
    checks = await node_checks(node, _limiter(app), *extra)
    failed = [c for c in checks.values() if not c.ok]
    if failed:
        raise NotReady("; ".join(f"{c.name}: {c.detail}" for c in failed))
    degraded = any(c.degraded for c in checks.values())
    return {
        "status": "ready",
        "admission": "ready",
        "execution": "degraded" if degraded else "ready",
        "checks": {name: c.detail for name, c in sorted(checks.items())},
    }
