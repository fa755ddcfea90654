"""What a pooled sandbox's code interpreter holds before any job, and how it gets there.

    warmth = Warmth(env_paths=("/opt/ai-data-agent/envs/ab12",))   # modules: derived there
    report = warm_up(sandbox, warmth)     # the warm message sent, its frame read
    report.imported, report.rss_mb         # ["pandas"], 94.1

Right after its bundle, a pooled sandbox's runner gets a ``warm`` message
under a token of its own (never a job's: the job comes later with its
token): it makes the sandbox dir and starts the code's interpreter with the
environments on its path (`sandbox.codeproc`), which imports the set's heavy
modules (those configured, where the set has them; by default the top-level
modules of the set's own requirements, with ``matplotlib.pyplot`` under Agg)
and then waits for the code. The runner answers with a ``warm`` frame: what
was imported, or why not, and the resident memory of the sandbox, which the
pool holds to its memory budget. A plain pooled sandbox (no environment)
warms the same way with nothing to import: its code interpreter is up
before a run takes it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ai_data_agent.errors import ExecutorError
from ai_data_agent.executor.backend import STDOUT, Sandbox
from ai_data_agent.executor.jobs import Job
from ai_data_agent.executor.protocol import FrameReader, encode_message, new_token

__all__ = ["WARM_TIMEOUT_S", "WarmReport", "Warmth", "warm_up"]

WARM_TIMEOUT_S = 120.0
READ_SLICE_S = 0.5


@dataclass(frozen=True)
class Warmth:
    """A pooled sandbox's code interpreter: ``env_paths`` on its path (a cached set's
    environment, or none), ``modules`` imported (None: derived in the sandbox)."""

    env_paths: tuple[str, ...] = ()
    modules: tuple[str, ...] | None = None

    @property
    def name(self) -> str:
        """How operators see the profile: its environment's key, or ``plain``."""
        return ",".join(p.rsplit("/", 1)[-1][:12] for p in self.env_paths) or "plain"

    def job(self) -> Job:
        modules = list(self.modules) if self.modules is not None else None
        return Job(mode="warm", env_paths=list(self.env_paths), modules=modules)


class WarmReport(BaseModel):
    """The runner's ``warm`` frame (hostile input, parsed once)."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    k: Literal["warm"]
    imported: Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=100)] = Field(
        default_factory=list
    )
    error: Annotated[str, Field(max_length=4000)] | None = None
    rss_kb: Annotated[int, Field(ge=0)] = 0

    @property
    def rss_mb(self) -> float:
        return self.rss_kb / 1024


def warm_up(sandbox: Sandbox, warmth: Warmth, timeout_s: float = WARM_TIMEOUT_S) -> WarmReport:
    """Send ``warmth``'s warm message to a started sandbox and read its report.

    Raises:
        ExecutorError: the sandbox ended, or did not report within ``timeout_s``.
    """
    job = warmth.job()
    job.token = new_token()
    reader = FrameReader(job.token)
    sandbox.send(encode_message(job.encode()))
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        chunk = sandbox.read(min(left, READ_SLICE_S))
        if chunk is None:
            continue
        stream, data = chunk
        if not data:
            raise _failed(sandbox, "the sandbox ended while it warmed up")
        if stream != STDOUT:
            continue
        for raw in reader.feed(data):
            report = _parsed(raw)
            if report is not None:
                return report
    raise _failed(sandbox, f"no warm report within {timeout_s:g} s")


def _parsed(raw: dict[str, Any]) -> WarmReport | None:
    try:
        return WarmReport.model_validate(raw)
    except ValidationError:
        return None


def _failed(sandbox: Sandbox, why: str) -> ExecutorError:
    return ExecutorError(why, container_id=sandbox.container_id, step="warm")
