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
the daemon and its client (`ai_data_agent.client.Client`). `Executor`,
`RunEvent` and `Settings` are imported on first use, so that the client
(``import ai_data_agent.client``) loads neither the executor nor the server's
settings.
"""

import importlib
import typing

from ai_data_agent.errors import (
    AiDataAgentError,
    CheckpointFailed,
    ConfigurationError,
    DatasetInUse,
    DockerUnavailable,
    EgressRefused,
    ExecutorError,
    FileNotFound,
    Forbidden,
    InstallFailed,
    NotFound,
    NotReady,
    NoWorker,
    QueueFull,
    QuotaExceeded,
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
from ai_data_agent.models import InputFile, RunRequest, RunResult, RunStatus

if typing.TYPE_CHECKING:
    from ai_data_agent.executor import Executor, RunEvent
    from ai_data_agent.settings import Settings

__all__ = [
    "AiDataAgentError",
    "CheckpointFailed",
    "ConfigurationError",
    "DatasetInUse",
    "DockerUnavailable",
    "EgressRefused",
    "Executor",
    "ExecutorError",
    "FileNotFound",
    "Forbidden",
    "InputFile",
    "InstallFailed",
    "NoWorker",
    "NotFound",
    "NotReady",
    "QueueFull",
    "QuotaExceeded",
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

# Imported on first use (see the docstring), from the module that defines each.
_LAZY = {
    "Executor": "ai_data_agent.executor",
    "RunEvent": "ai_data_agent.executor",
    "Settings": "ai_data_agent.settings",
}


def __getattr__(name: str) -> typing.Any:
    """`Executor`, `RunEvent` and `Settings`, imported when first asked for."""
    if name not in _LAZY:
        raise AttributeError(f"module 'ai_data_agent' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
