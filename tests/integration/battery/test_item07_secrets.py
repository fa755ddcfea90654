"""Item 7: the controller's secrets stay on the host; errors show no host paths.

A canary variable in the controller's environment must not appear in the
sandbox (its environment, any process's /proc/*/environ or cmdline, files it
can read) nor in any result or error. Request variables cannot override the
sandbox's own.
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from ai_data_agent import RequestRejected, RunRequest
from ai_data_agent.executor.spec import ENVS_MOUNT

from .conftest import Battery

pytestmark = pytest.mark.integration

HUNT = r"""
import json, os, sys
ENVS = "{envs}"
canary = sys.argv[0] and os.environ.get("NEEDLE_PREFIX", "") + "{needle}"
found = []
if any(canary in v for v in os.environ.values()):
    found.append("environ")
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    for name in ("environ", "cmdline"):
        try:
            with open("/proc/%s/%s" % (pid, name), "rb") as fh:
                if canary.encode() in fh.read():
                    found.append("/proc/%s/%s" % (pid, name))
        except OSError:
            pass
scanned = 0
for top in ("/etc", "/tmp", "/run", "/var", "/home", "/root", "/opt", "/dev/shm", "/proc/1"):
    for root, dirs, files in os.walk(top):
        if root == os.path.dirname(ENVS):
            dirs[:] = [d for d in dirs if os.path.join(root, d) != ENVS]
        for name in files:
            path = os.path.join(root, name)
            try:
                if os.path.islink(path) or os.path.getsize(path) > (1 << 20):
                    continue
                with open(path, "rb") as fh:
                    if canary.encode() in fh.read():
                        found.append(path)
                scanned += 1
            except OSError:
                pass
print(json.dumps({"found": found, "scanned": scanned}))
"""


@pytest.fixture
def canary(monkeypatch: pytest.MonkeyPatch) -> str:
    # Two halves, so the hunting code itself never contains the whole canary.
    value = "canary-" + secrets.token_hex(16)
    monkeypatch.setenv("BATTERY_SECRET_TOKEN", value)
    monkeypatch.setenv("DOCKER_CONFIG_SECRET", value)
    return value


def host_paths() -> list[str]:
    # With the separator: the sandbox's own /tmp/.../work/main.py is no host path.
    return sorted({f"{Path.cwd()}/", f"{sys.prefix}/", f"{Path(__file__).parent}/"})


def test_controller_secrets_never_reach_the_sandbox_or_the_result(
    battery: Battery, canary: str
) -> None:
    head, tail = canary[:10], canary[10:]
    # The environment cache holds only what installs in sandboxes wrote, and as much of
    # it as this engine has cached: its walk would measure the cache, not the sandbox.
    code = HUNT.replace("{needle}", tail).replace("{envs}", ENVS_MOUNT)

    outcome = battery.run(code, env={"NEEDLE_PREFIX": head})

    result = outcome.result
    assert result.status == "succeeded", (result.error, result.stderr[-1000:])
    facts = json.loads(result.stdout)
    assert facts["found"] == [] and facts["scanned"] > 10, facts
    assert canary not in result.model_dump_json()
    battery.assert_host_unchanged()


def test_errors_show_no_host_paths(battery: Battery, tmp_path: Path) -> None:
    failing = battery.run(
        "import os\nopen('/nonexistent/x')\n", artifacts_dir=tmp_path / "artifacts"
    )
    with pytest.raises(RequestRejected) as rejected:
        battery.executor().run(RunRequest(code="print(1)", timeout_s=10**6))

    assert failing.result.status == "failed"
    assert "FileNotFoundError" in failing.result.stderr
    texts = [failing.result.model_dump_json(), str(rejected.value)]
    for text in texts:
        for path in [*host_paths(), f"{tmp_path}/"]:
            assert path not in text, (path, text[:500])
    battery.assert_host_unchanged()


@pytest.mark.parametrize(
    "name",
    [
        "PYTHONPATH",
        "HOME",
        "PATH",
        "LD_PRELOAD",
        "HTTPS_PROXY",
        "SSL_CERT_FILE",
        "PIP_INDEX_URL",
        "PYTHONSTARTUP",
        "AI_DATA_AGENT_OUTPUTS",
        "bad-name",
        "X" * 200,
    ],
)
def test_request_env_cannot_override_the_sandbox(name: str) -> None:
    with pytest.raises(ValidationError):
        RunRequest(code="print(1)", env={name: "/tmp/evil"})


def test_benign_twin_listed_and_requested_variables_arrive(
    battery: Battery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATTERY_SHARED", "listed-by-the-operator")
    executor = battery.executor(env_passthrough=["BATTERY_SHARED"])
    code = "import os\nprint(os.environ['BATTERY_SHARED'], os.environ['GREETING'])\n"

    outcome = battery.run(code, using=executor, env={"GREETING": "hello"})

    assert outcome.result.status == "succeeded", (outcome.result.error, outcome.result.stderr)
    assert outcome.result.stdout == "listed-by-the-operator hello\n"
    battery.assert_host_unchanged()
