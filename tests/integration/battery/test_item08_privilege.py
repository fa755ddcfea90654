"""Item 8: no way up. setuid(0), su, mount, unshare, ptrace, keyctl and bpf all fail.

On runc the process status shows the container settings at work: no new
privileges, seccomp in filter mode (our profile, executor/seccomp.json: Docker's
default without ptrace and the other calls docs/security.md lists, each of
which answers EPERM), no capabilities. On runsc (gVisor) the
code talks to gVisor's kernel, not the host's: /proc there reports no seccomp
(the Sentry, not the code, is filtered), namespaces are emulated inside the
sandbox, so the runsc variant checks the host side instead: every host process
of the sandbox runs under seccomp with no new privileges.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from .conftest import RUNTIMES, VARIANTS, Battery, host_processes_of

pytestmark = pytest.mark.integration

# x86_64 syscall numbers (the battery's machine); errno 0 means it succeeded.
PROBE = r"""
import ctypes, errno, json, os, platform, subprocess
fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
out = {"machine": platform.machine(), "release": platform.release(), "uid": os.getuid(), "fds": fds}
# The runner (the parent) holds the run's frame token in its memory alone.
for name in ("mem", "environ", "fd"):
    path = "/proc/%d/%s" % (os.getppid(), name)
    try:
        os.listdir(path) if name == "fd" else open(path, "rb").read(1)
        out["runner_" + name] = "readable"
    except OSError as exc:
        out["runner_" + name] = type(exc).__name__

def sys_call(name, nr, *args):
    ctypes.set_errno(0)
    ret = libc.syscall(nr, *args)
    out[name] = 0 if ret >= 0 else ctypes.get_errno()
    return ret

# Before the unshare below: in a new user namespace a process holds every capability.
status = {}
for line in open("/proc/self/status"):
    key, _, value = line.partition(":")
    status[key] = value.strip()
out["status"] = {k: status.get(k) for k in ("NoNewPrivs", "Seccomp", "CapEff", "CapPrm", "CapBnd", "CapAmb")}

def run(name, argv):
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
        out[name] = proc.returncode
    except (OSError, subprocess.TimeoutExpired) as exc:
        out[name] = repr(exc)

try:
    os.setuid(0)
    out["setuid"] = 0
except OSError as exc:
    out["setuid"] = exc.errno
run("su", ["su", "-c", "id -u", "root"])
run("mount_cmd", ["mount", "-t", "tmpfs", "none", "/mnt"])
os.makedirs("/tmp/mnt", exist_ok=True)
sys_call("mount", 165, b"none", b"/tmp/mnt", b"tmpfs", 0, None)
sys_call("unshare_user", 272, 0x10000000)  # CLONE_NEWUSER
sys_call("unshare_mount", 272, 0x00020000)  # CLONE_NEWNS
sys_call("keyctl", 250, 0, -3, 1)  # KEYCTL_GET_KEYRING_ID of the session keyring, create
sys_call("add_key", 248, b"user", b"battery", b"x", 1, -3)
sys_call("bpf", 321, 5, None, 0)  # BPF_PROG_LOAD without attributes
PTRACE_ATTACH, PTRACE_DETACH = 16, 17
if sys_call("ptrace_runner", 101, PTRACE_ATTACH, os.getppid(), None, None) >= 0:
    libc.syscall(101, PTRACE_DETACH, os.getppid(), None, None)
print(json.dumps(out))
"""
PTRACE_PID1 = r"""
import ctypes, json
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
ret = libc.syscall(101, 16, 1, None, None)  # PTRACE_ATTACH to pid 1 (the bootstrap)
err = ctypes.get_errno()
if ret >= 0:
    libc.syscall(101, 17, 1, None, 0)  # PTRACE_DETACH, so init may carry on
print(json.dumps({"ptrace_pid1": 0 if ret >= 0 else err}))
"""
# Calls our seccomp profile removes from Docker's default: each answers EPERM under runc.
FORBIDDEN = r"""
import ctypes, json, os, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
out = {}

