"""The contract of stateful sessions: what a session and a cell ask for, and what they give back.

    request = SessionRequest(requirements=["pandas"], files=[InputFile.from_bytes("a.csv", data)])
    cell = session.run("df = pd.read_csv('a.csv'); df.describe()")
    cell.status, cell.state, cell.result.data["text/html"]

Cell results follow the Jupyter messaging spec's shapes: a MIME bundle for the
value of the last expression (``result``, as ``execute_result``), rich outputs
in order (``outputs``, as ``display_data``) and ``error`` with ename, evalue
and traceback. Every cell says whether the session's state survived it
(``state``) and which kernel ran it (``generation``), so an agent is never told
its variables exist when they do not.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from ai_data_agent.checkpoint_models import RestoreReport
from ai_data_agent.dataset_models import DatasetMount, DatasetMounts
from ai_data_agent.models import (
    Artifact,
    DisplayOutput,
    EnvVars,
    InputFiles,
    InstallReport,
    NetworkOption,
    PackageInfo,
    RequirementLine,
    SkippedArtifact,
)
from ai_data_agent.tenant_models import ADMIN_TENANT

__all__ = [
    "LIVE_SESSION_STATUSES",
    "CellAccepted",
    "CellError",
    "CellRequest",
    "CellResult",
    "CellStatus",
    "CellTimings",
    "DisplayOutput",
    "Interrupted",
    "PackageChange",
    "PackagesRequest",
    "PackagesResult",
    "SessionFile",
    "SessionInfo",
    "SessionPage",
    "SessionRequest",
    "SessionStatus",
    "StateOutcome",
]

StateOutcome = Literal["preserved", "lost", "restored"]


class CellStatus(StrEnum):
    """How a cell ended. State is lost only with ``kernel_died``, ``memory_exceeded``, or a
    ``timed_out``/``interrupted`` cell whose code ignored the interrupt (see ``state``)."""

    SUCCEEDED = "succeeded"
    ERROR = "error"  # an exception in the cell
    TIMED_OUT = "timed_out"
    INTERRUPTED = "interrupted"
    MEMORY_EXCEEDED = "memory_exceeded"
    KERNEL_DIED = "kernel_died"
    OUTPUT_EXCEEDED = "output_exceeded"


class SessionStatus(StrEnum):
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    CLOSED = "closed"  # closed by request
    EXPIRED = "expired"  # idle timeout or maximum lifetime
    LOST = "lost"  # its sandbox or controller died
    PAUSED = "paused"  # checkpointed, no container: the next call resumes it


# A session that holds (or is getting) a container; SQL in the stores spells it out
# as "('starting', 'idle', 'busy')".
LIVE_SESSION_STATUSES: frozenset[SessionStatus] = frozenset(
    {SessionStatus.STARTING, SessionStatus.IDLE, SessionStatus.BUSY}
)


class SessionRequest(BaseModel):
    """``POST /v1/sessions``: a fresh, locked-down container with a kernel in it."""

    model_config = ConfigDict(extra="forbid")

    requirements: list[RequirementLine] = Field(
        default_factory=list,
        description="PEP 508 requirements, installed before the kernel starts.",
    )
    files: InputFiles = Field(
        default_factory=list, description="Input files, placed under the working directory."
    )
    env: EnvVars = Field(default_factory=dict, description="Extra environment variables.")
    memory_mb: StrictInt | None = Field(None, ge=64, description="Memory limit (MiB, swap equal).")
    cpus: StrictFloat | None = Field(None, gt=0, le=64, description="CPU limit (cores).")
    cell_timeout_s: StrictFloat | None = Field(
        None, gt=0, description="Default time limit of a cell in this session."
    )
    datasets: DatasetMounts = Field(
        default_factory=list,
        description='Datasets mounted read-only for the session\'s life: "sales", "sales@3" or '
        '{"name", "version", "path"} (default path /data/<name>).',
    )
    network: NetworkOption = Field(
        False,
        description='`{"allow": [...]}`: the session\'s code reaches only those hosts, through '
        "the egress proxy, for its whole life. `true` (unrestricted) is for runs only.",
    )


class CellRequest(BaseModel):
    """``POST /v1/sessions/{id}/cells``."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="Python source; the value of a final expression is returned.")
    timeout_s: StrictFloat | None = Field(None, gt=0, description="Time limit of this cell.")
    wait: StrictBool = Field(True, description="Answer with the result (200) or at once (202).")


