"""How the tests and the benchmark make settings: without the shell's, with the host's CA bundle.

    settings = build_settings({"default_timeout_s": 30, "ca_bundle": ca_bundle()})
    env = child_env({"pool_size": 2})   # the same values for a daemon subprocess

`Settings()` reads ``AI_DATA_AGENT_*`` variables (and the ``LOG_LEVEL`` and
``LOG_FORMAT`` aliases). The Makefile exports some and a developer's shell may
hold others, so settings made here never see any of them: only the values
given. The two that describe this host (the CA bundle a TLS-intercepting proxy
needs, the sandbox image to use) are read once, at import, before the root
conftest starts clearing them around each test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ai_data_agent.settings import Settings

__all__ = ["build_settings", "ca_bundle", "child_env", "is_settings_variable", "sandbox_image"]

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PREFIX = "AI_DATA_AGENT_"
ALIASES = ("LOG_LEVEL", "LOG_FORMAT")  # unprefixed names Settings also reads
_ENV_CA_BUNDLE = os.environ.get(PREFIX + "CA_BUNDLE") or None
_ENV_SANDBOX_IMAGE = os.environ.get(PREFIX + "SANDBOX_IMAGE") or None


def is_settings_variable(name: str) -> bool:
    upper = name.upper()
    return upper.startswith(PREFIX) or upper in ALIASES


def ca_bundle() -> Path | None:
    """``AI_DATA_AGENT_CA_BUNDLE`` as the run started, else the host's Debian bundle, if any."""
    if _ENV_CA_BUNDLE:
        return Path(_ENV_CA_BUNDLE)
    return HOST_CA_BUNDLE if HOST_CA_BUNDLE.is_file() else None


def sandbox_image() -> str | None:
    """``AI_DATA_AGENT_SANDBOX_IMAGE`` as the run started (None: the default resolves)."""
    return _ENV_SANDBOX_IMAGE


@contextmanager
def _without_settings_variables() -> Iterator[None]:
    saved = {name: os.environ.pop(name) for name in list(os.environ) if is_settings_variable(name)}
    try:
        yield
    finally:
        os.environ.update(saved)


def build_settings(values: Mapping[str, Any]) -> Settings:
    """`Settings` of exactly ``values`` (and defaults), whatever the environment holds."""
    with _without_settings_variables():
        return Settings(**values)


def child_env(values: Mapping[str, Any], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (this process's environment) without settings variables, plus ``values`` as
    ``AI_DATA_AGENT_<NAME>`` (None leaves a field at its default)."""
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if not is_settings_variable(k)
    }
    for name, value in values.items():
        if value is not None:
            env[PREFIX + name.upper()] = str(value)
    return env
