"""The HTTP API's shapes around the run contract: submissions, records, pages, the
daemon's info and its error body (`ai_data_agent.service` and `ai_data_agent.client`).

    submission = RunSubmission.of(request, wait=False)   # a client's body
    record = RunRecord.model_validate_json(text)         # GET /v1/runs/{id}
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictBool

from ai_data_agent.models import RunRequest, RunResult, RunStatus
from ai_data_agent.tenant_models import ADMIN_TENANT

__all__ = [
    "ACTIVE_RUN_STATUSES",
    "ActiveStatus",
    "ErrorBody",
    "ErrorDetail",
    "LimitRange",
    "RunAccepted",
    "RunLimitsInfo",
    "RunPage",
    "RunRecord",
    "RunSubmission",
    "ServerInfo",
    "SessionsInfo",
]


class ActiveStatus(StrEnum):
    """A run that has not ended yet; a record's status is this or a `RunStatus`."""

    QUEUED = "queued"
    RUNNING = "running"


# Every status of a run that has not ended; SQL in the stores spells it out as
# "('queued', 'running')".
ACTIVE_RUN_STATUSES: frozenset[str] = frozenset(ActiveStatus)


class RunSubmission(RunRequest):
    """The body of `POST /v1/runs`: a `RunRequest`, and whether to wait for the result."""

    # Both conversions keep the validated values (input files with their decoded
    # bytes) and validate nothing again:
    #     submission = RunSubmission.of(request, wait=False)      # a client's body
    #     request = submission.to_request()                       # what the daemon runs

    wait: StrictBool = Field(
        True,
        description="true: hold the request until the run ends and answer 200 with the "
        "RunResult; false: answer 202 with the run id at once. The query parameter "
        "`?wait=` overrides it.",
    )

    @classmethod
    def of(cls, request: RunRequest, *, wait: bool = True) -> RunSubmission:
        """``request`` to submit, with ``wait``."""
        fields_set = (request.model_fields_set & set(RunRequest.model_fields)) | {"wait"}
        return cls.model_construct(fields_set, **_request_fields(request), wait=wait)

    def to_request(self) -> RunRequest:
        """The `RunRequest` this submission carries."""
        fields_set = self.model_fields_set - {"wait"}
        return RunRequest.model_construct(fields_set, **_request_fields(self))


def _request_fields(request: RunRequest) -> dict[str, Any]:
    return {name: getattr(request, name) for name in RunRequest.model_fields}


class RunRecord(BaseModel):
    """A run as the daemon stores it: written before its container exists."""

    id: str
    tenant: str = Field(ADMIN_TENANT, description="The tenant whose token submitted it.")
    status: ActiveStatus | RunStatus
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    request: RunRequest
    result: RunResult | None = None
    error: str | None = Field(None, description="Why it was interrupted, cancelled or failed.")


class RunAccepted(BaseModel):
    """`202` answer to `POST /v1/runs` with ``wait: false``."""

    id: str
    status: ActiveStatus | RunStatus


class RunPage(BaseModel):
    """`GET /v1/runs`: newest first."""

    items: list[RunRecord]
    total: int
    limit: int
    offset: int


class LimitRange(BaseModel):
    """A run limit: what a request gets when it sets none, and the most it may ask for."""

    default: int | float
    max: int | float


class RunLimitsInfo(BaseModel):
    timeout_s: LimitRange
    memory_mb: LimitRange
    cpus: LimitRange


class SessionsInfo(BaseModel):
    """Session limits, when the daemon serves sessions."""

    max_sessions: int
    cell_timeout_s: LimitRange
    memory_mb: LimitRange
    cpus: LimitRange
    idle_timeout_s: float
    max_lifetime_s: float
    interrupt_grace_s: float


class ServerInfo(BaseModel):
    """`GET /v1/info`: what this daemon accepts and offers, so that clients need not guess.

    Sizes are bytes and durations seconds; names match the daemon's settings.
    """

    version: str
    features: list[str] = Field(
        description="What this daemon serves: runs, files (inputs), artifacts, events (SSE), "
        "sessions (unless disabled), mcp (/mcp, with the mcp extra)."
    )
    limits: RunLimitsInfo
    install_timeout_s: float = Field(description="Time an install of requirements may take.")
    allow_network: bool = Field(description="Whether a request may ask for network.")
    egress_allow: list[str] = Field(
        default_factory=list,
        description='Hosts a run or session may ask to reach (`network: {"allow": [...]}`), '
        "the operator's egress allow-list; empty: egress is off.",
    )
    cancel_wait_s: float = Field(description="How long DELETE waits for the sandbox to go.")
    max_body_bytes: int
    max_code_bytes: int
    max_requirements: int
    max_env_vars: int
    max_env_value_bytes: int
    max_input_files: int
    max_input_file_bytes: int
    max_input_total_bytes: int
    max_artifacts: int
    max_artifact_total_bytes: int
    stdout_limit_bytes: int
    stderr_limit_bytes: int
    output_policy: Literal["truncate", "kill"]
    sessions: SessionsInfo | None = Field(None, description="Absent when sessions are off.")


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable: invalid_request, unauthorized, ...")
    message: str
    quota: str | None = Field(None, description="quota_exceeded: which quota, e.g. queued_runs.")
    limit: int | float | None = Field(None, description="quota_exceeded: the tenant's limit.")
    used: int | float | None = Field(
        None, description="quota_exceeded: what the tenant holds (or used) now."
    )


class ErrorBody(BaseModel):
    """Every HTTP error: ``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorDetail
