"""A session's environment: requirement sets installed through the cache, and what changed.

    env = install_env(cache, ["pandas"], image, run_id, settings)   # held until released
    added, changed, removed = package_diff(old_env, env)

A session's container never installs anything itself (it has no network): the
union of its requirements installs in the environment cache's own sandbox and
is mounted read-only, like a run's.
"""

from __future__ import annotations

from ai_data_agent.errors import InstallFailed
from ai_data_agent.executor.env import CachedEnv, Environments, InstallFailure
from ai_data_agent.models import InstallReport, PackageInfo
from ai_data_agent.session_models import PackageChange
from ai_data_agent.settings import Settings

__all__ = ["install_env", "package_diff"]


def install_env(
    cache: Environments | None,
    requirements: list[str],
    image: str,
    run_id: str,
    settings: Settings,
) -> CachedEnv:
    """The cached environment of ``requirements``, held (pruning spares it) until released.

    Raises:
        InstallFailed: the set does not install (the error says why; ``report`` has the log).
        ExecutorError: Docker failed.
    """
    if cache is None:
        raise InstallFailed("sessions install through the environment cache, which is off")
    outcome = cache.get_or_install(requirements, image, run_id)
    if isinstance(outcome, InstallFailure):
        section = outcome.install
        report = InstallReport(
            requirements=list(requirements),
            installer=section.installer if section else None,
            fallback_triggered=bool(section and section.fallback_triggered),
            log_tail=section.log_tail[-settings.install_log_limit_bytes :] if section else "",
            mode="cache",
        )
        raise InstallFailed(outcome.error, report=report)
    cache.hold(outcome.env.key)
    return outcome.env


def package_diff(
    old: CachedEnv | None, new: CachedEnv
) -> tuple[list[PackageInfo], list[PackageChange], list[PackageInfo]]:
    """Distributions added, changed in version, and removed from ``old`` to ``new``."""
    before = {p.name.lower(): p for p in (old.packages if old is not None else [])}
    after = {p.name.lower(): p for p in new.packages}
    added = [p for name, p in after.items() if name not in before]
    removed = [p for name, p in before.items() if name not in after]
    changed = [
        PackageChange(name=p.name, old_version=before[name].version, new_version=p.version)
        for name, p in after.items()
        if name in before and before[name].version != p.version
    ]
    return added, changed, removed
