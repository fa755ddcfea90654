"""The contract: what a run asks for (`RunRequest`) and what it gives back (`RunResult`).

Both are pydantic models and JSON-serialisable::

    request = RunRequest(code="import six; print(six.__version__)", requirements=["six"])
    result = Executor(settings).run(request)
    print(result.status, result.stdout)

`RunRequest` checks what it can alone (syntax of requirements and env names,
sizes that are always wrong); limits against the server's caps are checked on
the server side, by `ai_data_agent.limits`, with the settings in hand.
"""

from __future__ import annotations

import base64
import binascii
import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    Tag,
    field_validator,
    model_validator,
)

from ai_data_agent.dataset_models import DatasetMount, DatasetMounts, DatasetName, SavedDataset
from ai_data_agent.egress.rules import check_destination, check_rule
from ai_data_agent.paths import check_relative_path
from ai_data_agent.requirements import (
    MAX_REQUIREMENT_LENGTH,
    check_requirement,
    parse_requirements_text,
)

__all__ = [
    "OUTPUTS_DIR",
    "Artifact",
    "DisplayOutput",
    "EgressRequest",
    "EnvVars",
    "EnvironmentInfo",
    "InputFile",
    "InputFiles",
    "InstallReport",
    "Limits",
    "NetworkOption",
    "PackageInfo",
    "RequirementLine",
    "RunRequest",
    "RunResult",
    "RunStatus",
    "SkippedArtifact",
    "Timings",
    "parse_requirements_text",
]

# Under the code's working directory: what the code writes here comes back as artifacts.
OUTPUTS_DIR = "outputs"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# The sandbox owns these: a request must not steer the interpreter, the
# installer, the loader, trust or proxies.
RESERVED_ENV_EXACT = frozenset(
    {
        "PATH",
        "HOME",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "MPLBACKEND",
    }
)
RESERVED_ENV_PREFIXES = ("PYTHON", "PIP_", "UV_", "LD_", "AI_DATA_AGENT_")


class RunStatus(StrEnum):
    """How a run ended. Only `error` points at the service rather than the code."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    MEMORY_EXCEEDED = "memory_exceeded"
    INSTALL_FAILED = "install_failed"
    OUTPUT_EXCEEDED = "output_exceeded"
    CANCELLED = "cancelled"  # a client asked to stop it
    INTERRUPTED = "interrupted"  # the controller stopped (or died) while it was in flight
    ERROR = "error"


# Names the runner itself uses in the working directory.
RESERVED_INPUT_PATHS = frozenset({"main.py"})


class InputFile(BaseModel):
    """A file placed under the run's working directory before the code starts."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        description="Relative POSIX path, already normal (no empty, `.` or `..` parts), "
        "e.g. data/sales.csv."
    )
    content_b64: str = Field(description="The file's bytes, base64 (standard alphabet).")
    _data: bytes | None = PrivateAttr(default=None)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        path = check_relative_path(value)
        if path in RESERVED_INPUT_PATHS:
            raise ValueError(f"{path!r} is reserved for the code itself")
        return path

    @model_validator(mode="after")
    def _decode(self) -> InputFile:
        # Once per file: an instance met again inside a request keeps its bytes.
        if self._data is None:
            try:
                self._data = base64.b64decode(self.content_b64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"content_b64 is not valid base64: {exc}") from exc
        return self

    @classmethod
    def from_bytes(cls, path: str, data: bytes) -> InputFile:
        return cls(path=path, content_b64=base64.b64encode(data).decode())

    @property
    def data(self) -> bytes:
        return self._data or b""


PUBLISH_NAME = r"^[A-Z][A-Z0-9_]{0,31}$"
MAX_EGRESS_RULES = 64
MAX_PUBLISHED = 16


