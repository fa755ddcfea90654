"""Which controller process owns a sandbox, and whether that process is still alive.

Every sandbox carries an owner label ``<boot id>:<pid namespace>:<pid>:<start time>``.
A sweep may then remove the sandboxes of a controller that provably died (same
machine boot, same pid namespace, and that pid is gone or is another process
now) without touching those of live controllers sharing the engine, such as a
CLI run next to the daemon. Where the owner cannot be judged (another machine
or namespace), only the sandbox's deadline label decides.

    label = owner_label()
    owner_is_dead(label)    # False while this process lives
    owner_is_alive(label)   # True while this process lives
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

__all__ = ["owner_is_alive", "owner_is_dead", "owner_label"]


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "?"


def _pid_namespace() -> str:
    try:
        link = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return "?"
    return link.partition("[")[2].rstrip("]") or "?"


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: tells a reused pid from the original process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


@functools.cache
def owner_label() -> str:
    pid = os.getpid()
    return f"{_boot_id()}:{_pid_namespace()}:{pid}:{_start_time(pid) or '?'}"


def _judge(label: str) -> bool | None:
    """Whether ``label``'s process lives: True, False, or None when it cannot be told."""
    try:
        boot, namespace, pid, started = label.rsplit(":", 3)
        pid_number = int(pid)
    except ValueError:
        return None
    if "?" in (boot, namespace, started) or boot != _boot_id() or namespace != _pid_namespace():
        return None
    return _start_time(pid_number) == started


def owner_is_dead(label: str) -> bool:
    """True only when ``label``'s process is provably gone; False when unknown."""
    return _judge(label) is False


def owner_is_alive(label: str) -> bool:
    """True only when ``label``'s process provably runs; False when unknown."""
    return _judge(label) is True
