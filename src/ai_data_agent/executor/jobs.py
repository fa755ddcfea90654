"""What the controller asks of a runner: one `Job` per sandbox, built from settings and a request.

    job = run_job(settings, request, limits, env_path=None)    # the code, per the request
    job = install_job(settings, ["pandas"], target=..., uv_cache=...)
    job = publish_job(src, envs, key, manifest); prune_job(envs, keys); probe_job()

The runner (`sandbox.runner`) reads exactly these fields; the driver adds the
frame token and the size of the uv binary it ships. Jobs travel as JSON.
"""

from __future__ import annotations

from typing import Any, Literal

from packaging.requirements import Requirement
from pydantic import BaseModel, Field

from ai_data_agent.executor.serialiser import serialiser_sources
from ai_data_agent.models import InputFile, Limits, RunRequest
from ai_data_agent.settings import Settings

__all__ = [
    "EgressJob",
    "FileEntry",
    "InstallSpec",
    "Job",
    "compile_job",
    "install_job",
    "probe_job",
    "prune_job",
    "publish_job",
    "requirement_entries",
    "run_job",
    "session_job",
]

Mode = Literal["run", "install", "publish", "compile", "prune", "probe", "session", "warm"]


class RequirementEntry(BaseModel):
    line: str
    name: str
    optional: bool = Field(description="Has an environment marker: may rightly be skipped.")


class InstallSpec(BaseModel):
    installer: Literal["uv", "pip"] | None = None
    skip: bool = False
    target: str | None = Field(None, description="Install here instead of the sandbox dir.")
    uv_cache: str | None = None
    compile: bool = True
    only_binary: bool = False
    uv_size: int = 0


class FileEntry(BaseModel):
    path: str
    size: int

    @classmethod
    def of(cls, files: list[InputFile]) -> list[FileEntry]:
        return [cls(path=f.path, size=len(f.data)) for f in files]


class EgressJob(BaseModel):
    """The relay the runner starts before the code (`sandbox.egress_relay`); the driver
    adds it to the job of a sandbox with an egress lease."""

    dir: str = Field(description="Where the sandbox sees its egress sockets.")
    publish: list[str] = Field(default_factory=list, description="Published ports' names.")


class ArtifactCaps(BaseModel):
    max_count: int = 0
    max_total_bytes: int = 0


