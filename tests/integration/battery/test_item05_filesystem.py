"""Item 5: the sandbox's file system. /tmp fills up (ENOSPC); everything else is read-only.

Writes to /, /etc, site-packages, /proc/sys and /sys fail with EROFS or EACCES;
a million files end in a clear status within the deadline (tmpfs space or the
memory limit, which also pays for inodes). The host disk under Docker's root
directory does not grow.
"""

from __future__ import annotations

import errno
import json
import shutil

import docker
import pytest

from .conftest import Battery

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
# Unrelated activity on the engine (other images, logs) may move the disk a little.
DISK_TOLERANCE = 100 * MiB

WRITES = r"""
import errno, json, os, site, sysconfig
out = {}
def attempt(name, path, size=1):
    try:
        with open(path, "wb") as fh:
            left = size
            while left:
                left -= fh.write(b"\0" * min(left, 1 << 20))
        out[name] = 0
    except OSError as exc:
        out[name] = exc.errno
attempt("tmp_fill", "/tmp/fill", 4 << 30)
os.unlink("/tmp/fill")
attempt("root", "/battery")
attempt("etc", "/etc/battery")
attempt("site_packages", os.path.join(sysconfig.get_paths()["purelib"], "battery.py"))
attempt("usr_local", "/usr/local/lib/battery.py")
attempt("proc_sys", "/proc/sys/kernel/hostname")
attempt("sys", "/sys/kernel/uevent_helper")
attempt("var_tmp", "/var/tmp/battery", 1 << 30)
print(json.dumps(out))
"""
MANY_FILES = r"""
import os
os.mkdir("/tmp/many")
n = 0
try:
    for n in range(1_000_000):
        open("/tmp/many/%d" % n, "w").close()
except OSError as exc:
    print("stopped after", n, "files:", exc.strerror, flush=True)
    raise
"""


def docker_disk_used(docker_client: docker.DockerClient) -> int:
    return shutil.disk_usage(docker_client.info()["DockerRootDir"]).used


def test_writes_fail_with_enospc_or_erofs_and_the_host_disk_is_unchanged(
    battery: Battery, docker_client: docker.DockerClient
) -> None:
    before = docker_disk_used(docker_client)

    outcome = battery.run(WRITES, timeout_s=30)

    assert outcome.result.status == "succeeded", (outcome.result.error, outcome.result.stderr)
    facts = json.loads(outcome.result.stdout)
    assert facts["tmp_fill"] == errno.ENOSPC, facts
    for place in ("root", "etc", "site_packages", "usr_local", "proc_sys", "sys", "var_tmp"):
        assert facts[place] in (errno.EROFS, errno.EACCES), (place, facts)
    assert abs(docker_disk_used(docker_client) - before) < DISK_TOLERANCE
    battery.assert_host_unchanged()


def test_a_million_files_end_in_a_clear_status_quickly(
    battery: Battery, docker_client: docker.DockerClient
) -> None:
    before = docker_disk_used(docker_client)

    outcome = battery.run(MANY_FILES, timeout_s=20)

    # tmpfs space (ENOSPC: failed), or the memory limit that inodes are charged to.
    assert outcome.result.status in {"failed", "memory_exceeded"}, (
        outcome.result.status,
        outcome.result.error,
        outcome.result.stdout,
    )
    assert outcome.elapsed_s < 20 + 2 + 5
    assert abs(docker_disk_used(docker_client) - before) < DISK_TOLERANCE
    battery.assert_host_unchanged()


def test_benign_twin_files_under_tmp_and_the_workdir_work(battery: Battery) -> None:
    code = r"""
import os
os.makedirs("outputs", exist_ok=True)
for i in range(1000):
    with open("/tmp/f%d" % i, "w") as fh:
        fh.write("x" * 1000)
with open("outputs/report.txt", "w") as fh:
    fh.write("ok")
print(len(os.listdir("/tmp")) >= 1000)
"""
    outcome = battery.run(code)

    assert outcome.result.status == "succeeded", (outcome.result.error, outcome.result.stderr)
    assert outcome.result.stdout == "True\n"
    assert [a.path for a in outcome.result.artifacts] == ["report.txt"]
    battery.assert_host_unchanged()
