"""Requests against the server's caps: the one place a request meets the settings.

    limits = resolve_run(RunRequest(code="print(1)", timeout_s=10), settings)
    limits = resolve_session(SessionRequest(requirements=["pandas"]), settings)
    default_limits(settings)          # a request that sets nothing

The request models (`models`, `session_models`) check only their own shape;
whatever depends on the server (caps, defaults, whether network or
requirements are allowed) is decided here, once, at admission. A refused
request raises before anything is recorded or started.
"""

from __future__ import annotations

from ai_data_agent.caps import check_input_files
from ai_data_agent.egress.rules import Rule, RuleList, parse_destination, parse_rule
from ai_data_agent.errors import EgressRefused, RequestRejected
from ai_data_agent.models import EgressRequest, Limits, RunRequest
from ai_data_agent.session_models import SessionRequest
from ai_data_agent.settings import Settings

__all__ = [
    "capped",
    "check_egress",
    "check_tenant_network",
    "default_limits",
    "resolve_run",
    "resolve_session",
]


def default_limits(settings: Settings) -> Limits:
    """The limits of a run that sets none (defaults, bounded by the caps)."""
    return Limits(
        timeout_s=min(settings.default_timeout_s, settings.max_timeout_s),
        memory_mb=min(settings.default_memory_mb, settings.max_memory_mb),
        cpus=min(settings.default_cpus, settings.max_cpus),
        network=False,
    )


def capped(field: str, value: float | None, default: float, cap: float) -> float:
    """The request's value when within ``cap`` (else refused), or the default.

    Raises:
        RequestRejected: ``value`` is above ``cap``.
    """
    if value is None:
        return default
    if value > cap:
        raise RequestRejected(field, f"{value:g} is above the server cap {cap:g}")
    return value


def resolve_run(request: RunRequest, settings: Settings) -> Limits:
    """Check ``request`` against the server's caps and fill in the defaults.

    Raises:
        RequestRejected: a limit above its cap, code or env too large, too
            many requirements, or network asked for where it is not allowed.
        RequestTooLarge: input files over their count or size caps.
    """
    _check_sizes(request, settings)
    check_input_files(
        request.files,
        max_files=settings.max_input_files,
        max_file_bytes=settings.max_input_file_bytes,
        max_total_bytes=settings.max_input_total_bytes,
    )
    egress = request.network if isinstance(request.network, EgressRequest) else None
    if egress is not None:
        check_egress(egress, settings)
    elif request.network and not settings.allow_network:
        raise RequestRejected("network", "network for user code is disabled on this server")
    defaults = default_limits(settings)
    return Limits(
        timeout_s=capped(
            "timeout_s", request.timeout_s, defaults.timeout_s, settings.max_timeout_s
        ),
        memory_mb=int(
            capped("memory_mb", request.memory_mb, defaults.memory_mb, settings.max_memory_mb)
        ),
        cpus=capped("cpus", request.cpus, defaults.cpus, settings.max_cpus),
        network=request.network is True,
        egress=egress,
    )


def resolve_session(request: SessionRequest, settings: Settings) -> Limits:
    """A session's limits: requested values within the session caps, else the defaults.

    Raises:
        RequestRejected: a limit above its cap, too many requirements or files, or
            requirements where the server installs per run (sessions need the cache).
        RequestTooLarge: input files over their count or size caps.
    """
    if request.requirements and settings.install_mode == "per_run":
        raise RequestRejected(
            "requirements",
            "sessions install through the environment cache; this server's install_mode is per_run",
        )
    probe = RunRequest(
        code="", requirements=request.requirements, env=request.env, files=request.files
    )
    resolve_run(probe, settings)  # the same size and count caps as a run
    s = settings
    timeout = capped("cell_timeout_s", request.cell_timeout_s, s.cell_timeout_s, s.max_timeout_s)
    memory = capped(
        "memory_mb", request.memory_mb, s.session_default_memory_mb, s.session_max_memory_mb
    )
    cpus = capped("cpus", request.cpus, s.session_default_cpus, s.session_max_cpus)
    if request.network is True:
        raise RequestRejected(
            "network", 'a session reaches hosts by allow-list only: {"allow": ["host", ...]}'
        )
    egress = request.network if isinstance(request.network, EgressRequest) else None
    if egress is not None:
        check_egress(egress, settings)
    return Limits(timeout_s=timeout, memory_mb=int(memory), cpus=cpus, network=False, egress=egress)


def check_egress(egress: EgressRequest, settings: Settings) -> None:
    """Every host ``egress`` asks for (allowed or published) is on the server's allow-list
    and not on its deny-list.

    Raises:
        EgressRefused: egress is off here, or a host it asks for is not allowed (named).
    """
    if not settings.egress_allow:
        raise EgressRefused(
            "network", "egress is off on this server (the operator sets AI_DATA_AGENT_EGRESS_ALLOW)"
        )
    allowed, denied = RuleList.parse(settings.egress_allow), RuleList.parse(settings.egress_deny)
    for field, rule in _asked(egress):
        if not allowed.covers(rule):
            raise EgressRefused(field, f"{rule} is not on this server's egress allow-list")
        if denied.covers(rule):
            raise EgressRefused(field, f"{rule} is on this server's egress deny-list")


def check_tenant_network(
    network: bool | EgressRequest | None, allow: list[str] | None, tenant: str
) -> None:
    """A request's ``network`` is within ``tenant``'s own egress allow-list (its
    ``Quotas.egress_allow``; None: it has none, and the server's list alone applies).

    Raises:
        EgressRefused: unrestricted network asked for, or a host not on the tenant's list.
    """
    if allow is None or not network:
        return
    if network is True:
        raise EgressRefused("network", f"tenant {tenant} reaches only its egress allow-list")
    allowed = RuleList.parse(allow)
    for field, rule in _asked(network):
        if not allowed.covers(rule):
            raise EgressRefused(field, f"{rule} is not on tenant {tenant}'s egress allow-list")


def _asked(egress: EgressRequest) -> list[tuple[str, Rule]]:
    """Each host ``egress`` asks for (allowed or published), with the field naming it."""
    asked = [("network.allow", parse_rule(text)) for text in egress.allow]
    for name, target in egress.publish.items():
        asked.append((f"network.publish.{name}", Rule.exactly(parse_destination(target))))
    return asked


def _check_sizes(request: RunRequest, settings: Settings) -> None:
    if len(request.code.encode()) > settings.max_code_bytes:
        raise RequestRejected("code", f"larger than {settings.max_code_bytes} bytes")
    if "\x00" in request.code:
        raise RequestRejected("code", "contains a NUL byte")
    if len(request.requirements) > settings.max_requirements:
        raise RequestRejected(
            "requirements",
            f"{len(request.requirements)} given, at most {settings.max_requirements}",
        )
    if len(request.env) > settings.max_env_vars:
        raise RequestRejected(
            "env", f"{len(request.env)} variables, at most {settings.max_env_vars}"
        )
    for name, val in request.env.items():
        if len(val.encode()) > settings.max_env_value_bytes:
            raise RequestRejected(
                f"env.{name}", f"value larger than {settings.max_env_value_bytes} bytes"
            )
