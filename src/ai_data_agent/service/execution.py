"""Executing one claimed run, the same on one node and on a cluster's worker.

    run = ClaimedRun(run_id, request, limits)
    outcome = execute_run(executor, run, publish, artifacts_dir, log_of="daemon")
    run.interrupt()                  # from another thread, at the end of the grace period
    store.finish(run.id, outcome)    # records.Outcome: status, result, error

The caller decides where a run comes from (the daemon's queue, the cluster's
``FOR UPDATE SKIP LOCKED`` claim) and where its events and terminal record go
(the handle's event log and SQLite, or the event pump and PostgreSQL); what
happens in between is here: the executor's phases become ``status`` events
and its output ``stdout``/``stderr`` events, a host failure becomes an
``error`` outcome without a traceback, a bug one that points at the log, and
a run stopped at the end of a shutdown's grace period ends ``interrupted``
(not ``cancelled``, which is what a client asked for).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from ai_data_agent.dataset_models import SavedDataset
from ai_data_agent.errors import AiDataAgentError
from ai_data_agent.executor import RunEvent
from ai_data_agent.models import Limits, RunRequest, RunResult, RunStatus
from ai_data_agent.service.cpu_usage import CpuAccount
from ai_data_agent.service.datasets.promote import save_outputs
from ai_data_agent.service.datasets.service import DatasetService
from ai_data_agent.service.node import REASON_SHUTDOWN_RUNNING, RunExecutor
from ai_data_agent.service.records import Outcome
from ai_data_agent.tenant_models import ADMIN_TENANT

__all__ = ["LIVE_STATUSES", "ClaimedRun", "Publish", "execute_run"]

# Executor phases that clients see as `status` events (beside queued and the end).
LIVE_STATUSES = ("installing", "running", "collecting")
Publish = Callable[[str, str], None]  # (event name, its data as one line of JSON)


@dataclass(eq=False)
class ClaimedRun:
    """A run taken from the queue to execute here, and the switch that stops it."""

    id: str
    request: RunRequest
    limits: Limits | None  # None: the executor's defaults (a record admitted without them)
    tenant: str = ADMIN_TENANT  # whose run: its metrics, and its saved outputs' dataset
    cancel: threading.Event = field(default_factory=threading.Event)
    interrupted: bool = False  # stopped by a shutdown, not by a client

    def interrupt(self) -> None:
        """Stop it because this node shuts down: it will end ``interrupted``."""
        self.interrupted = True
        self.cancel.set()


def _interrupted(outcome: Outcome) -> Outcome:
    """What a run stopped at the end of a shutdown's grace period ends with."""
    status, error = RunStatus.INTERRUPTED, REASON_SHUTDOWN_RUNNING
    result = outcome.result
    if result is not None:
        result = result.model_copy(update={"status": status, "error": error})
    return Outcome(status, result, error)


def execute_run(
    executor: RunExecutor,
    run: ClaimedRun,
    publish: Publish,
    artifacts_dir: Path,
    *,
    log_of: str,
    datasets: DatasetService | None = None,
    cpu: CpuAccount | None = None,
) -> Outcome:
    """Run ``run`` through the executor; never raises for the run's own failures.

    ``log_of`` names the process whose log has the traceback of a crash
    (``daemon``, ``worker``), for the error a client reads. A run with
    ``save_outputs_as`` that succeeded leaves its artifacts in ``datasets``. Its CPU time
    is charged to its tenant in ``cpu`` before this returns, so the next admission sees it.
    """
    log = logger.bind(run_id=run.id)

    def on_event(event: RunEvent) -> None:
        if event.kind != "phase":
            publish(event.kind, json.dumps({"data": event.data}))
        elif event.data in LIVE_STATUSES:
            publish("status", json.dumps({"status": event.data}))

    try:
        result = executor.run(
            run.request,
            run_id=run.id,
            cancel=run.cancel,
            on_event=on_event,
            artifacts_dir=artifacts_dir,
            limits=run.limits,
        )
        if cpu is not None:
            cpu.charge(run.tenant, result.cpu_seconds, object_id=run.id)
        if run.request.save_outputs_as is not None:
            result.saved_as = _saved(datasets, run, artifacts_dir, result)
        outcome = Outcome(result.status, result, result.error)
    except AiDataAgentError as exc:
        # Host or Docker failure (or bad configuration): a terminal record, no traceback.
        log.error("run failed on the host: {}", exc)
        outcome = Outcome(RunStatus.ERROR, error=str(exc))
    except Exception as exc:
        log.opt(exception=exc).error("run crashed: {}", exc)
        message = f"internal error ({type(exc).__name__}); see the {log_of}'s log"
        outcome = Outcome(RunStatus.ERROR, error=message)
    return _interrupted(outcome) if run.interrupted else outcome


def _saved(
    datasets: DatasetService | None, run: ClaimedRun, artifacts_dir: Path, result: RunResult
) -> SavedDataset:
    """What became of the run's ``save_outputs_as``: a version of the run's tenant's dataset,
    or why not."""
    name = run.request.save_outputs_as or ""
    if datasets is None:
        return SavedDataset(name=name, error="this node keeps no datasets")
    if result.status != RunStatus.SUCCEEDED:
        return SavedDataset(name=name, error=f"the run {result.status}: nothing was saved")
    return save_outputs(datasets, run.tenant, run.id, name, artifacts_dir, result.artifacts)
