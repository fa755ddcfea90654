"""The contract of checkpoints: what a checkpoint kept, and what a resume or fork brought back.

    info = session.checkpoint()          # CheckpointInfo: kept, lost (with why), size
    report = session.resume()            # RestoreReport: state "restored", restored, lost
    fork = session.fork()                # a new session from the same state

A checkpoint is a session's namespace, serialised inside its sandbox, and its
working directory's files. Variables that cannot be saved (an open file, a
socket, a generator, a lock, ...) are listed with their type and the reason;
a resume says which names came back and which did not, so an agent is never
told its variables exist when they do not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from ai_data_agent.models import SkippedArtifact

__all__ = [
    "CheckpointInfo",
    "CheckpointPage",
    "ForkRequest",
    "LostVariable",
    "RestoreReport",
]


class LostVariable(BaseModel):
    """A variable that was not saved (or not read back), and why."""

    name: str
    type: str = Field("", description="Its type's name.")
    reason: str = ""


class CheckpointInfo(BaseModel):
    """One checkpoint of a session (``seq`` counts them, from 1)."""

    session_id: str
    seq: int
    created_at: datetime
    execution_count: int = Field(description="The last cell it holds the state of.")
    generation: int = 0
    bytes: int = Field(description="Its stored size: the namespace and the files.")
    namespace_bytes: int = 0
    files: int = Field(0, description="Files of the working directory it holds.")
    kept: list[str] = Field(default_factory=list, description="Variables saved.")
    lost: list[LostVariable] = Field(default_factory=list, description="Variables not saved.")
    files_skipped: list[SkippedArtifact] = Field(default_factory=list)
    requirements: list[str] = Field(default_factory=list)
    image: str = ""


class CheckpointPage(BaseModel):
    """``GET /v1/sessions/{id}/checkpoints``: newest first."""

    items: list[CheckpointInfo]


class RestoreReport(BaseModel):
    """What a resume (or a fork) brought back from a checkpoint."""

    session_id: str
    checkpoint: int | None = Field(None, description="The checkpoint's seq; None: none needed.")
    execution_count: int = Field(0, description="The cell the state was restored to.")
    state: Literal["restored", "lost", "preserved"] = Field(
        description="restored: variables came back (see lost for those that did not); lost: "
        "the restore failed (files are back, no variable); preserved: the session was live."
    )
    restored: list[str] = Field(default_factory=list)
    lost: list[LostVariable] = Field(default_factory=list)
    error: str | None = None


class ForkRequest(BaseModel):
    """``POST /v1/sessions/{id}/fork``: a new session from a checkpoint."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: StrictInt | None = Field(
        None,
        ge=1,
        description="The checkpoint's seq; default: a fresh one of a live session, "
        "else the latest.",
    )
