"""Run the daemon under uvicorn: the entry point behind ``ai-data-agent serve``.

    serve(Settings(), host="127.0.0.1", port=8000)
    serve(settings, host="0.0.0.0", port=8000)     # needs tokens, or insecure=True

On SIGTERM or SIGINT the daemon stops taking runs at once (POSTs get 503, the
port keeps answering while runs drain), running ones get ``shutdown_grace_s``
to finish, and the rest are stopped and recorded ``interrupted`` before the
process exits (`serving`). Logs go through loguru (uvicorn's own records
included), as text or JSON lines per ``log_format``.
"""

from __future__ import annotations

from ai_data_agent.service.app import create_app
from ai_data_agent.service.node import ServiceNode
from ai_data_agent.service.serving import (
    check_bind_policy,
    configure_server_logging,
    run_app,
    with_advertise_url,
)
from ai_data_agent.service.tenant_store import TENANTS_FILENAME, TenantStore
from ai_data_agent.settings import Settings

__all__ = ["serve", "stored_tokens"]


def stored_tokens(settings: Settings) -> bool:
    """Whether the tenant store (the data dir's, or the cluster's) holds a token; False
    when it cannot be read (the bind policy then wants configured tokens)."""
    if settings.clustered:
        import psycopg  # the postgres extra, there with a database_url

        from ai_data_agent.service.cluster.db import conninfo

        try:
            with psycopg.connect(conninfo(settings, role="api")) as conn:
                row = conn.execute("SELECT EXISTS (SELECT 1 FROM tokens)").fetchone()
        except psycopg.Error:  # no database yet, or no tokens table: none stored
            return False
        return bool(row and row[0])
    path = settings.data_dir / TENANTS_FILENAME
    if not path.exists():
        return False
    store = TenantStore(path)
    try:
        store.open()
        return store.has_tokens()
    finally:
        store.close()


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
    configure_server_logging(settings)
    check_bind_policy(settings, host, insecure, lambda: stored_tokens(settings))
    settings = with_advertise_url(settings, host, port)
    app = create_app(settings, with_worker=with_worker)
    node: ServiceNode = app.state.daemon

    def in_flight() -> int:  # the runs a drain answers for before the port closes
        return node.dispatcher.in_flight

    run_app(app, node, settings, host, port, what="daemon", in_flight=in_flight)
