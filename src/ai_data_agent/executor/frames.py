"""The runner's frames as types: parsed once, at the boundary, from hostile JSON.

`FrameReader` (protocol) turns authenticated lines into dicts; `parse_frame`
turns each into one of the models below, or None when it does not fit (a
malformed frame is dropped and counted, never trusted in part)::

    frame = parse_frame({"k": "out", "s": "stdout", "d": "hi\\n"})
    assert isinstance(frame, OutFrame) and frame.text == "hi\\n"

Every field has a default, so a runner that leaves a section out (a job that
never got that far) still parses; strings are capped where they are used.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ai_data_agent.executor.protocol import FrameReader
from ai_data_agent.models import DisplayOutput, PackageInfo

__all__ = [
    "AckFrame",
    "ArtifactBegin",
    "ArtifactData",
    "ArtifactEnd",
    "ArtifactsSection",
    "CellFrame",
    "CheckpointBegin",
    "CheckpointData",
    "CheckpointDone",
    "CheckpointEnd",
    "CheckpointSame",
    "DisplayFrame",
    "EnvironmentSection",
    "ErrorSection",
    "ExecuteSection",
    "FileEntry",
    "Frame",
    "InstallSection",
    "KernelFrame",
    "LogFrame",
    "LostEntry",
    "OutFrame",
    "OutputSection",
    "PhaseFrame",
    "RestoredFrame",
    "ResultFrame",
    "SkippedEntry",
    "VerifySection",
    "parse_frame",
]

Seconds = Annotated[float, Field(ge=0)]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class OutFrame(_Frame):
    k: Literal["out"]
    stream: Literal["stdout", "stderr"] = Field(alias="s")
    text: str = Field(alias="d")


class LogFrame(_Frame):
    k: Literal["log"]
    level: str = "INFO"
    msg: str = ""


class PhaseFrame(_Frame):
    k: Literal["phase"]
    phase: Annotated[str, Field(max_length=32)]


class ArtifactBegin(_Frame):
    k: Literal["artifact_begin"]
    path: str
    size: Annotated[int, Field(ge=0)]


class ArtifactData(_Frame):
    k: Literal["artifact_data"]
    data: str = Field(alias="d")


class ArtifactEnd(_Frame):
    k: Literal["artifact_end"]
    size: int
    sha256: str


class InstallSection(_Frame):
    ok: bool = False
    installer: str | None = None
    fallback_triggered: bool = False
    fallback_reason: str = ""
    log_tail: str = ""
    duration_s: Seconds = 0.0
    timed_out: bool = False
    exit_code: int | None = None


class VerifySection(_Frame):
    ok: bool = False
    missing: list[str] = Field(default_factory=list)
    packages: list[PackageInfo] = Field(default_factory=list)


class OutputSection(_Frame):
    """A MIME bundle, its metadata, and whether richer representations were dropped."""

    data: dict[str, Any]
    metadata: dict[str, Any] = Field(default_factory=dict)
    truncated: bool = False

    def as_output(self, max_bytes: int) -> DisplayOutput | None:
        """The bundle as the API returns it, or None when it is over ``max_bytes``."""
        output = DisplayOutput(data=self.data, metadata=self.metadata, truncated=self.truncated)
        return output if len(output.model_dump_json()) <= max_bytes else None


ModuleName = Annotated[str, Field(max_length=200)]
EnvFile = Annotated[str, Field(max_length=500)]


class ExecuteSection(_Frame):
    preimported: Annotated[list[ModuleName], Field(max_length=100)] = Field(default_factory=list)
    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    output_exceeded: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_s: Seconds = 0.0
    value: OutputSection | None = None  # the last expression's bundle (`sandbox.lastvalue`)


class EnvironmentSection(_Frame):
    platform: str = ""
    python_version: str = ""
    path_separator: str = ""
    pythonpath: str = ""
    home: str = ""
    sandbox_dir: str = ""
    uid: int | None = None


class SkippedEntry(_Frame):
    path: str
    reason: str


class ArtifactsSection(_Frame):
    skipped: list[SkippedEntry] = Field(default_factory=list)


class ResultFrame(_Frame):
    """The last frame of every job; which sections are there depends on the job's mode."""

    k: Literal["result"]
    error: str | None = None
    # run and install
    install: InstallSection | None = None
    verify: VerifySection | None = None
    execute: ExecuteSection | None = None
    environment: EnvironmentSection | None = None
    artifacts: ArtifactsSection | None = None
    oom_kills: int | None = None
    sandbox_removed: bool | None = None
    mismatch: list[str] = Field(default_factory=list)
    env_missing: list[str] = Field(default_factory=list)
    imported: Annotated[list[EnvFile], Field(max_length=5000)] = Field(default_factory=list)
    size: Annotated[int, Field(ge=0)] = 0
    # publish, compile, prune (and an install that found its environment published)
    published: bool | None = None
    compiled: bool | None = None
    complete: bool | None = None  # the compile walked the whole environment
    manifest: dict[str, Any] | None = None
    removed: list[str] = Field(default_factory=list)
    # session
    generation: int | None = None
    # probe
    python: str = ""
    tag: str = ""
    platform: str = ""


