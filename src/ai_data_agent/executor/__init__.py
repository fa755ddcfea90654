"""Host side: Docker orchestration, limits, deadlines and cleanup.

A run goes `core.Executor` -> `envcache.EnvCache` (requirements) -> `spec.build_spec`
-> `driver.SandboxDriver` (pool or `delivery.launch`, `conversation.Conversation`)
-> `outcome.run_result`. Only the `docker_*` modules touch docker-py.
"""

from ai_data_agent.executor.core import Executor
from ai_data_agent.executor.events import RunEvent

__all__ = ["Executor", "RunEvent"]
