"""The sandboxes' seccomp profile (executor/seccomp.json, written by scripts/seccomp_profile.py).

The profile allows the system calls of the kernel headers except the denials
listed in docs/security.md. These tests pin the denials, the few
argument-filtered rules, that what Python, pip/uv, threads and subprocesses
need is there, and that the script still writes the committed file.
"""

from __future__ import annotations

import importlib.util
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from ai_data_agent.executor.docker import volumes as docker_volumes
from ai_data_agent.executor.spec import sandbox_security_opt, seccomp_profile

ROOT = Path(__file__).parents[2]
PROFILE_FILE = ROOT / "src" / "ai_data_agent" / "executor" / "seccomp.json"
SCRIPT = ROOT / "scripts" / "seccomp_profile.py"
ALLOW = "SCMP_ACT_ALLOW"

# Allowed by Docker 20.10's default profile, denied by ours (docs/security.md).
REMOVED = {
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "process_madvise",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "modify_ldt",
    "process_mrelease",
}
# Denied by Docker's default for a container without capabilities, and by ours.
STILL_DENIED = set(
    """bpf mount umount2 unshare setns keyctl add_key request_key userfaultfd perf_event_open
    init_module finit_module delete_module kexec_load open_by_handle_at reboot swapon acct
    chroot syslog clock_settime settimeofday iopl ioperm mbind set_mempolicy pivot_root
    fsopen open_tree move_mount name_to_handle_at kexec_file_load uselib _sysctl""".split()
)
# A sample of what interpreters, installers, threads and subprocesses use.
STILL_ALLOWED = set(
    """execve fork vfork wait4 futex mmap mprotect munmap brk openat read write close socket
    connect getrandom epoll_wait rt_sigaction set_robust_list rseq prlimit64 statx getdents64
    sched_getaffinity memfd_create pipe2 kill prctl seccomp chown arch_prctl clock_gettime
    adjtimex clock_adjtime close_range faccessat2 epoll_pwait2 membarrier copy_file_range
    set_tls""".split()
)
PERSONALITY_QUERY = 0xFFFFFFFF
NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
ENOSYS = 38


def profile() -> dict[str, Any]:
    loaded = json.loads(seccomp_profile())
    assert isinstance(loaded, dict)
    return loaded


def allowing(name: str) -> list[dict[str, Any]]:
    return [r for r in profile()["syscalls"] if name in r["names"] and r["action"] == ALLOW]


def test_the_inline_profile_is_the_packaged_file() -> None:
    assert json.loads(seccomp_profile()) == json.loads(PROFILE_FILE.read_text(encoding="utf-8"))
    assert sandbox_security_opt() == ("no-new-privileges:true", f"seccomp={seccomp_profile()}")


def test_the_file_ships_in_the_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    package_data = pyproject["tool"]["setuptools"]["package-data"]
    assert "seccomp.json" in package_data["ai_data_agent.executor"]


def test_anything_not_listed_is_denied_with_eperm() -> None:
    loaded = profile()
    assert loaded["defaultAction"] == "SCMP_ACT_ERRNO"
    assert "defaultErrnoRet" not in loaded  # EPERM
    assert {arch["architecture"] for arch in loaded["archMap"]} >= {
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_AARCH64",
    }


@pytest.mark.parametrize("name", sorted(REMOVED | STILL_DENIED))
def test_removed_and_privileged_calls_are_allowed_by_no_rule(name: str) -> None:
    assert allowing(name) == []


def test_no_rule_is_unlocked_by_a_capability_or_a_kernel_version() -> None:
    for rule in profile()["syscalls"]:
        conditions = {**rule.get("includes", {}), **rule.get("excludes", {})}
        assert set(conditions) <= {"arches"}, rule


def test_personality_allows_only_linux_and_the_query() -> None:
    rules = allowing("personality")
    values = sorted(arg["value"] for rule in rules for arg in rule["args"])
    assert values == [0, PERSONALITY_QUERY]
    for rule in rules:
        assert rule["args"] == [
            {"index": 0, "value": rule["args"][0]["value"], "op": "SCMP_CMP_EQ"}
        ]


def test_clone_never_takes_namespace_flags_and_clone3_answers_enosys() -> None:
    for rule in allowing("clone"):
        [arg] = rule["args"]
        assert arg["op"] == "SCMP_CMP_MASKED_EQ" and arg["value"] == NAMESPACE_FLAGS
        assert arg.get("valueTwo", 0) == 0
    [clone3] = [r for r in profile()["syscalls"] if "clone3" in r["names"]]
    assert clone3["action"] == "SCMP_ACT_ERRNO" and clone3["errnoRet"] == ENOSYS


def test_what_programs_need_is_allowed_unconditionally() -> None:
    [main] = [r for r in profile()["syscalls"] if len(r["names"]) > 100]
    assert main["action"] == ALLOW and not main.get("args") and not main.get("includes")
    assert STILL_ALLOWED <= set(main["names"])
    assert len(main["names"]) == len(set(main["names"]))
    assert not set(main["names"]) & (REMOVED | STILL_DENIED | {"personality", "clone", "clone3"})


def load_script() -> Any:
    spec = importlib.util.spec_from_file_location("seccomp_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_script_writes_the_committed_file() -> None:
    script = load_script()
    headers = [h for h in script.HEADERS if not h.exists()]
    assert not headers, f"{headers} missing: apt-get install linux-libc-dev"
    assert script.render(script.build(script.header_names())) == PROFILE_FILE.read_text("utf-8")


def test_every_denial_names_a_real_call_and_says_why() -> None:
    script = load_script()
    names = script.header_names()
    assert set(script.DENIED) <= names, sorted(set(script.DENIED) - names)
    assert all(why.strip() for why in script.DENIED.values())
    assert set(script.DENIED) >= REMOVED | STILL_DENIED


def test_a_table_without_the_basic_calls_is_refused(tmp_path: Path) -> None:
    script = load_script()
    header = tmp_path / "unistd.h"
    header.write_text("#define __NR_read 0\n#define __NR_write 1\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="execve"):
        script.build(script.header_names((header,)))


class RecordingVolumeAPI:
    """Just enough of docker-py's APIClient for the volume helper."""

    def __init__(self) -> None:
        self.host_config: dict[str, Any] = {}

    def create_host_config(self, **kwargs: Any) -> dict[str, Any]:
        self.host_config = kwargs
        return kwargs

    def create_container(self, *args: Any, **kwargs: Any) -> dict[str, str]:
        return {"Id": "helper-0123456789ab"}

    def start(self, container_id: str) -> None:
        pass

    def wait(self, container_id: str, timeout: int) -> dict[str, int]:
        return {"StatusCode": 0}

    def remove_container(self, container_id: str, force: bool) -> None:
        pass


def test_the_volume_helper_runs_under_the_same_profile() -> None:
    api = RecordingVolumeAPI()
    docker_volumes._chown_to_sandbox_user(api, "vol", "image", "runc")
    assert api.host_config["security_opt"] == list(sandbox_security_opt())
    assert api.host_config["cap_add"] == ["CHOWN"] and api.host_config["cap_drop"] == ["ALL"]
