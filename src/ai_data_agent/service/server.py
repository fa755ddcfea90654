"""Run the daemon under uvicorn: the entry point behind ``ai-data-agent serve``.

    serve(Settings(), host="127.0.0.1", port=8000)
    serve(settings, host="0.0.0.0", port=8000)     # needs tokens, or insecure=True

On SIGTERM or SIGINT the daemon stops taking runs at once (POSTs get 503, the
port keeps answering while runs drain), running ones get ``shutdown_grace_s``
to finish, and the rest are stopped and recorded ``interrupted`` before the
process exits. Logs go through loguru
(uvicorn's own records included), as text or JSON lines per ``log_format``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import socket
import time

import anyio
import uvicorn
from loguru import logger

from ai_data_agent.errors import ConfigurationError
from ai_data_agent.logs import configure_logging
from ai_data_agent.service.app import create_app
from ai_data_agent.service.dispatcher import STOP_SLACK_S
from ai_data_agent.service.node import ServiceNode
from ai_data_agent.settings import Settings

__all__ = ["check_bind_policy", "is_loopback", "serve"]

DRAIN_POLL_S = 0.1


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses; any other name counts as exposed."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind_policy(settings: Settings, host: str, insecure: bool) -> None:
    """Refuse to expose an unauthenticated daemon beyond this machine.

    Raises:
        ConfigurationError: ``host`` is not loopback, no token is configured and
            ``insecure`` is false; or the token file cannot be read.
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
    if configured or is_loopback(host):
        return
    if not insecure:
        raise ConfigurationError(
            f"refusing to listen on {host} without API tokens: anyone who can reach that "
            "address could run code on this machine. Set AI_DATA_AGENT_API_TOKENS (or "
            "AI_DATA_AGENT_API_TOKEN_FILE), listen on 127.0.0.1, or pass --insecure if "
            "something else guards the port."
        )
    logger.warning("listening on {} WITHOUT authentication (--insecure)", host)


class _InterceptHandler(logging.Handler):
    """Standard-library records (uvicorn's) into loguru, at their own level."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


class _Server(uvicorn.Server):
    """uvicorn's server, telling the daemon to drain as soon as shutdown begins, and
    answering while it drains.

    uvicorn first waits for open requests (a waiting POST holds one for its whole
    run), and only then runs the lifespan shutdown; the grace period must start
    at the signal, not after that. uvicorn also stops listening at once, so a
    client would see "connection refused" instead of the documented ``503
    not_ready``: the socket stays open (new POSTs get 503, polls of earlier runs
    are answered) until no run is left or the grace period and its slack are
    over, or a second signal forces the exit.
    """

    def __init__(self, config: uvicorn.Config, daemon: ServiceNode) -> None:
        super().__init__(config)
        self.daemon = daemon

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await anyio.to_thread.run_sync(self.daemon.begin_shutdown)
        deadline = time.monotonic() + self.daemon.settings.shutdown_grace_s + STOP_SLACK_S
        while self.daemon.dispatcher.in_flight and not self.force_exit:
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(DRAIN_POLL_S)
        await super().shutdown(sockets)


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8000,
    insecure: bool = False,
    *,
    with_worker: bool = False,
) -> None:
    """Run the daemon until SIGTERM/SIGINT (blocking). With ``database_url`` it is a
    cluster's API node, also a worker when ``with_worker``.

    Raises:
        ConfigurationError: a non-loopback ``host`` without tokens (and not
            ``insecure``), an unreadable token file, or a daemon that could not
            start (store not writable, port taken); the message says why.
    """
    configure_logging(settings.log_level, json=settings.log_format == "json")
    logging.basicConfig(handlers=[_InterceptHandler()], level=settings.log_level, force=True)
    if settings.log_level not in ("TRACE", "DEBUG"):  # the database pool narrates at INFO
        logging.getLogger("psycopg").setLevel(logging.WARNING)
    check_bind_policy(settings, host, insecure)
    app = create_app(settings, with_worker=with_worker)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # records go to the root logger, hence to loguru
        lifespan="on",
        server_header=False,
        # A backstop only: the daemon ends in-flight runs after the grace period.
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_s + STOP_SLACK_S),
    )
    server = _Server(config, app.state.daemon)
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits like this when it cannot bind
        raise ConfigurationError(f"the daemon could not listen on {host}:{port}") from exc
    if not server.started:
        reason = app.state.daemon.startup_error or "see the log above"
        raise ConfigurationError(f"the daemon did not start: {reason}")
