"""The one settings object, read from ``AI_DATA_AGENT_*`` variables.

Build it once at the entry point (CLI, daemon, test) and pass it down; nothing
in the package reads the environment on its own::

    settings = Settings()                       # from the environment
    settings = Settings(max_timeout_s=30)       # or explicitly, e.g. in tests
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import NoDecode, SettingsConfigDict

from ai_data_agent.egress_settings import EgressSettings
from ai_data_agent.requirements import check_requirement
from ai_data_agent.storage_settings import StorageSettings

__all__ = [
    "DEFAULT_FALLBACK_IMAGE",
    "DEFAULT_SANDBOX_IMAGE",
    "SYSTEM_CA_BUNDLES",
    "Settings",
    "system_ca_bundle",
    "user_cache_dir",
]

DEFAULT_SANDBOX_IMAGE = "python:3.12-slim"
DEFAULT_FALLBACK_IMAGE = "ai-data-agent/base:bookworm"
MiB = 1024 * 1024
RequirementText = Annotated[str, AfterValidator(check_requirement)]
COMMA_SEPARATED = "api_tokens mcp_allowed_hosts egress_allow egress_deny egress_allow_cidrs".split()
# Where hosts keep the system CA bundle, in the order Go's crypto/x509 looks on Linux.
SYSTEM_CA_BUNDLES = (
    Path("/etc/ssl/certs/ca-certificates.crt"),  # Debian, Ubuntu, Gentoo, Arch, Alpine
    Path("/etc/pki/tls/certs/ca-bundle.crt"),  # Fedora, RHEL
    Path("/etc/ssl/ca-bundle.pem"),  # openSUSE
    Path("/etc/pki/tls/cacert.pem"),  # OpenELEC
    Path("/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"),  # CentOS, RHEL 7+
    Path("/etc/ssl/cert.pem"),  # Alpine, macOS, the BSDs
)


def system_ca_bundle() -> Path | None:
    """The host's CA bundle: ``SSL_CERT_FILE`` when it names a file, else the first system one.

    ``SSL_CERT_FILE`` is how a host tells OpenSSL (so Python, curl, uv, pip) which
    CAs to trust, a TLS-intercepting proxy's included; the system bundle is what
    the host's own tools trust otherwise. None when there is neither.
    """
    named = os.environ.get("SSL_CERT_FILE")
    for path in (*([Path(named)] if named else []), *SYSTEM_CA_BUNDLES):
        if path.is_file():
            return path.resolve()
    return None


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ai-data-agent`` (``~/.cache`` by default): the host user's own state."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ai-data-agent"


class Settings(StorageSettings, EgressSettings):
    """Server-side policy and plumbing. A request can lower limits, never raise them."""

    model_config = SettingsConfigDict(env_prefix="AI_DATA_AGENT_", extra="forbid")

    # Image ------------------------------------------------------------------
    sandbox_image: str = Field(
        DEFAULT_SANDBOX_IMAGE,
        description="Image for sandboxes; any image with python3 >= 3.9, used unmodified.",
    )
    fallback_image: str = Field(
        DEFAULT_FALLBACK_IMAGE,
        description="Local image (`make images`) used when the default image is neither "
        "present nor pullable. Not used when sandbox_image is set explicitly.",
    )
    pull_missing_image: bool = Field(True, description="Try `docker pull` for a missing image.")
    runtime: str = Field("runc", description="OCI runtime: runc, or runsc for gVisor.")

    # Limits: defaults and caps ---------------------------------------------
    default_timeout_s: float = Field(
        60.0, gt=0, description="Wall-clock limit of the code when a request sets none."
    )
    max_timeout_s: float = Field(600.0, gt=0, description="Highest timeout a request may ask for.")
    default_memory_mb: int = Field(
        2048, ge=64, description="Memory limit (MiB, swap equal) by default."
    )
    max_memory_mb: int = Field(
        2048, ge=64, description="Highest memory limit a request may ask for."
    )
    memory_reservation_mb: int = Field(
        512, ge=0, description="Soft memory reservation of a sandbox."
    )
    default_cpus: float = Field(1.0, gt=0, description="CPU limit (cores) by default.")
    max_cpus: float = Field(1.0, gt=0, description="Highest CPU limit a request may ask for.")
    pids_limit: int = Field(256, ge=16, description="Processes and threads per sandbox.")
    tmpfs_mb: int = Field(1024, ge=16, description="Size of the sandbox's /tmp (counts as memory).")
    install_timeout_s: float = Field(
        300.0, gt=0, description="Time an install of requirements may take."
    )
    install_cpus: float = Field(
        2.0,
        gt=0,
        description="CPUs of an install sandbox and of the background bytecode compile of a "
        "new environment (bounded by the host's).",
    )
    stdout_limit_bytes: int = Field(1 * MiB, ge=1024, description="Output kept of stdout.")
    stderr_limit_bytes: int = Field(1 * MiB, ge=1024, description="Output kept of stderr.")
    output_policy: Literal["truncate", "kill"] = Field(
        "truncate",
        description="At the output cap: keep running and drop the rest (truncate), "
        "or stop the run with status output_exceeded (kill).",
    )
    install_log_limit_bytes: int = Field(
        16 * 1024, ge=1024, description="Tail of the installer log kept."
    )

    # Installs, the environment cache and the warm pool -------------------------
    install_mode: Literal["cache", "per_run"] = Field(
        "cache",
        description="cache: each requirement set is installed once into a shared read-only "
        "environment; per_run: pip installs into every run's own sandbox dir.",
    )
    installer: Literal["uv", "pip"] = Field(
        "uv", description="uv (pip is the fallback when uv is missing or fails), or pip alone."
    )
    uv_binary: Path | None = Field(
        None,
        description="The uv executable shipped into install sandboxes; default: the uv "
        "package installed with ai-data-agent, else uv on PATH.",
    )
    uv_shared_cache: bool = Field(
        True,
        description="One uv download cache for all installs (wheels only unless "
        "allow_sdists, so no package code runs while it is writable).",
    )
    allow_sdists: bool = Field(
        False, description="Allow source distributions (their build code runs at install time)."
    )
    env_cache_index: Path | None = Field(
        None,
        description="SQLite index of cached environments; default one per Docker engine, "
        "shared by the CLI and daemons of this user: "
        "$XDG_CACHE_HOME/ai-data-agent/engines/<engine id>/envcache.sqlite3 (~/.cache by default).",
    )
    env_cache_max_bytes: int = Field(20 * 1024 * MiB, ge=0, description="LRU bound of the cache.")
    env_cache_max_age_s: float = Field(
        30 * 24 * 3600.0, gt=0, description="Unused this long: evicted."
    )
    prewarm: list[list[RequirementText]] = Field(
        default_factory=list,
        description="Requirement sets the daemon installs into the cache at start, in the "
        'background (JSON, e.g. [["pandas","matplotlib"],["numpy"]]); a first run of one of '
        "them is a cache hit. /readyz reports the progress without waiting for it.",
    )
    pool_size: int = Field(
        0,
        ge=0,
        description="Warm containers per profile (at most); 0 disables the pool. A run's "
        "container, pooled or fresh, is removed in the background right after its result.",
    )
    pool_ttl_s: float = Field(
        300.0, gt=0, description="A pooled container older than this is recycled."
    )
    pool_memory_mb: int = Field(
        1024, ge=64, description="Resident memory all pooled sandboxes together may hold."
    )
    pool_recent_sets: int = Field(
        2, ge=0, description="Sets asked for often lately also get a pre-imported pool profile."
    )
    pool_preimport: list[str] | None = Field(
        None,
        description="Modules a pre-imported sandbox imports where its set has them; default: "
        "the top-level modules of the set's own requirements (matplotlib with pyplot).",
    )

    # Sessions ----------------------------------------------------------------------
    max_sessions: int = Field(
        4, ge=0, description="Live sessions at once (each holds a container); 0 disables sessions."
    )
    memory_budget_mb: int | None = Field(
        None,
        ge=0,
        description="Memory the sandboxes of this host may hold: live sessions plus the runs "
        "in flight at the default limit. Beyond it, a new session gets 429 session_limit. "
        "Default: 80% of the host's memory.",
    )
    session_idle_timeout_s: float = Field(
        600.0, gt=0, description="A session with no call for this long expires."
    )
    session_max_lifetime_s: float = Field(
        3600.0, gt=0, description="A session expires this long after it started, busy or not."
    )
    session_default_memory_mb: int = Field(
        2048, ge=64, description="Memory limit of a session (MiB, swap equal) by default."
    )
    session_max_memory_mb: int = Field(
        2048, ge=64, description="Highest memory limit a session may ask for."
    )
    session_default_cpus: float = Field(1.0, gt=0, description="CPU limit of a session by default.")
    session_max_cpus: float = Field(1.0, gt=0, description="Highest CPU a session may ask for.")
    cell_timeout_s: float = Field(
        60.0, gt=0, description="Time limit of a cell when neither it nor its session sets one."
    )
    session_idle_action: Literal["pause", "expire"] = Field(
        "pause",
        description="An idle session is paused (checkpointed, container removed) or expired.",
    )
    session_paused_retention_s: float = Field(
        7 * 24 * 3600.0, gt=0, description="A paused session expires this long after its last call."
    )
    checkpoint_after_each_cell: bool = Field(
        False, description="Checkpoint after every cell (after its answer): a crash loses one cell."
    )
    checkpoint_max_bytes: int = Field(4096 * MiB, ge=1024, description="Largest checkpoint.")
    checkpoint_timeout_s: float = Field(120.0, gt=0, description="Time a checkpoint may take.")
    checkpoints_kept: int = Field(3, ge=1, description="Checkpoints kept per session, newest.")
    interrupt_grace_s: float = Field(
        2.0,
        ge=0,
        description="After a cell's timeout or an interrupt, time the code gets to stop before "
        "the kernel is killed and restarted (its state lost).",
    )
    display_max_bytes: int = Field(
        2 * MiB, ge=1024, description="Largest rich output (one MIME bundle as JSON)."
    )
    cell_display_max_bytes: int = Field(
        8 * MiB, ge=1024, description="Rich outputs of one cell in all; beyond, they are dropped."
    )

    # Files in and out ------------------------------------------------------------
    max_input_files: int = Field(100, ge=0, description="Most input files in one request.")
    max_input_file_bytes: int = Field(32 * MiB, ge=0, description="Largest input file.")
    max_input_total_bytes: int = Field(64 * MiB, ge=0, description="Input files in all.")
    max_artifacts: int = Field(100, ge=0, description="Files returned from outputs/ per run.")
    max_artifact_total_bytes: int = Field(64 * MiB, ge=0, description="Their total size.")

    # Request validation ------------------------------------------------------
    max_code_bytes: int = Field(1 * MiB, ge=1, description="Largest code accepted.")
    max_requirements: int = Field(100, ge=0, description="Most requirements in one request.")
    max_env_vars: int = Field(64, ge=0, description="Most environment variables in one request.")
    max_env_value_bytes: int = Field(32 * 1024, ge=1, description="Largest value of one variable.")

    # Network and packages ----------------------------------------------------
    allow_network: bool = Field(
        False, description="Whether a request may ask for network during user code."
    )
    install_network: str = Field(
        "bridge", description="Docker network attached while requirements install."
    )
    pip_index_url: str | None = Field(None, description="Package index for installs.")
    ca_bundle: Path | None = Field(
        default_factory=system_ca_bundle,
        description="CA bundle file trusted by installs (mounted read-only; PIP_CERT, "
        "SSL_CERT_FILE, REQUESTS_CA_BUNDLE point at it), so that installs work behind a "
        "TLS-intercepting proxy. Default (also when empty): the host's, i.e. the file named by "
        "SSL_CERT_FILE, else the first of /etc/ssl/certs/ca-certificates.crt, "
        "/etc/pki/tls/certs/ca-bundle.crt, /etc/ssl/ca-bundle.pem, /etc/pki/tls/cacert.pem, "
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem, /etc/ssl/cert.pem that exists; "
        "none if there is none. `none`: no bundle (installs use their own CA list).",
    )
    env_passthrough: list[str] = Field(
        default_factory=list,
        description="Names of controller environment variables passed into sandboxes. "
        "Nothing else of the controller's environment reaches a container.",
    )

    # Operations --------------------------------------------------------------
    docker_host: str | None = Field(
        None, description="Docker endpoint; default: DOCKER_HOST or the local socket."
    )
    docker_timeout_s: float = Field(60.0, gt=0, description="Timeout of one Docker API call.")
    log_level: str = Field(
        "INFO",
        description="Log level (also LOG_LEVEL).",
        validation_alias=AliasChoices("AI_DATA_AGENT_LOG_LEVEL", "LOG_LEVEL", "log_level"),
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="text, or json lines for log shippers (also LOG_FORMAT).",
        validation_alias=AliasChoices("AI_DATA_AGENT_LOG_FORMAT", "LOG_FORMAT", "log_format"),
    )
    stop_grace_s: float = Field(
        2.0, ge=0, description="Slack on top of a run's timeout before the controller kills it."
    )

    # Daemon ------------------------------------------------------------------
    data_dir: Path = Field(Path("data"), description="Run records (SQLite) and stored results.")
    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Accepted bearer tokens, comma-separated."
    )
    api_token_file: Path | None = Field(None, description="File with one accepted token a line.")
    max_concurrent_runs: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, description="Containers at once."
    )
    max_queued_runs: int = Field(32, ge=0, description="Runs waiting beyond that; then 429.")
    max_body_bytes: int = Field(16 * MiB, ge=1024, description="Largest request body accepted.")
    body_discard_max_bytes: int = Field(
        1024 * MiB,
        ge=0,
        description="After an answer sent while the request body is still arriving (a 413 "
        "over a body cap, or another early error), at most this much of the rest is read and "
        "discarded before the connection closes, so that clients which send the whole body "
        "before reading (urllib, requests) get the answer rather than a reset; a body declared "
        "longer is not waited for. 0: close at once.",
    )
    body_discard_timeout_s: float = Field(
        30.0,
        ge=0,
        description="How long that discarding may take in all (it also ends after 5 s without "
        "data, as nginx's lingering close). 0: close at once.",
    )
    retention_max_age_s: float = Field(7 * 24 * 3600.0, gt=0, description="Records kept this long.")
    retention_max_runs: int = Field(10_000, ge=1, description="At most this many records kept.")
    audit_retention_s: float = Field(90 * 86400.0, gt=0, description="Audit log kept this long.")
    audit_fsync: bool = Field(
        False, description="One node: sync each audit commit to disk (survives power loss too)."
    )
    shutdown_grace_s: float = Field(30.0, ge=0, description="On SIGTERM, time runs get to finish.")
    reaper_interval_s: float = Field(
        30.0, gt=0, description="How often expired sandboxes are swept."
    )

    # Operator console (/console) -------------------------------------------------
    console_enabled: bool = Field(
        True, description="Serve the operator console at /console (docs/console.md)."
    )
    console_secret: SecretStr | None = Field(
        None,
        description="Key that signs the console's session cookies. Unset: a key made once in "
        "data_dir (console.key, mode 0600). Give every API node of a cluster the same one.",
    )

    # MCP server (the `mcp` extra) ---------------------------------------------
    mcp_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost", "[::1]"],
        description="Host header values /mcp answers (any port), comma-separated; others get "
        "421, against DNS rebinding. Add the name clients use to reach the daemon.",
    )
    mcp_max_images: int = Field(
        4, ge=0, description="PNG images (figures, image outputs) returned in one tool result."
    )
    mcp_cell_timeout_s: float = Field(
        45.0,
        gt=0,
        description="Time limit of run_python when the call sets none: under the 60 s that "
        "common MCP clients wait for a tool (see docs/mcp.md).",
    )
    mcp_stateless: bool = Field(
        True,
        description="/mcp without MCP sessions (each request stands alone). False keeps MCP "
        "sessions, so that a 2025-era client's notifications/cancelled reaches its call.",
    )

    # Cluster (PostgreSQL) --------------------------------------------------------
    database_url: SecretStr | None = Field(
        None,
        description="postgresql://ROLE@HOST:PORT/DB: API nodes and workers share this "
        "PostgreSQL as store and queue (docs/scale-out.md). Unset: one node, SQLite in data_dir.",
    )
    database_password_file: Path | None = Field(
        None, description="File holding this role's database password (kept out of the URL)."
    )
    database_sslmode: (
        Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None
    ) = Field(None, description="libpq sslmode for the database; verify-full between machines.")
    database_sslrootcert: Path | None = Field(
        None, description="CA certificate that signed the database server's certificate."
    )
    lease_timeout_s: float = Field(
        30.0,
        gt=0,
        description="A worker silent this long is dead: its runs become interrupted (never "
        "re-run) and its sessions lost.",
    )
    heartbeat_interval_s: float = Field(
        5.0, gt=0, description="How often a worker renews its lease; well below lease_timeout_s."
    )
    queue_poll_s: float = Field(
        15.0,
        gt=0,
        description="Safety-net poll of the database queue; wake-ups come by LISTEN/NOTIFY.",
    )
    worker_name: str | None = Field(
        None, description="This worker's name in the cluster; default: the host name."
    )

    # Client ------------------------------------------------------------------
    server: str | None = Field(None, description="Daemon URL: the CLI sends runs there.")
    token: SecretStr | None = Field(None, description="Bearer token the client sends.")

    @field_validator(*COMMA_SEPARATED, mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle_is_a_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"CA bundle {value} is not a readable file")
        return value.resolve() if value is not None else None

    @field_validator("ca_bundle", mode="before")
    @classmethod
    def _none_or_default(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() == "none":
            return None
        return system_ca_bundle() if value == "" else value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError("must be a postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> Settings:
        if self.heartbeat_interval_s * 2 > self.lease_timeout_s:
            raise ValueError(
                f"heartbeat_interval_s ({self.heartbeat_interval_s:g}) must be at most half "
                f"of lease_timeout_s ({self.lease_timeout_s:g})"
            )
        return self

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @property
    def storage_root(self) -> Path:
        """Where blobs are kept (`storage_dir`, else under `data_dir`)."""
        return self.storage_dir or self.data_dir / "storage"

    @property
    def clustered(self) -> bool:
        """True when the store and queue are a shared PostgreSQL (``database_url``)."""
        return self.database_url is not None

    @property
    def image_is_explicit(self) -> bool:
        """True when the operator chose the sandbox image (no silent fallback then)."""
        return "sandbox_image" in self.model_fields_set

    def accepted_tokens(self) -> set[str]:
        """Tokens from the setting and the token file (read now, so rotation needs no restart)."""
        tokens = {t.get_secret_value() for t in self.api_tokens}
        if self.api_token_file is not None:
            text = self.api_token_file.read_text(encoding="utf-8")
            tokens |= {line.strip() for line in text.splitlines() if line.strip()}
        return tokens

    def session_memory_budget_mb(self) -> int:
        """The budget sessions count against (see ``memory_budget_mb``)."""
        if self.memory_budget_mb is not None:
            return self.memory_budget_mb
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            return 0
        return int(total * 0.8) // MiB

    def uv_path(self) -> Path | None:
        """The uv executable to ship into install sandboxes, if there is one."""
        if self.uv_binary is not None:
            return self.uv_binary if self.uv_binary.is_file() else None
        try:
            import uv

            return Path(uv.find_uv_bin())
        except (ImportError, FileNotFoundError):
            found = shutil.which("uv")
            return Path(found) if found else None

    def passthrough_env(self) -> dict[str, str]:
        """The controller variables the operator listed, as they are now."""
        return {name: os.environ[name] for name in self.env_passthrough if name in os.environ}
