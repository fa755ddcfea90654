"""Write the sandboxes' seccomp profile, ``src/ai_data_agent/executor/seccomp.json``.

    python scripts/seccomp_profile.py           # write it from this host's kernel headers
    python scripts/seccomp_profile.py --check   # exit 1 when the file is not what it writes

The profile allows every system call that the Linux UAPI headers name (the
x86_64 and i386 tables, and the generic table of arm64 and riscv64), except
those in ``DENIED``; a call the headers do not name (one newer than them) is
refused like a denied one. Each denial says why; docs/security.md groups them.
A few calls are allowed only with safe arguments (``personality``, ``clone``),
and ``clone3`` answers ENOSYS so that libc falls back to ``clone``, whose flags
the filter can see. Denied calls fail with EPERM.

The headers are Debian 12's ``linux-libc-dev`` (Linux 6.1); runc answers
ENOSYS, not EPERM, for calls numbered above the newest one a profile names, so
libc's fallbacks for newer calls keep working.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "src" / "ai_data_agent" / "executor" / "seccomp.json"
HEADERS = (
    Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
    Path("/usr/include/x86_64-linux-gnu/asm/unistd_32.h"),
    Path("/usr/include/asm-generic/unistd.h"),
)
# 32-bit ARM's calls outside the generic table (arch/arm/include/uapi/asm/unistd.h).
ARM_PRIVATE = "arm_fadvise64_64 arm_sync_file_range breakpoint cacheflush recv send set_tls".split()

_GROUPS: dict[str, list[str]] = {
    "another process's memory or state (the ptrace family): pid 1 runs as the sandbox user": (
        "ptrace process_vm_readv process_vm_writev kcmp pidfd_getfd process_madvise "
        "process_mrelease"
    ).split(),
    "mounts, namespaces and the root: the sandbox's file system and namespaces are fixed": (
        "mount umount umount2 pivot_root chroot unshare setns open_tree move_mount fsopen "
        "fsconfig fsmount fspick mount_setattr"
    ).split(),
    "kernel modules, kexec and reboot: the host's kernel": (
        "init_module finit_module delete_module kexec_load kexec_file_load reboot"
    ).split(),
    "large kernel attack surface that data code does not need": (
        "bpf perf_event_open userfaultfd io_uring_setup io_uring_enter io_uring_register "
        "keyctl add_key request_key"
    ).split(),
    "host-wide state: setting clocks, swap, accounting, quotas, the kernel log, host names": (
        "settimeofday stime clock_settime clock_settime64 swapon swapoff acct quotactl quotactl_fd syslog sethostname setdomainname vhangup"
    ).split(),
    "file handles bypass the mount's view of the tree (open_by_handle_at escaped containers)": (
        "name_to_handle_at open_by_handle_at fanotify_init lookup_dcookie"
    ).split(),
    "NUMA placement of memory is the operator's (CAP_SYS_NICE in Docker's own profile)": (
        "mbind set_mempolicy get_mempolicy migrate_pages move_pages set_mempolicy_home_node"
    ).split(),
    "x86 I/O ports, LDT and vm86: hardware access and old escalation paths": (
        "iopl ioperm modify_ldt vm86 vm86old"
    ).split(),
    "obsolete or unimplemented: nothing needs them, some were attack surface": (
        "_sysctl sysfs ustat uselib bdflush nfsservctl create_module get_kernel_syms "
        "query_module afs_syscall tuxcall security vserver getpmsg putpmsg break ftime gtty "
        "stty lock mpx prof profil idle"
    ).split(),
}
DENIED: dict[str, str] = {name: why for why, names in _GROUPS.items() for name in names}

# personality(2): PER_LINUX, and the query that changes nothing.
PERSONALITY_ALLOWED = (0x0, 0xFFFFFFFF)
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000
CLONE_NAMESPACE_FLAGS |= 0x10000000 | 0x20000000 | 0x40000000
ENOSYS = 38
CONDITIONAL = {"personality", "clone", "clone3"}


def header_names(headers: tuple[Path, ...] = HEADERS) -> set[str]:
    """Every ``__NR_<name>`` the headers define (``__NR_syscalls`` and the like aside)."""
    names: set[str] = set()
    for header in headers:
        text = header.read_text(encoding="utf-8")
        names |= set(re.findall(r"^#define __NR_([a-z0-9_]+)\s", text, re.MULTILINE))
    return names - {"syscalls", "arch_specific_syscall"}


def build(names: set[str]) -> dict[str, object]:
    """The profile for the system calls ``names``."""
    missing = [name for name in ("read", "write", "execve", "clone") if name not in names]
    if missing:
        raise SystemExit(f"the headers name no {missing}: not a Linux system call table")
    allowed = sorted((names | set(ARM_PRIVATE)) - set(DENIED) - CONDITIONAL)
    syscalls: list[dict[str, object]] = [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]
    syscalls += [
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}],
        }
        for value in PERSONALITY_ALLOWED
    ]
    # clone's flags are its first argument, except on s390 (the second).
    for index, arches in ((0, "excludes"), (1, "includes")):
        syscalls.append(
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ALLOW",
                "args": [
                    {
                        "index": index,
                        "value": CLONE_NAMESPACE_FLAGS,
                        "valueTwo": 0,
                        "op": "SCMP_CMP_MASKED_EQ",
                    }
                ],
                arches: {"arches": ["s390", "s390x"]},
            }
        )
    syscalls.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [
            {
                "architecture": "SCMP_ARCH_X86_64",
                "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            },
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
        ],
        "syscalls": syscalls,
    }


def render(profile: dict[str, object]) -> str:
    return json.dumps(profile, indent=1) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args()
    text = render(build(header_names()))
    if args.check:
        if PROFILE.read_text(encoding="utf-8") != text:
            print(f"{PROFILE} is not what {Path(__file__).name} writes", file=sys.stderr)
            return 1
        return 0
    PROFILE.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
