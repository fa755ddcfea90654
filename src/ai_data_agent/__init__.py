"""ai-data-agent: run untrusted Python for AI data agents in throwaway, locked-down containers.

The public surface is the names below; for example::

    from ai_data_agent import Executor, InputFile, RunRequest, Settings

    with Executor(Settings()) as executor:
        result = executor.run(RunRequest(code="print(1 + 1)"))
    assert result.status == "succeeded" and result.stdout == "2\\n"

    data = InputFile.from_bytes("data/sales.csv", Path("sales.csv").read_bytes())
    request = RunRequest(code="import pandas as pd; print(pd.read_csv('data/sales.csv'))",
                         requirements=["pandas"], files=[data])

The errors are one tree (`ai_data_agent.errors`), the same for the library,
the daemon and its client (`ai_data_agent.client.Client`).
"""

from ai_data_agent.errors import (
    AiDataAgentError,
    ConfigurationError,
    DockerUnavailable,
    EgressRefused,
    ExecutorError,
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
    SessionError,
    SessionGone,
    SessionLimit,
    Unauthorized,
)
from ai_data_agent.executor import Executor, RunEvent
from ai_data_agent.models import InputFile, RunRequest, RunResult, RunStatus
from ai_data_agent.settings import Settings

__all__ = [
    "AiDataAgentError",
    "ConfigurationError",
    "DockerUnavailable",
    "EgressRefused",
    "Executor",
    "ExecutorError",
    "InputFile",
    "InstallFailed",
    "NotFound",
    "NotReady",
    "QueueFull",
    "RequestRejected",
    "RequestTooLarge",
    "RunEvent",
    "RunIncomplete",
    "RunRequest",
    "RunResult",
    "RunStatus",
    "ServerError",
    "ServerUnreachable",
    "SessionBusy",
    "SessionError",
    "SessionGone",
    "SessionLimit",
    "Settings",
    "Unauthorized",
]
__version__ = "0.1.0"
