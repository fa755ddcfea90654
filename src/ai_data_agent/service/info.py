"""What ``GET /v1/info`` tells clients: the daemon's version, limits, caps and features.

    info = server_info(settings)
    info.limits.timeout_s.max        # the highest timeout a request may ask for

Everything comes from the settings the daemon runs with (and the constants of
its own waits), so a client reads the limits instead of copying them.
"""

from __future__ import annotations

from ai_data_agent import __version__
from ai_data_agent.api_models import LimitRange, RunLimitsInfo, ServerInfo, SessionsInfo
from ai_data_agent.limits import default_limits
from ai_data_agent.mcp import available as mcp_available
from ai_data_agent.service.node import CANCEL_WAIT_S
from ai_data_agent.settings import Settings

__all__ = ["FEATURES", "MCP", "SESSIONS", "server_info"]

# runs: POST/GET/DELETE /v1/runs; files: input files (JSON or multipart);
# artifacts: /v1/runs/{id}/artifacts; events: /v1/runs/{id}/events (SSE);
# sessions: /v1/sessions, unless max_sessions is 0; mcp: /mcp, with the mcp extra.
FEATURES = ("runs", "files", "artifacts", "events")
SESSIONS = "sessions"
MCP = "mcp"


def server_info(settings: Settings) -> ServerInfo:
    defaults = default_limits(settings)
    return ServerInfo(
        version=__version__,
        features=[
            *FEATURES,
            *([SESSIONS] if settings.max_sessions > 0 else []),
            *([MCP] if mcp_available() else []),
        ],
        limits=RunLimitsInfo(
            timeout_s=LimitRange(default=defaults.timeout_s, max=settings.max_timeout_s),
            memory_mb=LimitRange(default=defaults.memory_mb, max=settings.max_memory_mb),
            cpus=LimitRange(default=defaults.cpus, max=settings.max_cpus),
        ),
        install_timeout_s=settings.install_timeout_s,
        allow_network=settings.allow_network,
        egress_allow=list(settings.egress_allow),
        cancel_wait_s=CANCEL_WAIT_S,
        max_body_bytes=settings.max_body_bytes,
        max_code_bytes=settings.max_code_bytes,
        max_requirements=settings.max_requirements,
        max_env_vars=settings.max_env_vars,
        max_env_value_bytes=settings.max_env_value_bytes,
        max_input_files=settings.max_input_files,
        max_input_file_bytes=settings.max_input_file_bytes,
        max_input_total_bytes=settings.max_input_total_bytes,
        max_artifacts=settings.max_artifacts,
        max_artifact_total_bytes=settings.max_artifact_total_bytes,
        stdout_limit_bytes=settings.stdout_limit_bytes,
        stderr_limit_bytes=settings.stderr_limit_bytes,
        output_policy=settings.output_policy,
        sessions=sessions_info(settings) if settings.max_sessions > 0 else None,
    )


def sessions_info(settings: Settings) -> SessionsInfo:
    s = settings
    return SessionsInfo(
        max_sessions=s.max_sessions,
        cell_timeout_s=LimitRange(default=s.cell_timeout_s, max=s.max_timeout_s),
        memory_mb=LimitRange(default=s.session_default_memory_mb, max=s.session_max_memory_mb),
        cpus=LimitRange(default=s.session_default_cpus, max=s.session_max_cpus),
        idle_timeout_s=s.session_idle_timeout_s,
        max_lifetime_s=s.session_max_lifetime_s,
        interrupt_grace_s=s.interrupt_grace_s,
    )
