"""The environment cache: requirement sets installed once, mounted read-only into every sandbox.

A request with requirements meets it in this order: `cache.EnvCache`
(``get_or_install``: the key of the set, the per-key lock, the `index.EnvIndex`
lookup), on a miss `sandboxes.CacheSandboxes` (the install sandbox, on a
staging volume from `staging.StagingVolumes`, then the publish sandbox, then a
bytecode compile in the background), and last, if the run or session finds
its environment gone from the volume, `vanished.once_more_if_vanished`.

    from ai_data_agent.executor.env import EnvCache, InstallFailure, Ready
"""

from ai_data_agent.executor.env.cache import EnvCache
from ai_data_agent.executor.env.index import CachedEnv, cache_key, default_index_path
from ai_data_agent.executor.env.sandboxes import CACHE_VOLUME, InstallFailure, Ready
from ai_data_agent.executor.env.vanished import Environments, Vanished, once_more_if_vanished

__all__ = [
    "CACHE_VOLUME",
    "CachedEnv",
    "EnvCache",
    "Environments",
    "InstallFailure",
    "Ready",
    "Vanished",
    "cache_key",
    "default_index_path",
    "once_more_if_vanished",
]