class Job(BaseModel):
    """One sandbox's work, as the runner reads it."""

    mode: Mode
    token: str = ""
    code: str = ""
    requirements: list[RequirementEntry] = Field(default_factory=list)
    install: InstallSpec = Field(default_factory=lambda: InstallSpec(skip=True))
    env_paths: list[str] = Field(default_factory=list)
    timeout_s: float = 0.0
    network: bool = False
    egress: EgressJob | None = None
    exec_env: dict[str, str] = Field(default_factory=dict)
    stdout_limit: int = 0
    stderr_limit: int = 0
    output_policy: Literal["truncate", "kill"] = "truncate"
    install_timeout_s: float = 0.0
    install_log_limit: int = 0
    index_url: str | None = None
    files: list[FileEntry] = Field(default_factory=list)
    artifacts: ArtifactCaps = Field(default_factory=ArtifactCaps)
    publish: dict[str, Any] | None = None
    lookup: dict[str, Any] | None = Field(None, description="install: adopt this if published.")
    interrupt_grace_s: float | None = None
    display_max_bytes: int | None = None
    cell_display_max_bytes: int | None = None
    serialiser: dict[str, str] | None = Field(None, description="session: checkpoints' sources.")
    generation: int | None = Field(None, description="session: the kernels counted before.")
    prune: dict[str, Any] | None = None
    compile: dict[str, Any] | None = None
    modules: list[str] | None = Field(
        None, description="warm: import these first (None: the environment's own top modules)."
    )
    report_imports: bool = Field(
        False, description="run: report the environment's files the code imported."
    )
    hold_s: float | None = Field(
        None,
        description="After the result, wait up to this long for stdin to close (the CPU is read first).",
    )

    def encode(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def requirement_entries(requirements: list[str]) -> list[RequirementEntry]:
    """What the runner needs of each requirement: the line, and the name to verify."""
    entries = []
    for line in requirements:
        req = Requirement(line)
        entries.append(RequirementEntry(line=line, name=req.name, optional=req.marker is not None))
    return entries


def _installer_limits(settings: Settings) -> dict[str, Any]:
    return {
        "install_timeout_s": settings.install_timeout_s,
        "install_log_limit": settings.install_log_limit_bytes,
        "index_url": settings.pip_index_url,
    }


def run_job(settings: Settings, request: RunRequest, limits: Limits, env_path: str | None) -> Job:
    """The request's code; installed per run (pip into the run's sandbox dir) unless ``env_path`` is cached."""
    install = (
        InstallSpec(skip=True)
        if env_path is not None or not request.requirements
        else InstallSpec(installer="pip", only_binary=not settings.allow_sdists)
    )
    return Job(
        mode="run",
        code=request.code,
        requirements=requirement_entries(request.requirements),
        install=install,
        env_paths=[env_path] if env_path is not None else [],
        timeout_s=limits.timeout_s,
        network=limits.network,
        exec_env=request.env,
        stdout_limit=settings.stdout_limit_bytes,
        stderr_limit=settings.stderr_limit_bytes,
        output_policy=settings.output_policy,
        files=FileEntry.of(request.files),
        artifacts=ArtifactCaps(
            max_count=settings.max_artifacts, max_total_bytes=settings.max_artifact_total_bytes
        ),
        **_installer_limits(settings),
    )


def session_job(
    settings: Settings, env: dict[str, str], files: list[FileEntry], env_path: str | None
) -> Job:
    """A session: the kernel in this sandbox, cells until ``close`` (never a network)."""
    return Job(
        mode="session",
        env_paths=[env_path] if env_path is not None else [],
        exec_env=env,
        stdout_limit=settings.stdout_limit_bytes,
        stderr_limit=settings.stderr_limit_bytes,
        output_policy=settings.output_policy,
        files=files,
        artifacts=ArtifactCaps(
            max_count=settings.max_artifacts, max_total_bytes=settings.max_artifact_total_bytes
        ),
        interrupt_grace_s=settings.interrupt_grace_s,
        display_max_bytes=settings.display_max_bytes,
        cell_display_max_bytes=settings.cell_display_max_bytes,
        serialiser=serialiser_sources(),
    )


def install_job(
    settings: Settings, requirements: list[str], *, target: str, uv_cache: str | None
) -> Job:
    """An install of ``requirements`` into ``target`` (the cache's staging volume)."""
    return Job(
        mode="install",
        requirements=requirement_entries(requirements),
        install=InstallSpec(
            installer=settings.installer,
            target=target,
            uv_cache=uv_cache,
            compile=False,  # published first, compiled in the background (`compile_job`)
            only_binary=not settings.allow_sdists,
        ),
        **_installer_limits(settings),
    )


def publish_job(src: str, envs: str, key: str, manifest: dict[str, Any]) -> Job:
    return Job(mode="publish", publish={"src": src, "envs": envs, "key": key, "manifest": manifest})


def compile_job(
    envs: str, key: str, workers: int, first: list[str] | None = None, *, rest: bool = True
) -> Job:
    """Compile environment ``key``'s bytecode: the files ``first`` (relative to it), then
    the rest (unless not ``rest``)."""
    spec = {"envs": envs, "key": key, "workers": workers, "first": list(first or []), "rest": rest}
    return Job(mode="compile", compile=spec)


def prune_job(envs: str, keys: list[str]) -> Job:
    return Job(mode="prune", prune={"envs": envs, "keys": keys})


def probe_job() -> Job:
    return Job(mode="probe")
