"""The Python client of the ai-data-agent daemon, for agents and the CLI's ``--server``.

    from ai_data_agent.client import Client

    with Client("http://127.0.0.1:8000", token="s3cret") as client:
        result = client.run("print(6 * 7)")                       # a RunResult
        with client.session(requirements=["pandas"]) as session:  # a RemoteSession
            cell = session.run("import pandas as pd; pd.__version__")

Inside, in the order a request meets it:

- ``runs``: `Client`, the front door: runs (``run``, ``submit``, ``wait``,
  ``follow``, ``cancel``, artifacts) and the way into sessions;
- ``sessions``: `RemoteSession`, one session's calls (cells, files, packages);
- ``tenants``: an admin's calls: `Tenants`, `Tokens`, `Audit` (``client.tenants``, ...);
- ``requests``: what a run sends, checked against the daemon's caps first;
- ``connection``: `Connection`, one daemon as both see it: the transport and
  the daemon's ``/v1/info``, read once;
- ``transport``: the HTTP exchange (a connection pool, streams, checked
  downloads), every failure as an error of the tree;
- ``wire``: the answers: errors rebuilt from them, Server-Sent Events, ids in paths.

Errors are the package's one tree (`ai_data_agent.errors`), the same class the
daemon raised: `RequestRejected` (400/422, and a request that does not validate
here), `RequestTooLarge` (413), `Unauthorized`, `Forbidden` (403: an admin's call
with an agent's token), `NotFound` (`FileNotFound` for a
session's file), `QueueFull` (with ``retry_after``), `SessionBusy`,
`SessionGone`, `SessionLimit`, `NotReady`, `ServerError` (500, or an answer
outside the API), `ServerUnreachable` (no answer) and `RunIncomplete` (a wait
without a result). The server's body is read only as the documented
``{"error": {"code", "message"}}`` shape, never echoed raw.

The client needs neither the executor nor the server's settings, and imports
neither.
"""

from ai_data_agent.client.runs import Client
from ai_data_agent.client.sessions import RemoteSession
from ai_data_agent.client.wire import error_from_response
from ai_data_agent.errors import (
    FileNotFound,
    Forbidden,
    InstallFailed,
    NotFound,
    NotReady,
    QueueFull,
    RequestRejected,
    RequestTooLarge,
    RunIncomplete,
    ServerError,
    ServerUnreachable,
    SessionBusy,
    SessionGone,
    SessionLimit,
    Unauthorized,
)

# The errors this client raises are re-exported for convenience; they live in errors.
__all__ = [
    "Client",
    "FileNotFound",
    "Forbidden",
    "InstallFailed",
    "NotFound",
    "NotReady",
    "QueueFull",
    "RemoteSession",
    "RequestRejected",
    "RequestTooLarge",
    "RunIncomplete",
    "ServerError",
    "ServerUnreachable",
    "SessionBusy",
    "SessionGone",
    "SessionLimit",
    "Unauthorized",
    "error_from_response",
]
