"""Host side: Docker orchestration, limits, deadlines and cleanup."""

from ai_data_agent.executor.core import Executor, RunEvent

__all__ = ["Executor", "RunEvent"]
