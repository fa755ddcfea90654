"""The egress part of the one `Settings` object: the hosts a sandbox may reach through the
checked proxy, and the proxy's caps (docs/security.md "Egress").

    settings = Settings(egress_allow=["files.example.com:443"])    # AI_DATA_AGENT_EGRESS_...

`settings.Settings` inherits these fields (one object, one prefix, read once at
the entry point; comma-separated lists are split there); they are declared
here only to keep each module readable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ai_data_agent.egress.rules import check_network, check_rule

__all__ = ["EgressSettings"]

MiB = 1024 * 1024
EgressRules = Annotated[list[Annotated[str, AfterValidator(check_rule)]], NoDecode]
EgressNetworks = Annotated[list[Annotated[str, AfterValidator(check_network)]], NoDecode]


class EgressSettings(BaseSettings):
    """Egress: hosts reached through a checked proxy; off while ``egress_allow`` is empty."""

    model_config = SettingsConfigDict(env_prefix="AI_DATA_AGENT_", extra="forbid")

    egress_allow: EgressRules = Field(
        default_factory=list,
        description="Hosts a run or session may ask for, comma-separated: `example.com`, `*.example."
        "com` (subdomains), `*`, an IP address; each optionally `:port`. Empty: egress is off.",
    )
    egress_deny: EgressRules = Field(default_factory=list, description="Hosts never reached.")
    egress_allow_cidrs: EgressNetworks = Field(
        default_factory=list, description="Non-global ranges (CIDRs) reachable all the same."
    )
    egress_max_connections: int = Field(16, ge=1, description="Proxied connections per sandbox.")
    egress_max_bytes_out: int = Field(64 * MiB, ge=0, description="Bytes a sandbox may send.")
    egress_max_bytes_in: int = Field(1024 * MiB, ge=0, description="Bytes a sandbox may receive.")
    egress_idle_timeout_s: float = Field(60.0, gt=0, description="Seconds an idle tunnel lives.")
    egress_socket_dir: Path | None = Field(
        None,
        description="Folder of the proxy's per-sandbox Unix sockets, bind-mounted into sandboxes: "
        "the Docker engine must see the same path. Default: a private temporary folder.",
    )