class KernelFrame(_Frame):
    """Session mode: a kernel started (``started``), or died between cells (``lost``)."""

    k: Literal["kernel"]
    event: Literal["started", "lost"]
    generation: int
    reason: str = ""


class DisplayFrame(OutputSection):
    """Session mode: a rich output of the running cell."""

    k: Literal["display"]


class ErrorSection(_Frame):
    ename: str = ""
    evalue: str = ""
    traceback: list[str] = Field(default_factory=list)


class CellFrame(_Frame):
    """Session mode: the end of one cell."""

    k: Literal["cell"]
    count: int
    generation: int
    status: Literal[
        "succeeded",
        "error",
        "timed_out",
        "interrupted",
        "memory_exceeded",
        "kernel_died",
        "output_exceeded",
    ]
    state: Literal["preserved", "lost"]
    error: ErrorSection | None = None
    result: OutputSection | None = None
    truncated: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_s: Seconds = 0.0
    artifacts: ArtifactsSection | None = None


class CheckpointBegin(_Frame):
    """Session mode: a part of a checkpoint begins (path ``""``: the namespace, else a file)."""

    k: Literal["ckpt_begin"]
    path: str


class CheckpointData(_Frame):
    """A chunk of a checkpoint's part: its bytes as they are (``raw``), or base64 (``d``)."""

    k: Literal["ckpt_data"]
    data: str = Field("", alias="d")
    raw: bytes | None = None


class CheckpointEnd(_Frame):
    k: Literal["ckpt_end"]


class CheckpointSame(_Frame):
    """A file unchanged since the checkpoint this runner sent before (``base``)."""

    k: Literal["ckpt_same"]
    path: str


class LostEntry(_Frame):
    name: str
    type: str = ""
    reason: str = ""


class CheckpointDone(_Frame):
    """The end of a checkpoint: what was kept and lost, or why it failed."""

    k: Literal["ckpt_done"]
    seq: int = 0
    bytes: Annotated[int, Field(ge=0)] = 0
    kept: list[str] = Field(default_factory=list)
    lost: list[LostEntry] = Field(default_factory=list)
    skipped: list[SkippedEntry] = Field(default_factory=list)
    modules: list[str] = Field(default_factory=list)  # what its values come from
    error: str | None = None


class RestoredFrame(_Frame):
    """The end of a restore: the names read back and those lost; ``lost`` when the kernel
    had to be replaced (then nothing of the namespace is there)."""

    k: Literal["restored"]
    state: Literal["restored", "lost"]
    restored: list[str] = Field(default_factory=list)
    lost: list[LostEntry] = Field(default_factory=list)
    error: str = ""


class FileEntry(_Frame):
    path: str
    size: Annotated[int, Field(ge=0)]
    modified: float


class AckFrame(_Frame):
    """Session mode: the end of an operation other than a cell."""

    k: Literal["ack"]
    op: str
    ok: bool
    error: str = ""
    generation: int | None = None
    imported: list[str] = Field(default_factory=list)
    files: list[FileEntry] = Field(default_factory=list)
    truncated: bool = False
    running: bool = False


Frame = Annotated[
    OutFrame
    | LogFrame
    | PhaseFrame
    | ArtifactBegin
    | ArtifactData
    | ArtifactEnd
    | ResultFrame
    | KernelFrame
    | DisplayFrame
    | CellFrame
    | AckFrame
    | CheckpointBegin
    | CheckpointData
    | CheckpointEnd
    | CheckpointSame
    | CheckpointDone
    | RestoredFrame,
    Field(discriminator="k"),
]
_FRAME: TypeAdapter[Frame] = TypeAdapter(Frame)


def typed_frames(reader: FrameReader, data: bytes) -> list[Frame]:
    """The typed frames that ``data`` completes; one that fits no kind counts as bad."""
    frames: list[Frame] = []
    for raw in reader.feed(data):
        frame = parse_frame(raw)
        if frame is None:
            reader.bad_frames += 1
        else:
            frames.append(frame)
    return frames


def parse_frame(raw: dict[str, Any]) -> Frame | None:
    """The typed frame, or None for an unknown kind or a frame that does not fit its kind."""
    try:
        return _FRAME.validate_python(raw)
    except ValidationError:
        return None