class EgressRequest(BaseModel):
    """``network: {"allow": [...]}``: reach exactly these hosts, through the daemon's checked
    proxy (the sandbox itself keeps no network interface but ``lo``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: tuple[Annotated[str, AfterValidator(check_rule)], ...] = Field(
        max_length=MAX_EGRESS_RULES,
        description="Hosts the code may reach through HTTP_PROXY/HTTPS_PROXY: `example.com`, "
        "`*.example.com`, optionally `:port`; a subset of the server's egress allow-list.",
    )
    publish: dict[
        Annotated[str, Field(pattern=PUBLISH_NAME)],
        Annotated[str, AfterValidator(check_destination)],
    ] = Field(
        default_factory=dict,
        max_length=MAX_PUBLISHED,
        description="NAME -> host:port for clients that speak no proxy (databases): each is a "
        "local port, told to the code as AI_DATA_AGENT_EGRESS_<NAME>=127.0.0.1:<port>.",
    )


def _network_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "flag"
    return "egress" if isinstance(value, dict | EgressRequest) else None


# ``network``: a flag, or an allow-list; one error at ``network`` for anything else.
NetworkOption = Annotated[
    Annotated[StrictBool, Tag("flag")] | Annotated[EgressRequest, Tag("egress")],
    Discriminator(
        _network_kind,
        custom_error_type="network",
        custom_error_message='Input should be true, false or {"allow": [...]}',
    ),
]


class Limits(BaseModel):
    """Resolved limits of one run (request values bounded by settings)."""

    model_config = ConfigDict(frozen=True)

    timeout_s: float
    memory_mb: int
    cpus: float
    network: bool  # unrestricted network (the server allows it)
    egress: EgressRequest | None = None  # reach these hosts through the egress proxy


def _unique_paths(value: list[InputFile]) -> list[InputFile]:
    seen: set[str] = set()
    for item in value:
        if item.path in seen:
            raise ValueError(f"input path {item.path!r} given twice")
        seen.add(item.path)
    # A file and a directory of the same name cannot both exist.
    for item in value:
        parts = item.path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in seen:
                raise ValueError(f"input path {item.path!r} lies under the file {parts[0]!r}")
    return value


def _check_env(value: dict[str, str]) -> dict[str, str]:
    for name, val in value.items():
        if not ENV_NAME.match(name):
            raise ValueError(f"env name {name[:40]!r} is not a valid variable name")
        if name.upper() in RESERVED_ENV_EXACT or name.upper().startswith(RESERVED_ENV_PREFIXES):
            raise ValueError(f"env name {name!r} is reserved for the sandbox")
        if "\x00" in val:
            raise ValueError(f"env {name!r} contains a NUL byte")
    return value


# Field types shared by runs and sessions.
RequirementLine = Annotated[
    str, Field(max_length=MAX_REQUIREMENT_LENGTH), AfterValidator(check_requirement)
]
EnvVars = Annotated[dict[str, str], AfterValidator(_check_env)]
InputFiles = Annotated[list[InputFile], AfterValidator(_unique_paths)]


class RunRequest(BaseModel):
    """What to run. Limits left unset take the server's defaults.

    Numbers and flags are strict, as the API takes them: ``"10"`` is not a
    number and ``"no"`` is not a boolean (an int is a float, though).
    """

    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="Python source, run as the main module.")
    requirements: list[RequirementLine] = Field(
        default_factory=list, description="PEP 508 requirements from the configured index."
    )
    timeout_s: StrictFloat | None = Field(
        None, gt=0, description="Wall-clock limit of the code (seconds)."
    )
    memory_mb: StrictInt | None = Field(None, ge=64, description="Memory limit (MiB, swap equal).")
    cpus: StrictFloat | None = Field(None, gt=0, le=64, description="CPU limit (cores).")
    network: NetworkOption = Field(
        False,
        description="Network for user code: `true` is unrestricted (if the server allows it); "
        '`{"allow": [...]}` reaches only those hosts, through the egress proxy.',
    )
    env: EnvVars = Field(default_factory=dict, description="Extra environment variables.")
    files: InputFiles = Field(
        default_factory=list, description="Input files, placed under the working directory."
    )
    install_mode: Literal["cache", "per_run"] | None = Field(
        None,
        description="Override the server's install mode (per_run: pip installs into the run's own sandbox dir).",
    )
    datasets: DatasetMounts = Field(
        default_factory=list,
        description="Datasets mounted read-only, at /data/<name> unless a mount says otherwise: "
        '"sales" (the latest version), "sales@3", or {"name", "version", "path"}. The record '
        "names the version each resolved to.",
    )
    save_outputs_as: DatasetName | None = Field(
        None, description="Store the files left under outputs/ as a new version of this dataset."
    )


class PackageInfo(BaseModel):
    name: str
    version: str


class InstallReport(BaseModel):
    requirements: list[str] = Field(default_factory=list)
    packages: list[PackageInfo] = Field(
        default_factory=list, description="Every distribution installed into the sandbox dir."
    )
    installer: str | None = Field(
        None, description="uv or pip; null when nothing was installed for this run."
    )
    fallback_triggered: bool = False
    cache_hit: bool = Field(False, description="The environment came from the cache.")
    mode: Literal["cache", "per_run"] | None = Field(
        None, description="cache or per_run; null when the run has no requirements."
    )
    log_tail: str = Field("", description="The end of the installer's output.")


class Timings(BaseModel):
    install_s: float = 0.0
    execute_s: float = 0.0
    total_s: float = 0.0


class EnvironmentInfo(BaseModel):
    platform: str = ""
    python_version: str = ""
    path_separator: str = ""
    pythonpath: str = ""
    home: str = ""
    sandbox_dir: str = ""
    uid: int | None = None
    sandbox_removed: bool | None = Field(
        None, description="Whether the runner removed its sandbox dir at the end."
    )
    mismatches: list[str] = Field(
        default_factory=list, description="Differences between install, verify and execute envs."
    )
    preimported: list[str] = Field(
        default_factory=list,
        description="Modules the code's interpreter had imported before the code came (a "
        "pre-imported warm sandbox of its requirement set); empty otherwise.",
    )


class Artifact(BaseModel):
    """A file the code left under ``outputs/``, checked by the controller (size, sha256).

    Its ``path`` is relative to ``outputs/``, for runs and cells alike (a run's
    artifacts are fetched by it); in a session's working directory, whose files
    API takes paths relative to that directory, it is ``file_path``.
    """

    path: str = Field(description="Relative to outputs/ (in a session's files: outputs/<path>).")
    size: int
    sha256: str
    media_type: str

    @property
    def file_path(self) -> str:
        """The artifact's path under the working directory: ``outputs/<path>``."""
        return f"{OUTPUTS_DIR}/{self.path}"


