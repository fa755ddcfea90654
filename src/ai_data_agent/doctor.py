"""`ai-data-agent doctor`: the seed's verification checklist, as checks on a real sandbox.

    checks = run_checks(Settings())
    print_report(checks, Console())

Each check says PASS or FAIL with a reason. Two probe runs do the work: one
installs ``six`` and reports what its code sees; one raises inside the sandbox.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from loguru import logger
from rich.console import Console
from rich.table import Table

from ai_data_agent.errors import AiDataAgentError
from ai_data_agent.executor import Executor
from ai_data_agent.executor.docker_backend import DockerBackend, connect
from ai_data_agent.executor.spec import LABEL_CONTROLLER
from ai_data_agent.models import RunRequest, RunResult, RunStatus
from ai_data_agent.settings import Settings

__all__ = ["Check", "print_report", "run_checks"]

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


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    reason: str


def _probe_output(result: RunResult) -> dict[str, Any]:
    try:
        data = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {}
    return data if isinstance(data, dict) else {}


def run_checks(settings: Settings) -> list[Check]:
    """Run every check; never raises for a failed check."""
    checks: list[Check] = []
    try:
        client = connect(settings)
    except AiDataAgentError as exc:
        return [Check("Docker reachable", False, str(exc))]
    version = client.version().get("Version", "?")
    checks.append(Check("Docker reachable", True, f"engine {version}"))

    backend = DockerBackend(settings, client)
    try:
        image = backend.resolve_image()
    except AiDataAgentError as exc:
        return [*checks, Check("Sandbox image present", False, str(exc))]
    checks.append(Check("Sandbox image present", True, image))

    executor = Executor(settings, backend)
    platform_lines: list[str] = []
    sink = logger.add(
        lambda message: platform_lines.append(message.record["message"]),
        level="DEBUG",
        filter=lambda record: "platform=" in record["message"],
    )
    try:
        probe = executor.run(
            RunRequest(code=PROBE_CODE, requirements=["six"], install_mode="per_run")
        )
        failing = executor.run(RunRequest(code=ERROR_CODE))
    except AiDataAgentError as exc:
        return [*checks, Check("Probe run", False, str(exc))]
    finally:
        logger.remove(sink)

    seen = _probe_output(probe)
    env = probe.environment
    sandbox = env.sandbox_dir
    if probe.status != RunStatus.SUCCEEDED or not seen:
        detail = probe.error or probe.install.log_tail[-300:] or probe.stderr[-300:]
        checks.append(Check("Probe run", False, f"status {probe.status.value}: {detail}"))
        return checks
    checks.append(
        Check(
            "Path separator",
            seen["pathsep"] == env.path_separator
            and env.pythonpath.split(seen["pathsep"])[0] == sandbox,
            f"container uses {seen['pathsep']!r}; PYTHONPATH splits into "
            f"{len(env.pythonpath.split(seen['pathsep']))} part(s)",
        )
    )
    installed = {p.name.lower(): p.version for p in probe.install.packages}
    checks.append(
        Check(
            "--target install works",
            "six" in installed and str(seen["six_file"]).startswith(sandbox + "/"),
            f"six {installed.get('six', 'missing')} imported from {seen['six_file']}",
        )
    )
    consistent = (
        not env.mismatches and seen["pythonpath"] == env.pythonpath and seen["home"] == env.home
    )
    checks.append(
        Check(
            "Env consistent across install/verify/execute",
            consistent,
            "PYTHONPATH, HOME and interpreter agree"
            if consistent
            else "; ".join(env.mismatches) or "code saw a different PYTHONPATH or HOME",
        )
    )
    checks.append(
        Check(
            "PYTHONPATH has sandbox dir first",
            seen["pythonpath"].split(seen["pathsep"])[0] == sandbox and seen["home"] == sandbox,
            f"PYTHONPATH={seen['pythonpath']} HOME={seen['home']}",
        )
    )
    checks.append(
        Check(
            "Temp dirs cleaned up",
            env.sandbox_removed is True and failing.environment.sandbox_removed is True,
            f"{sandbox} removed: {env.sandbox_removed}",
        )
    )
    checks.append(
        Check(
            "Logging includes platform info",
            bool(platform_lines),
            platform_lines[0].strip()[:160] if platform_lines else "no platform line logged",
        )
    )
    checks.append(
        Check(
            "Errors handled in container",
            failing.status == RunStatus.FAILED and "RuntimeError" in failing.stderr,
            f"a raising script gave status {failing.status.value}, exit code {failing.exit_code}",
        )
    )
    leftovers = client.containers.list(
        all=True, filters={"label": f"{LABEL_CONTROLLER}={executor.controller_id}"}
    )
    checks.append(
        Check("No container left", not leftovers, f"{len(leftovers)} sandbox container(s) remain")
    )
    return checks


def print_report(checks: list[Check], console: Console) -> None:
    table = Table(show_header=True, header_style="bold")
    table.add_column("check")
    table.add_column("result")
    table.add_column("reason", overflow="fold")
    for check in checks:
        table.add_row(
            check.name, "[green]PASS[/green]" if check.ok else "[red]FAIL[/red]", check.reason
        )
    console.print(table)
