"""A node's ASGI app under uvicorn: the bind policy, logging, and a drain that starts at the signal.

    configure_server_logging(settings)
    check_bind_policy(settings, host, insecure)     # ConfigurationError: exposed without tokens
    settings = with_advertise_url(settings, host, port)   # an API node: where workers reach it
    run_app(app, node, settings, host, port, what="daemon", in_flight=lambda: 0)   # blocking

Used by the daemon (`server.serve`, an API node included) and a cluster's
worker (`cluster.worker_app`). Logs go through loguru (uvicorn's own records
included), as text or JSON lines per ``log_format``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import socket
import time
from collections.abc import Callable
from typing import Protocol

import anyio
import uvicorn
from fastapi import FastAPI
from loguru import logger

from ai_data_agent.errors import ConfigurationError
from ai_data_agent.logs import configure_logging, route_std_logging
from ai_data_agent.service.node import STOP_SLACK_S
from ai_data_agent.settings import Settings

__all__ = [
    "check_bind_policy",
    "configure_server_logging",
    "is_loopback",
    "run_app",
    "with_advertise_url",
]

DRAIN_POLL_S = 0.1


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses; any other name counts as exposed."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind_policy(
    settings: Settings,
    host: str,
    insecure: bool,
    stored_tokens: Callable[[], bool] = lambda: False,
) -> None:
    """Refuse to expose an unauthenticated daemon beyond this machine.

    ``stored_tokens`` says whether the tenant store holds tokens (auth is then on).

    Raises:
        ConfigurationError: ``host`` is not loopback, no token is configured or stored
            and ``insecure`` is false; or the token file cannot be read.
    """
    try:
        tokens = settings.accepted_tokens()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"cannot read the token file {settings.api_token_file}: {exc}"
        ) from exc
    configured = bool(settings.api_tokens) or settings.api_token_file is not None
    if configured and not tokens:
        logger.warning(
            "the token file {} is empty: every /v1 request will get 401", settings.api_token_file
        )
    if configured or is_loopback(host) or stored_tokens():
        return
    if not insecure:
        raise ConfigurationError(
            f"refusing to listen on {host} without API tokens: anyone who can reach that "
            "address could run code on this machine. Set AI_DATA_AGENT_API_TOKENS (or "
            "AI_DATA_AGENT_API_TOKEN_FILE) or make one (ai-data-agent token new), listen on "
            "127.0.0.1, or pass --insecure if "
            "something else guards the port."
        )
    logger.warning("listening on {} WITHOUT authentication (--insecure)", host)


def with_advertise_url(settings: Settings, host: str, port: int) -> Settings:
    """``settings`` of a cluster's API node with ``advertise_url`` defaulting to the
    address it listens on, unless that is a wildcard (then workers would not know which)."""
    bare = host.strip("[]")
    if not settings.clustered or settings.advertise_url is not None or _is_wildcard(bare):
        return settings
    name = f"[{bare}]" if ":" in bare else bare
    return settings.model_copy(update={"advertise_url": f"http://{name}:{port}"})


def _is_wildcard(host: str) -> bool:
    """Every address of the machine (0.0.0.0, ::): there is none to advertise."""
    try:
        return not host or ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False  # a name


class _Served(Protocol):
    """A node under uvicorn: told to drain at the first signal; why it did not start."""

    startup_error: Exception | None

    def begin_shutdown(self) -> None: ...


class _Server(uvicorn.Server):
    """uvicorn's server, telling the node to drain as soon as shutdown begins, and
    answering while it drains.

    uvicorn first waits for open requests (a waiting POST holds one for its whole
    run), and only then runs the lifespan shutdown; the grace period must start
    at the signal, not after that. uvicorn also stops listening at once, so a
    client would see "connection refused" instead of the documented ``503
    not_ready``: the socket stays open (new POSTs get 503, polls of earlier runs
    are answered) until ``in_flight`` is 0 or the grace period and its slack are
    over, or a second signal forces the exit.
    """

    def __init__(
        self, config: uvicorn.Config, node: _Served, in_flight: Callable[[], int], drain_s: float
    ) -> None:
        super().__init__(config)
        self.node = node
        self.in_flight = in_flight
        self.drain_s = drain_s

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await anyio.to_thread.run_sync(self.node.begin_shutdown)
        deadline = time.monotonic() + self.drain_s
        while self.in_flight() and not self.force_exit:
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(DRAIN_POLL_S)
        await super().shutdown(sockets)


def configure_server_logging(settings: Settings) -> None:
    """Loguru's sink per the settings, with the standard library's records (uvicorn's) in it."""
    configure_logging(settings.log_level, json=settings.log_format == "json")
    route_std_logging(settings.log_level)


def run_app(
    app: FastAPI,
    node: _Served,
    settings: Settings,
    host: str,
    port: int,
    *,
    what: str,
    in_flight: Callable[[], int] = lambda: 0,
) -> None:
    """Serve ``app`` (whose lifespan starts and stops ``node``) until SIGTERM/SIGINT.

    Raises:
        ConfigurationError: the port cannot be taken, or ``node`` did not start.
    """
    drain_s = settings.shutdown_grace_s + STOP_SLACK_S
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # records go to the root logger, hence to loguru
        lifespan="on",
        server_header=False,
        # A backstop only: the node ends in-flight runs after the grace period.
        timeout_graceful_shutdown=math.ceil(drain_s),
    )
    server = _Server(config, node, in_flight, drain_s)
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits like this when it cannot bind
        raise ConfigurationError(f"the {what} could not listen on {host}:{port}") from exc
    if not server.started:
        reason = node.startup_error or "see the log above"
        raise ConfigurationError(f"the {what} did not start: {reason}")