class DisplayOutput(BaseModel):
    """A MIME bundle: ``text/plain`` always; ``text/html``, ``image/png`` (base64) and others
    when the object offers them."""

    data: dict[str, Any]
    metadata: dict[str, Any] = Field(default_factory=dict)
    truncated: bool = Field(False, description="Richer representations dropped to fit the caps.")


class SkippedArtifact(BaseModel):
    path: str
    reason: str


class RunResult(BaseModel):
    """The outcome of one run. Bad code gives a status here, never an exception."""

    id: str
    status: RunStatus
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timings: Timings = Field(default_factory=Timings)
    install: InstallReport = Field(default_factory=InstallReport)
    environment: EnvironmentInfo = Field(default_factory=EnvironmentInfo)
    artifacts: list[Artifact] = Field(default_factory=list)
    artifacts_skipped: list[SkippedArtifact] = Field(
        default_factory=list, description="Files under outputs/ not returned, and why (first 100)."
    )
    artifacts_truncated: bool = Field(False, description="A count or size cap was hit.")
    image: str = ""
    error: str | None = Field(None, description="What went wrong, for `error` and kills.")
    cpu_seconds: float | None = Field(
        None, description="CPU time its container used (host-side cgroup); None: not read."
    )
    datasets: list[DatasetMount] = Field(
        default_factory=list, description="The dataset versions mounted, pinned."
    )
    saved_as: SavedDataset | None = Field(
        None, description="The dataset version save_outputs_as made (or why none)."
    )
    result: DisplayOutput | None = Field(
        None,
        description="The value of the code's last expression as a MIME bundle, as a cell's "
        "`result`; None when the code does not end with an expression (or ends with `;`), "
        "the value is None, or the code did not finish.",
    )
