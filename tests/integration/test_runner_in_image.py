"""The shipped sandbox modules import and work in the unmodified sandbox image.

A plain, long-lived container (testcontainers, no executor involved) loads the
bundle the way the container's bootstrap does, and exercises the pure steps as
uid 1000 with ``python3 -I -S``: only the standard library and the image are used.
"""

from __future__ import annotations

import json

import docker
import pytest
from testcontainers.core.container import DockerContainer

from ai_data_agent import Executor
from ai_data_agent.executor.delivery import bundle
from ai_data_agent.executor.spec import LABEL_MANAGED, SANDBOX_USER
from ai_data_agent.sandbox.bootstrap import source_of

pytestmark = pytest.mark.integration

# After the bootstrap's loader and the bundle; prints one JSON line.
EXERCISE = r"""
import io, json, os, stat, sys
boot = {"__name__": "bootstrap"}
exec(BOOTSTRAP, boot)
boot["install"](boot["read_bundle"](io.BytesIO(BUNDLE)))
from ai_data_agent.sandbox.environment import (
    build_env, cgroup_oom_kills, env_mismatches, make_sandbox_dir, network_interfaces,
    remove_tree,
)
from ai_data_agent.sandbox.install import pip_install_command, tail
from ai_data_agent.sandbox.codeproc import CodeProcess
from ai_data_agent.sandbox.verify import inspect

def _exercise():
    facts = {"uid": os.getuid(), "isolated": sys.flags.isolated, "pathsep": os.pathsep}
    sandbox = make_sandbox_dir()
    facts["sandbox"] = sandbox
    facts["sandbox_mode"] = oct(stat.S_IMODE(os.stat(sandbox).st_mode))
    env = build_env({"PYTHONPATH": "/opt/lib::", "KEEP": "1"}, sandbox)
    facts["env"] = {k: env[k] for k in ("PYTHONPATH", "HOME", "KEEP")}
    facts["pip_cmd"] = pip_install_command(sys.executable, "reqs.txt", sandbox)
    facts["tail"] = tail("abcdef", 3)
    facts["interfaces"] = network_interfaces()
    facts["oom_kills"] = cgroup_oom_kills()
    # The code's interpreter, in the env the runner builds, as the runner starts it.
    child = CodeProcess.start(env, sandbox, ["json"])
    warm = child.report(60.0) or {}
    child.kill()
    facts["code_imported"] = warm.get("imported")
    observed = warm.get("observed") or {}
    facts["verify_mismatches"] = env_mismatches(dict(env, executable=sys.executable), observed)
    facts["inspect"] = inspect(["six"], sandbox, [sandbox])
    locked = os.path.join(sandbox, "locked")
    os.mkdir(locked)
    open(os.path.join(locked, "file"), "w").close()
    os.chmod(locked, 0o500)
    facts["removed"] = remove_tree(sandbox)
    facts["modules"] = sorted(sys.modules)
    facts["stdlib_module_names"] = sorted(sys.stdlib_module_names)
    print(json.dumps(facts))

_exercise()
"""

SCRIPT_PATH = "/tmp/exercise.py"
APPEND = "import sys; open(sys.argv[1], 'a').write(sys.argv[2])"
CHUNK = 32_000  # characters; each stays under 128 KiB once UTF-8 encoded
BASELINE = "import json, sys; print(json.dumps(sorted(sys.modules)))"


def exercise_script() -> str:
    return f"BOOTSTRAP = {source_of('bootstrap')!r}\nBUNDLE = {bundle()!r}\n{EXERCISE}"


def test_runner_steps_work_in_the_unmodified_image(
    executor: Executor, docker_client: docker.DockerClient
) -> None:
    image = executor.backend.resolve_image()  # present locally: nothing is pulled
    script = exercise_script()
    sandbox_like = (
        DockerContainer(image)
        .with_command(["python3", "-c", "import time; time.sleep(600)"])
        # testcontainers passes this string to Docker as the mount's options.
        .with_tmpfs_mount("/tmp", "size=64m,mode=1777")
        .with_kwargs(
            user=SANDBOX_USER,
            network="none",
            read_only=True,
            labels={"ai-data-agent-tests.role": "runner-in-image"},
        )
    )

    with sandbox_like:
        container_id = sandbox_like.get_container_id()
        labels = sandbox_like.get_wrapped_container().labels
        # The script exceeds the kernel's limit for one argument (128 KiB): it
        # reaches the container's tmpfs in pieces and runs from there.
        for start in range(0, len(script), CHUNK):
            append = ["python3", "-c", APPEND, SCRIPT_PATH, script[start : start + CHUNK]]
            append_code, append_output = sandbox_like.exec(append)
            assert append_code == 0, append_output.decode(errors="replace")
        exit_code, output = sandbox_like.exec(["python3", "-I", "-S", SCRIPT_PATH])
        # What the bare interpreter loads at startup.
        baseline_code, baseline = sandbox_like.exec(["python3", "-I", "-S", "-c", BASELINE])

    assert LABEL_MANAGED not in labels
    assert docker_client.containers.list(all=True, filters={"id": container_id}) == []
    text = output.decode(errors="replace")
    assert exit_code == 0, text
    facts = json.loads(text.strip().splitlines()[-1])
    sandbox = facts["sandbox"]
    assert facts["uid"] == 1000
    assert facts["isolated"] == 1
    assert facts["pathsep"] == ":"
    assert sandbox.startswith("/tmp/ai_data_agent_")
    assert facts["sandbox_mode"] == "0o700"
    assert facts["env"] == {
        "PYTHONPATH": f"{sandbox}:/opt/lib",
        "HOME": sandbox,
        "KEEP": "1",
    }
    pip_cmd = facts["pip_cmd"]
    assert pip_cmd[1:4] == ["-m", "pip", "install"]
    assert pip_cmd[pip_cmd.index("--target") + 1] == sandbox
    assert facts["tail"] == "[...]\ndef"
    assert facts["interfaces"] == ["lo"]
    assert facts["oom_kills"] == 0
    assert facts["verify_mismatches"] == []
    assert facts["code_imported"] == ["json"]
    assert facts["inspect"] == {"found": {"six": None}, "packages": []}
    assert facts["removed"] is True
    assert baseline_code == 0, baseline
    stdlib = set(facts["stdlib_module_names"])
    startup = set(json.loads(baseline.decode().strip().splitlines()[-1]))
    added = [
        m
        for m in facts["modules"]
        if m not in startup and m.partition(".")[0] not in stdlib | {"ai_data_agent"}
    ]
    assert added == [], "the sandbox modules imported modules outside the standard library"