class PackagesRequest(BaseModel):
    """``POST /v1/sessions/{id}/packages``: add requirements to a live session."""

    model_config = ConfigDict(extra="forbid")

    requirements: list[RequirementLine] = Field(min_length=1)


class CellError(BaseModel):
    ename: str
    evalue: str
    traceback: list[str] = Field(
        default_factory=list,
        description="The traceback as Python formats it: pieces that end in newlines, joined as is.",
    )

    @property
    def text(self) -> str:
        """The traceback as Python prints it (``ename: evalue`` when there is none)."""
        return "".join(self.traceback) or f"{self.ename}: {self.evalue}\n"


class CellTimings(BaseModel):
    execute_s: float = 0.0
    total_s: float = 0.0


class CellResult(BaseModel):
    """One cell's outcome. Bad code gives a status here, never an exception."""

    session_id: str
    execution_count: int
    generation: int = Field(description="The kernel that ran it; a new kernel has lost the state.")
    status: CellStatus
    state: StateOutcome = Field(
        description="Whether variables from earlier cells still exist (restored: the session "
        "was resumed from a checkpoint before this cell, see restore)."
    )
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    result: DisplayOutput | None = Field(None, description="The last expression's value.")
    outputs: list[DisplayOutput] = Field(default_factory=list, description="display() and figures.")
    outputs_truncated: bool = False
    error: CellError | None = None
    artifacts: list[Artifact] = Field(
        default_factory=list, description="Files written under outputs/."
    )
    artifacts_skipped: list[SkippedArtifact] = Field(default_factory=list)
    artifacts_truncated: bool = False
    timings: CellTimings = Field(default_factory=CellTimings)
    cpu_seconds: float | None = Field(
        None,
        description="CPU time of the session's container since the cell before; None: not read.",
    )
    restore: RestoreReport | None = Field(
        None, description="The resume this cell caused, when the session was paused."
    )


class PackageChange(BaseModel):
    name: str
    old_version: str | None = None
    new_version: str | None = None


class PackagesResult(BaseModel):
    """What adding requirements changed, and whether the kernel must restart to see it."""

    requirements: list[str] = Field(description="Every requirement of the session now.")
    added: list[PackageInfo] = Field(default_factory=list)
    changed: list[PackageChange] = Field(default_factory=list)
    removed: list[PackageInfo] = Field(default_factory=list)
    restart_required: bool = Field(
        False, description="A distribution the kernel has imported changed version: restart."
    )
    install: InstallReport


class SessionFile(BaseModel):
    path: str = Field(description="Relative to the working directory.")
    size: int
    modified_at: datetime


class SessionInfo(BaseModel):
    """A session as the daemon knows it."""

    id: str
    tenant: str = Field(ADMIN_TENANT, description="The tenant whose token started it.")
    status: SessionStatus
    created_at: datetime
    last_activity_at: datetime
    idle_expires_at: datetime | None = None
    ends_at: datetime | None = Field(None, description="The maximum lifetime ends here.")
    generation: int = 0
    execution_count: int = 0
    requirements: list[str] = Field(default_factory=list)
    packages: list[PackageInfo] = Field(default_factory=list)
    image: str = ""
    memory_mb: int = 0
    cpus: float = 0.0
    error: str | None = Field(None, description="Why it was lost or closed, when it was.")
    datasets: list[DatasetMount] = Field(
        default_factory=list, description="The dataset versions it mounts, pinned."
    )
    checkpoint: int | None = Field(None, description="Its latest checkpoint's seq.")
    restore: RestoreReport | None = Field(None, description="Its latest resume.")


class SessionPage(BaseModel):
    """``GET /v1/sessions``: live sessions first, then those that ended, newest first."""

    items: list[SessionInfo]


class CellAccepted(BaseModel):
    """``202``: the cell runs; poll its ``Location`` or follow its events."""

    session_id: str
    execution_count: int
    status: str = Field("running")


class Interrupted(BaseModel):
    """``POST /v1/sessions/{id}/interrupt``."""

    interrupted: bool = Field(description="A cell was running and got the interrupt.")
