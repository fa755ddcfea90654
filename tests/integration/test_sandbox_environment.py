"""What user code sees inside a real sandbox: user, mounts, limits, privileges, env.

Each test runs a probe through `Executor.run`; the probe prints one JSON line of
facts read from inside the container (``/proc``, cgroup files, ``os.environ``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from ai_data_agent import Executor, RunResult, Settings
from tests.support.logs import LogLine

pytestmark = pytest.mark.integration

Probe = Callable[..., tuple[RunResult, dict[str, Any]]]
MiB = 1024 * 1024
SANDBOX_DIR = re.compile(r"/tmp/ai_data_agent_[A-Za-z0-9_]+")

UID_PROBE = """
import json, os
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "euid": os.geteuid()}))
"""


def test_code_runs_as_uid_and_gid_1000(probe: Probe) -> None:
    result, facts = probe(UID_PROBE)

    assert facts == {"uid": 1000, "gid": 1000, "euid": 1000}
    assert result.environment.uid == 1000


MOUNTS_PROBE = """
import json
mounts = {}
with open("/proc/mounts") as fh:
    for line in fh:
        device, target, fstype, options = line.split()[:4]
        mounts[target] = {"fstype": fstype, "options": options.split(",")}
print(json.dumps({"tmp": mounts.get("/tmp"), "root": mounts.get("/")}))
"""


def _size_mib(options: list[str]) -> float:
    (size,) = [o.removeprefix("size=") for o in options if o.startswith("size=")]
    units = {"k": 1024, "m": MiB, "g": 1024 * MiB}
    if size[-1].lower() in units:
        return int(size[:-1]) * units[size[-1].lower()] / MiB
    return int(size) / MiB


def test_tmp_is_a_tmpfs_of_the_configured_size(
    make_settings: Callable[..., Settings],
    make_executor: Callable[..., Executor],
    settings: Settings,
    probe: Probe,
) -> None:
    small = make_settings(tmpfs_mb=256)
    assert small.tmpfs_mb != settings.tmpfs_mb  # so the size must follow the setting

    _, facts = probe(MOUNTS_PROBE, using=make_executor(small))

    tmp = facts["tmp"]
    assert tmp is not None, "/tmp is not a separate mount"
    assert tmp["fstype"] == "tmpfs"
    assert _size_mib(tmp["options"]) == small.tmpfs_mb
    assert "noexec" not in tmp["options"]  # C extensions installed there must load


CGROUP_PROBE = """
import json, os

def read(path):
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None

v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
if v2:
    cpu_max = (read("/sys/fs/cgroup/cpu.max") or "max 100000").split()
    facts = {
        "memory": read("/sys/fs/cgroup/memory.max"),
        "swap": read("/sys/fs/cgroup/memory.swap.max"),
        "cpu_quota": cpu_max[0],
        "cpu_period": cpu_max[1],
        "pids": read("/sys/fs/cgroup/pids.max"),
    }
