"""`ai-data-agent doctor`: the deployment checklist, as checks on a real sandbox.

    checks = run_checks(Settings())
    print_report(checks, Console())

Each check says PASS or FAIL with a reason. Two probe runs do the work: one
installs ``six`` and reports what its code sees; one raises inside the sandbox.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from ai_data_agent.checks import Check
from ai_data_agent.errors import AiDataAgentError
from ai_data_agent.executor import Executor
from ai_data_agent.models import RunRequest, RunResult, RunStatus
from ai_data_agent.settings import Settings
from ai_data_agent.storage import LocalBlobStore

__all__ = ["print_report", "run_checks"]

PROBE_CODE = """
import json, os, sys
import six
print(json.dumps({
    "pathsep": os.pathsep,
    "pythonpath": os.environ.get("PYTHONPATH", ""),
    "home": os.environ.get("HOME", ""),
    "executable": sys.executable,
    "six_file": six.__file__,
}))
"""
ERROR_CODE = "raise RuntimeError('doctor probe: deliberate failure')\n"


def _probe_output(result: RunResult) -> dict[str, Any]:
    try:
        data = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {}
    return data if isinstance(data, dict) else {}


def _engine_checks(executor: Executor) -> list[Check]:
    """Is the engine there, and the image; stops at the first failure."""
    try:
        version = executor.backend.ping()
    except AiDataAgentError as exc:
        return [Check("Docker reachable", False, str(exc))]
    checks = [Check("Docker reachable", True, f"engine {version}")]
    try:
        image = executor.backend.resolve_image()
    except AiDataAgentError as exc:
        return [*checks, Check("Sandbox image present", False, str(exc))]
    return [*checks, Check("Sandbox image present", True, image)]


def _environment_checks(probe: RunResult, seen: dict[str, Any]) -> list[Check]:
    env = probe.environment
    sandbox = env.sandbox_dir
    sep = seen["pathsep"]
    installed = {p.name.lower(): p.version for p in probe.install.packages}
    consistent = (
        not env.mismatches and seen["pythonpath"] == env.pythonpath and seen["home"] == env.home
    )
    return [
        Check(
            "Path separator",
            sep == env.path_separator and env.pythonpath.split(sep)[0] == sandbox,
            f"container uses {sep!r}; PYTHONPATH splits into "
            f"{len(env.pythonpath.split(sep))} part(s)",
        ),
        Check(
            "--target install works",
            "six" in installed and str(seen["six_file"]).startswith(sandbox + "/"),
            f"six {installed.get('six', 'missing')} imported from {seen['six_file']}",
        ),
        Check(
            "Env consistent across install/verify/execute",
            consistent,
            "PYTHONPATH, HOME and interpreter agree"
            if consistent
            else "; ".join(env.mismatches) or "code saw a different PYTHONPATH or HOME",
        ),
        Check(
            "PYTHONPATH has sandbox dir first",
            seen["pythonpath"].split(sep)[0] == sandbox and seen["home"] == sandbox,
            f"PYTHONPATH={seen['pythonpath']} HOME={seen['home']}",
        ),
        Check(
            "Platform info reported",
            bool(env.platform and env.python_version),
            f"platform={env.platform} python={env.python_version}",
        ),
    ]


def _dataset_storage(settings: Settings, executor: Executor) -> Check:
    """The datasets' storage directory can be written; what it and the engine hold."""
    root = settings.storage_root
    store = LocalBlobStore(root)
    try:
        if root.exists():  # else a daemon makes it; doctor writes nothing new
            store.prepare()
        count, size = store.usage()
        copies, copied = executor.datasets.usage()
    except AiDataAgentError as exc:
        return Check("Dataset storage", False, str(exc))
    where = f"{root} writable" if root.exists() else f"{root} not made yet (the daemon makes it)"
    return Check(
        "Dataset storage",
        True,
        f"{where}: {count} blob(s), {size} bytes; "
        f"{copies} dataset version(s) copied onto this engine, {copied} bytes",
    )


def run_checks(settings: Settings) -> list[Check]:
    """Run every check; never raises for a failed check."""
    executor = Executor(settings)
    try:
        checks = _engine_checks(executor)
        if not all(c.ok for c in checks):
            return checks
        try:
            probe = executor.run(
                RunRequest(code=PROBE_CODE, requirements=["six"], install_mode="per_run")
            )
            failing = executor.run(RunRequest(code=ERROR_CODE))
        except AiDataAgentError as exc:
            return [*checks, Check("Probe run", False, str(exc))]
        seen = _probe_output(probe)
        if probe.status != RunStatus.SUCCEEDED or not seen:
            detail = probe.error or probe.install.log_tail[-300:] or probe.stderr[-300:]
            return [*checks, Check("Probe run", False, f"status {probe.status.value}: {detail}")]
        checks += _environment_checks(probe, seen)
        removed = (
            probe.environment.sandbox_removed is True
            and failing.environment.sandbox_removed is True
        )
        checks.append(
            Check(
                "Temp dirs cleaned up",
                removed,
                f"{probe.environment.sandbox_dir} removed: {removed}",
            )
        )
        checks.append(
            Check(
                "Errors handled in container",
                failing.status == RunStatus.FAILED and "RuntimeError" in failing.stderr,
                f"a raising script gave status {failing.status.value}, "
                f"exit code {failing.exit_code}",
            )
        )
        checks.append(_dataset_storage(settings, executor))
        executor.driver.close()  # a run's container goes after its answer: wait for them
        leftovers = executor.backend.sandboxes(executor.controller_id)
        checks.append(
            Check(
                "No container left", not leftovers, f"{len(leftovers)} sandbox container(s) remain"
            )
        )
        return checks
    finally:
        executor.close()


def print_report(checks: list[Check], console: Console) -> None:
    table = Table(show_header=True, header_style="bold")
    table.add_column("check")
    table.add_column("result")
    table.add_column("reason", overflow="fold")
    for check in checks:
        table.add_row(
            check.name, "[green]PASS[/green]" if check.ok else "[red]FAIL[/red]", check.detail
        )
    console.print(table)
