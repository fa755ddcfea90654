"""Looking after this host: ``doctor``, ``cache list|warm|prune`` and ``sweep``.

    ai-data-agent doctor                    # every check; exit 1 on any FAIL
    ai-data-agent cache warm -p pandas      # installed now, so a first run of it is a hit
    ai-data-agent cache list --json ; ai-data-agent cache prune --key 3fa9
    ai-data-agent sweep --all               # sandboxes no live controller owns

Each needs the local engine and checks it before any work (exit 69 where none
answers). `ai_data_agent.cli.app` registers ``doctor`` and ``sweep`` as its commands
and ``cache_app`` as its ``cache`` group.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ai_data_agent.cli.common import fail, load_settings, require_engine, setup_logging
from ai_data_agent.cli.exits import EXIT_CODES, EXIT_INFRASTRUCTURE, EXIT_USAGE
from ai_data_agent.cli.inputs import read_requirements
from ai_data_agent.errors import AiDataAgentError
from ai_data_agent.executor import EnvCache, Executor, InstallFailure
from ai_data_agent.models import RunStatus
from ai_data_agent.settings import Settings

__all__ = ["cache_app", "doctor", "sweep"]

CONTAINER_ID_LENGTH = 64  # what a sweep removed: the engine's full ids, or volume names

cache_app = typer.Typer(help="The environment cache: requirement sets installed once.")


def doctor() -> None:
    """Check this machine end to end; exit non-zero on any FAIL."""
    from ai_data_agent.doctor import print_report, run_checks

    settings = load_settings()
    setup_logging(settings, "WARNING")
    require_engine(settings)
    checks = run_checks(settings)
    print_report(checks, Console())
    raise typer.Exit(0 if all(c.ok for c in checks) else 1)


def _env_cache(settings: Settings) -> EnvCache:
    executor = Executor(settings)
    if executor.env_cache is None:
        raise fail("the environment cache is off (AI_DATA_AGENT_INSTALL_MODE=per_run)", EXIT_USAGE)
    require_engine(settings)
    return executor.env_cache


@cache_app.command("list")
def cache_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Cached environments, most recently used first."""
    settings = load_settings()
    setup_logging(settings, "WARNING")
    envs = _env_cache(settings).index.all()
    if as_json:
        for env in envs:
            line = {
                "key": env.key,
                "requirements": env.requirements,
                "size_bytes": env.size_bytes,
                "packages": [p.model_dump() for p in env.packages],
                "installer": env.installer,
                "created_at": env.created_at,
                "last_used_at": env.last_used_at,
            }
            typer.echo(json.dumps(line))
        return
    table = Table("key", "requirements", "packages", "size", "last used")
    for env in envs:
        table.add_row(
            env.key[:12],
            " ".join(env.requirements),
            str(len(env.packages)),
            f"{env.size_bytes / 1e6:.1f} MB",
            time.strftime("%Y-%m-%d %H:%M", time.localtime(env.last_used_at)),
        )
    Console().print(table)


@cache_app.command("warm")
def cache_warm(
    package: Annotated[
        list[str] | None, typer.Option("-p", "--package", help="A requirement (repeatable).")
    ] = None,
    requirements_file: Annotated[
        Path | None, typer.Option("-r", "--requirements", help="A requirements.txt file.")
    ] = None,
) -> None:
    """Install a requirement set into the cache now, so that a first run of it is a cache hit."""
    settings = load_settings()
    setup_logging(settings, "WARNING")
    requirements = read_requirements(requirements_file, package or [])
    if not requirements:
        raise fail("name requirements with -p or -r", EXIT_USAGE)
    cache = _env_cache(settings)
    try:
        image = cache.backend.resolve_image()
        outcome = cache.get_or_install(requirements, image, "cache-warm")
    except AiDataAgentError as exc:
        raise fail(str(exc), EXIT_INFRASTRUCTURE) from exc
    finally:
        cache.close()
    if isinstance(outcome, InstallFailure):
        raise fail(outcome.error, EXIT_CODES[RunStatus.INSTALL_FAILED])
    env = outcome.env
    state = "already cached" if outcome.hit else f"installed in {env.install_s:.1f} s"
    typer.echo(
        f"{env.key[:12]} {state}: " + " ".join(f"{p.name}=={p.version}" for p in env.packages)
    )


@cache_app.command("prune")
def cache_prune(
    everything: Annotated[bool, typer.Option("--all", help="Remove every environment.")] = False,
    key: Annotated[
        list[str] | None, typer.Option("--key", help="Remove this one (a key or its prefix).")
    ] = None,
) -> None:
    """Evict environments beyond the size and age bounds (or the ones named)."""
    settings = load_settings()
    setup_logging(settings, settings.log_level)
    cache = _env_cache(settings)
    try:
        if everything or key:
            known = [env.key for env in cache.index.all()]
            doomed = (
                known
                if everything
                else [k for k in known if any(k.startswith(p) for p in key or [])]
            )
            removed = cache.prune(keys=doomed)
        else:
            removed = cache.prune_to_bounds()
    except AiDataAgentError as exc:
        raise fail(str(exc), EXIT_INFRASTRUCTURE) from exc
    typer.echo(json.dumps({"removed": removed}))


def sweep(
    all_controllers: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Remove every sandbox whose controller is not provably alive, not only "
            "expired ones and those of dead controllers.",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="With --all, remove live controllers' sandboxes too (their runs fail)."
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"removed": [...]} instead of a table.')
    ] = False,
) -> None:
    """Remove sandbox containers left behind by dead controllers.

    Sandboxes of live controllers (a daemon, another `run`) are spared, even with
    --all, unless --force is given too.
    """
    from ai_data_agent.executor.backend import SweepRule
    from ai_data_agent.executor.docker import DockerBackend

    settings = load_settings()
    setup_logging(settings, settings.log_level)
    require_engine(settings)
    try:
        rule = SweepRule(all_controllers=all_controllers, force=force)
        removed = DockerBackend(settings).sweep(rule)
    except AiDataAgentError as exc:
        raise fail(str(exc), EXIT_INFRASTRUCTURE) from exc
    if as_json:
        typer.echo(json.dumps({"removed": removed}))
        return
    _print_removed(removed)


def _print_removed(removed: list[str]) -> None:
    """The sweep's table: containers by short id, volumes by name."""
    console = Console()
    if not removed:
        console.print("nothing to remove", highlight=False)
        return
    table = Table("removed", "id or name")
    for name in removed:
        container = len(name) == CONTAINER_ID_LENGTH and all(c in "0123456789abcdef" for c in name)
        table.add_row("container" if container else "volume", name[:12] if container else name)
    console.print(table)