def sys_call(name, nr, *args):
    ctypes.set_errno(0)
    ret = libc.syscall(nr, *args)
    out[name] = 0 if ret >= 0 else ctypes.get_errno()
    return ret

class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

buf = ctypes.create_string_buffer(64)
local = IoVec(ctypes.cast(buf, ctypes.c_void_p), 64)
remote = IoVec(ctypes.cast(buf, ctypes.c_void_p), 64)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
if sys_call("ptrace_pid1", 101, 16, 1, None, None) >= 0:  # PTRACE_ATTACH
    libc.syscall(101, 17, 1, None, 0)
if sys_call("ptrace_child", 101, 16, child.pid, None, None) >= 0:
    os.waitpid(child.pid, 0)
    libc.syscall(101, 17, child.pid, None, 0)
sys_call("ptrace_traceme", 101, 0, 0, None, None)  # PTRACE_TRACEME
for name, pid in (("pid1", 1), ("child", child.pid), ("self", os.getpid())):
    sys_call(f"process_vm_readv_{name}", 310, pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    sys_call(f"process_vm_writev_{name}", 311, pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
sys_call("kcmp", 312, os.getpid(), child.pid, 0, 0, 0)  # KCMP_FILE
sys_call("pidfd_getfd", 438, 0, 0, 0)
params = ctypes.create_string_buffer(120)
sys_call("io_uring_setup", 425, 8, params)
sys_call("personality_linux32", 135, ctypes.c_ulong(0x0008))  # PER_LINUX32
sys_call("personality_uname26", 135, ctypes.c_ulong(0x0020000))  # UNAME26
sys_call("modify_ldt", 154, 0, buf, 16)  # read the LDT
child.kill()
child.wait()
print(json.dumps(out))
"""
NO_CAPS = "0000000000000000"
EPERM = 1


def probe(battery: Battery, code: str) -> dict[str, Any]:
    outcome = battery.run(code, timeout_s=30)
    assert outcome.result.status == "succeeded", (outcome.result.error, outcome.result.stderr)
    facts = json.loads(outcome.result.stdout.strip().splitlines()[-1])
    assert isinstance(facts, dict)
    return facts


def host_status(pid: str) -> dict[str, str]:
    fields = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


@pytest.mark.parametrize("battery", VARIANTS, indirect=True)
def test_privilege_escalation_fails(battery: Battery) -> None:
    facts = probe(battery, PROBE)

    assert facts["uid"] == 1000
    assert facts["fds"] == [0, 1, 2, 3], facts  # 3: the listing's own; no runner pipe
    runner = {k: v for k, v in facts.items() if k.startswith("runner_")}
    assert runner["runner_mem"] == "PermissionError", runner  # where the frame token lives
    if battery.runtime == "runc":  # gVisor lets these two through: the token is in neither
        assert runner["runner_environ"] == runner["runner_fd"] == "PermissionError", runner
    assert facts["setuid"] != 0 and facts["su"] != 0 and facts["mount_cmd"] != 0, facts
    for call in ("mount", "keyctl", "add_key", "bpf", "ptrace_runner"):
        assert facts[call] != 0, f"{call} succeeded: {facts}"
    status = facts["status"]
    assert status["CapEff"] == status["CapPrm"] == status["CapBnd"] == NO_CAPS, status
    if battery.runtime == "runc":
        assert facts["unshare_user"] != 0 and facts["unshare_mount"] != 0, facts
        assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2", status
    else:
        # gVisor's own kernel: namespaces exist only inside the Sentry.
        assert facts["release"] != os.uname().release, "runsc code saw the host kernel"
    battery.assert_host_unchanged()


@pytest.mark.parametrize("battery", ["runsc"], indirect=True)
def test_gvisor_sandbox_runs_under_seccomp_on_the_host(battery: Battery) -> None:
    seen: dict[str, dict[str, str]] = {}

    def look(event: Any) -> None:
        if event.kind == "phase" and event.data == "running":
            for line in host_processes_of(battery.container_ids()):
                pid = line.split(":", 1)[0]
                try:
                    seen[line] = host_status(pid)
                except OSError:
                    pass

    outcome = battery.run("import time; time.sleep(1)", on_event=look)

    assert outcome.result.status == "succeeded"
    assert seen, "no host process of the runsc sandbox was found"
    sandbox = {k: v for k, v in seen.items() if "runsc-sandbox" in k or "boot" in k}
    assert sandbox, sorted(seen)
    for line, status in sandbox.items():
        assert status["Seccomp"] == "2", (line, status.get("Seccomp"))
    battery.assert_host_unchanged()


@pytest.mark.parametrize("battery", RUNTIMES, indirect=True)
def test_ptrace_of_pid_1_fails(battery: Battery) -> None:
    facts = probe(battery, PTRACE_PID1)

    # pid 1 (the bootstrap) has the same uid and is dumpable: only seccomp stands in the way under runc.
    if battery.runtime == "runc":
        assert facts["ptrace_pid1"] == EPERM, facts
    else:
        assert facts["ptrace_pid1"] != 0, facts
    battery.assert_host_unchanged()


def test_calls_removed_from_the_seccomp_profile_fail_with_eperm(battery: Battery) -> None:
    facts = probe(battery, FORBIDDEN)

    assert facts == dict.fromkeys(facts, EPERM), facts
    assert {"ptrace_pid1", "process_vm_readv_pid1", "io_uring_setup", "modify_ldt"} <= set(facts)
    battery.assert_host_unchanged()


@pytest.mark.parametrize("battery", RUNTIMES, indirect=True)
def test_benign_twin_unprivileged_system_calls_work(battery: Battery) -> None:
    code = r"""
import ctypes, json, os, signal, subprocess, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
os.kill(child.pid, signal.SIGKILL)
_, status = os.waitpid(child.pid, 0)
done = []
threads = [threading.Thread(target=done.append, args=(i,)) for i in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
persona = libc.syscall(135, ctypes.c_ulong(0xFFFFFFFF))  # query: allowed
print(json.dumps({"child_killed": os.WTERMSIG(status), "threads": len(done),
                  "persona": persona, "set_linux": libc.syscall(135, ctypes.c_ulong(0)),
                  "whoami": os.getuid(), "tmp_write": open("/tmp/x", "w").write("x")}))
"""
    facts = probe(battery, code)

    if battery.runtime == "runsc":  # gVisor refuses personality(2) here (EINVAL)
        assert facts.pop("persona") == facts.pop("set_linux") == -1, facts
    else:
        assert facts.pop("persona") == facts.pop("set_linux") == 0, facts
    assert facts == {"child_killed": 9, "threads": 8, "whoami": 1000, "tmp_write": 1}
    battery.assert_host_unchanged()


def test_code_that_stops_pid_1_still_gets_a_result(battery: Battery) -> None:
    # Were ptrace to reach pid 1 (our seccomp profile denies it under runc), the bootstrap
    # would be left in a stop: it could not reap the runner, so the container would not
    # exit by itself after the result. The controller's bounded wait must still end in
    # a result and a removed container.
    code = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
if libc.syscall(101, 16, 1, None, None) == 0:  # PTRACE_ATTACH
    os.waitpid(1, 0x40000000)  # __WALL
    libc.syscall(101, 17, 1, None, 19)  # PTRACE_DETACH, delivering SIGSTOP
    print(open("/proc/1/status").read().splitlines()[2])
"""
    outcome = battery.run(code, timeout_s=10)

    assert outcome.result.status in {"succeeded", "timed_out"}, outcome.result.error
    assert outcome.elapsed_s < 10 + 2 + 15
    battery.assert_host_unchanged()