else:
    facts = {
        "memory": read("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
        "memsw": read("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"),
        "cpu_quota": read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
        "cpu_period": read("/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
        "pids": read("/sys/fs/cgroup/pids/pids.max"),
    }
facts["v2"] = v2
print(json.dumps(facts))
"""


def test_memory_and_cpu_limits_of_the_request_are_in_the_cgroup(probe: Probe) -> None:
    _, facts = probe(CGROUP_PROBE, memory_mb=300, cpus=0.5)

    assert facts["memory"] == str(300 * MiB)
    if facts["v2"]:
        # Swap equal to memory in Docker terms means no swap on top in v2 terms.
        assert facts["swap"] in (None, "0")
    elif facts["memsw"] is not None:  # only with swap accounting enabled
        assert facts["memsw"] == str(300 * MiB)
    assert facts["cpu_quota"] != "max" and int(facts["cpu_quota"]) > 0
    assert int(facts["cpu_quota"]) / int(facts["cpu_period"]) == pytest.approx(0.5)


HARDENING_PROBE = """
import errno, json, os

def write_errno(path):
    try:
        with open(path, "w") as fh:
            fh.write("x")
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return None

status = {}
with open("/proc/self/status") as fh:
    for line in fh:
        key, _, value = line.partition(":")
        status[key] = value.strip()
root_options = None
with open("/proc/mounts") as fh:
    for line in fh:
        fields = line.split()
        if fields[1] == "/":
            root_options = fields[3].split(",")
pids = None
for path in ("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"):
    if os.path.exists(path):
        with open(path) as fh:
            pids = fh.read().strip()
        break
print(json.dumps({
    "etc": write_errno("/etc/x"),
    # World-writable in the image: only a read-only root stops uid 1000 here.
    "var_tmp": write_errno("/var/tmp/x") if os.path.isdir("/var/tmp") else "absent",
    "root_options": root_options,
    "pids_max": pids,
    "no_new_privs": status.get("NoNewPrivs"),
    "cap_eff": status.get("CapEff"),
    "cap_prm": status.get("CapPrm"),
}))
"""


def test_root_is_read_only_and_privileges_are_dropped(settings: Settings, probe: Probe) -> None:
    _, facts = probe(HARDENING_PROBE)

    assert "ro" in facts["root_options"]
    assert facts["etc"] in ("EROFS", "EACCES")
    assert facts["var_tmp"] in ("EROFS", "absent")
    assert facts["pids_max"] == str(settings.pids_limit)
    assert facts["no_new_privs"] == "1"
    assert int(facts["cap_eff"], 16) == 0
    assert int(facts["cap_prm"], 16) == 0


ENV_PROBE = """
import json, os, sys
# Leave a directory without write bits behind: cleanup must still remove it.
os.mkdir("locked")
open("locked/file", "w").close()
os.chmod("locked", 0o500)
print(json.dumps({
    "PYTHONPATH": os.environ.get("PYTHONPATH"),
    "HOME": os.environ.get("HOME"),
    "cwd": os.getcwd(),
    "sys_path": sys.path,
    "interfaces": sorted(os.listdir("/sys/class/net")),
}))
"""


def test_sandbox_dir_is_home_first_on_pythonpath_and_holds_cwd(
    probe: Probe, log_lines: list[LogLine]
) -> None:
    result, facts = probe(ENV_PROBE)
    env = result.environment
    sandbox = env.sandbox_dir

    assert SANDBOX_DIR.fullmatch(sandbox), sandbox
    assert facts["PYTHONPATH"].split(":")[0] == sandbox
    assert facts["PYTHONPATH"] == env.pythonpath
    assert facts["HOME"] == sandbox == env.home
    assert PurePosixPath(facts["cwd"]).is_relative_to(sandbox)
    assert sandbox in facts["sys_path"]
    assert env.path_separator == ":"
    assert env.sandbox_removed is True
    assert env.mismatches == []
    assert not [line for line in log_lines if "Environment mismatch" in line.message]
    # No requirements: the container never had a network.
    assert facts["interfaces"] == ["lo"]


REQUIREMENT_PROBE = """
import json, os, six
print(json.dumps({
    "six_file": six.__file__,
    "six_version": six.__version__,
    "interfaces": sorted(os.listdir("/sys/class/net")),
}))
"""


def test_requirement_installs_into_the_sandbox_and_the_network_is_gone_before_code(
    probe: Probe, log_lines: list[LogLine]
) -> None:
    result, facts = probe(REQUIREMENT_PROBE, requirements=["six"])
    sandbox = result.environment.sandbox_dir

    assert SANDBOX_DIR.fullmatch(sandbox), sandbox
    assert facts["six_file"].startswith(sandbox + "/")
    assert [(p.name, p.version) for p in result.install.packages] == [("six", facts["six_version"])]
    assert result.install.requirements == ["six"]
    assert any("Successfully installed six==" in line.message for line in log_lines), log_lines
    # The install needed the network; the code must not have it.
    assert facts["interfaces"] == ["lo"]
    assert result.environment.mismatches == []
    assert not [line for line in log_lines if "Environment mismatch" in line.message]
    assert result.environment.sandbox_removed is True


HOSTS_PROBE = """
import json, os, socket
with open("/proc/self/mountinfo") as fh:
    source = [line.split()[3] for line in fh if line.split()[4] == "/etc/hosts"]
with socket.socket() as server:
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    socket.create_connection(("localhost", server.getsockname()[1]), timeout=3).close()
print(json.dumps({"hosts_from": source, "interfaces": sorted(os.listdir("/sys/class/net"))}))
"""


def test_without_a_network_a_sandbox_gets_the_controllers_hosts_file_else_the_engines(
    settings: Settings,
    make_executor: Callable[..., Executor],
    probe: Probe,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    executor = make_executor(settings)
    hosts = tmp_path / "ai-data-agent" / "sandbox-hosts"

    _, lean = probe(HOSTS_PROBE, using=executor)  # localhost connects, or the probe fails
    assert lean == {"hosts_from": [str(hosts)], "interfaces": ["lo"]}

    hosts.unlink()  # as an engine on another machine would see it
    _, engines = probe(HOSTS_PROBE, using=executor)
    _, after = probe(HOSTS_PROBE, using=executor)
    for facts in (engines, after):
        [source] = facts["hosts_from"]
        assert source.endswith("/hosts") and source != str(hosts)  # the engine's own
        assert facts["interfaces"] == ["lo"]
    assert not hosts.exists()  # not written again: this executor keeps the engine's setup
