"""The serialiser that sessions' checkpoints use inside the sandbox: this host's cloudpickle.

    sources = serialiser_sources()     # {"__init__.py": ..., "cloudpickle.py": ...}

cloudpickle is pure Python and a dependency of this package; the sandbox
image need not have it and a session's requirements are never touched: the
files of the copy installed here travel with a session's job, and the runner
writes them read-only under a private package name beside the sandbox dir
(`sandbox.checkpoint`), where only the kernel's checkpoint code imports them
(`sandbox.snapshot`). Read once per process.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
from pathlib import Path

from ai_data_agent.errors import ConfigurationError

__all__ = ["serialiser_sources", "serialiser_version"]


@functools.cache
def serialiser_sources() -> dict[str, str]:
    """The package's modules by file name (cloudpickle runs on Python >= 3.8)."""
    spec = importlib.util.find_spec("cloudpickle")
    if spec is None or spec.origin is None:
        raise ConfigurationError("cloudpickle, a dependency of ai-data-agent, is not installed")
    folder = Path(spec.origin).parent
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.py"))}


def serialiser_version() -> str:
    return importlib.metadata.version("cloudpickle")
