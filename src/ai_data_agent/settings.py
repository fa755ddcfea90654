"""The one settings object, read from ``AI_DATA_AGENT_*`` variables.

Build it once at the entry point (CLI, daemon, test) and pass it down; nothing
in the package reads the environment on its own::

    settings = Settings()                       # from the environment
    settings = Settings(max_timeout_s=30)       # or explicitly, e.g. in tests
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_FALLBACK_IMAGE", "DEFAULT_SANDBOX_IMAGE", "Settings"]

DEFAULT_SANDBOX_IMAGE = "python:3.12-slim"
DEFAULT_FALLBACK_IMAGE = "ai-data-agent/base:bookworm"
MiB = 1024 * 1024


class Settings(BaseSettings):
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
    pull_timeout_s: float = Field(120.0, gt=0)
    runtime: str = Field("runc", description="OCI runtime: runc, or runsc for gVisor.")

    # Limits: defaults and caps ---------------------------------------------
    default_timeout_s: float = Field(60.0, gt=0)
    max_timeout_s: float = Field(600.0, gt=0)
    default_memory_mb: int = Field(2048, ge=64)
    max_memory_mb: int = Field(2048, ge=64)
    memory_reservation_mb: int = Field(512, ge=0)
    default_cpus: float = Field(1.0, gt=0)
    max_cpus: float = Field(1.0, gt=0)
    pids_limit: int = Field(256, ge=16)
    tmpfs_mb: int = Field(1024, ge=16, description="Size of the sandbox's /tmp (counts as memory).")
    install_timeout_s: float = Field(300.0, gt=0)
    stdout_limit_bytes: int = Field(1 * MiB, ge=1024)
    stderr_limit_bytes: int = Field(1 * MiB, ge=1024)
    output_policy: Literal["truncate", "kill"] = Field(
        "truncate",
        description="At the output cap: keep running and drop the rest (truncate), "
        "or stop the run with status output_exceeded (kill).",
    )
    install_log_limit_bytes: int = Field(16 * 1024, ge=1024)

    # Request validation ------------------------------------------------------
    max_code_bytes: int = Field(1 * MiB, ge=1)
    max_requirements: int = Field(100, ge=0)
    max_env_vars: int = Field(64, ge=0)
    max_env_value_bytes: int = Field(32 * 1024, ge=1)

    # Network and packages ----------------------------------------------------
    allow_network: bool = Field(
        False, description="Whether a request may ask for network during user code."
    )
    install_network: str = Field(
        "bridge", description="Docker network attached while requirements install."
    )
    pip_index_url: str | None = Field(None, description="Package index for installs.")
    ca_bundle: Path | None = Field(
        None,
        description="CA bundle file trusted by installs (mounted read-only; PIP_CERT, "
        "SSL_CERT_FILE, REQUESTS_CA_BUNDLE point at it). Needed behind TLS-intercepting proxies.",
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
        "INFO", validation_alias=AliasChoices("AI_DATA_AGENT_LOG_LEVEL", "LOG_LEVEL", "log_level")
    )
    stop_grace_s: float = Field(
        2.0, ge=0, description="Slack on top of a run's timeout before the controller kills it."
    )

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle_is_a_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"CA bundle {value} is not a readable file")
        return value.resolve() if value is not None else None

    @field_validator("ca_bundle", mode="before")
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @property
    def image_is_explicit(self) -> bool:
        """True when the operator chose the sandbox image (no silent fallback then)."""
        return "sandbox_image" in self.model_fields_set

    def passthrough_env(self) -> dict[str, str]:
        """The controller variables the operator listed, as they are now."""
        return {name: os.environ[name] for name in self.env_passthrough if name in os.environ}
