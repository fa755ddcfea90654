"""Host side: Docker orchestration, limits, deadlines and cleanup, for runs and sessions.

A run meets, in order: `core.Executor` (``run``: the request resolved against
the settings) -> `env` (the cached environment of its requirements) ->
`spec.build_spec` (the container) -> `driver.SandboxDriver` (a sandbox from the
warm `pool` or started by `delivery.launch`, its `jobs.Job` sent; a
`link.SandboxLink` reads its typed `frames` under the `protocol`'s token) ->
`conversation.Conversation` (the deadlines; `output` keeps text and
`artifacts`) -> `outcome.run_result`. A session (`session`) is opened through
the same driver and link and keeps them for its life. Only `docker` touches
docker-py, behind `backend.Backend`.

    from ai_data_agent.executor import Executor, RunEvent
"""

from ai_data_agent.executor.backend import Backend, SweepRule
from ai_data_agent.executor.core import Executor
from ai_data_agent.executor.env import EnvCache, InstallFailure
from ai_data_agent.executor.events import EventHandler, RunEvent
from ai_data_agent.executor.pool import WarmPool
from ai_data_agent.executor.session import SandboxProvider, Session

__all__ = [
    "Backend",
    "EnvCache",
    "EventHandler",
    "Executor",
    "InstallFailure",
    "RunEvent",
    "SandboxProvider",
    "Session",
    "SweepRule",
    "WarmPool",
]
