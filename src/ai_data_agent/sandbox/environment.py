"""The sandbox dir and the environment every step shares, and what the container is like.

    sandbox = make_sandbox_dir()                       # /tmp/ai_data_agent_XXXXXX
    env = build_env(os.environ, sandbox, extra_paths=["/opt/ai-data-agent/envs/ab12"])
    assert env["PYTHONPATH"].split(os.pathsep)[0] == sandbox and env["HOME"] == sandbox
    ...
    remove_tree(sandbox)

Install, verify and the code all run with the env `build_env` returns, so
what was installed is what the code imports. Standard library only, Python >= 3.9.
"""

from __future__ import annotations

import os
import stat
import sys

TYPE_CHECKING = False  # typing is not imported at run time: every start counts
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

SANDBOX_PREFIX = "ai_data_agent_"
# Written into a cached environment before it is published: a directory of the
# cache without one was never published whole.
ENV_MANIFEST = ".ai-data-agent-env.json"
WORK_SUBDIR = "work"
OUTPUTS_SUBDIR = "outputs"


NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def make_sandbox_dir(base: str | None = None) -> str:
    """Create the private sandbox dir ``<tmp>/ai_data_agent_XXXXXXXX`` (mode 0700).

    As ``tempfile.mkdtemp`` does, without importing tempfile (every run starts here).
    """
    base = base or os.environ.get("TMPDIR") or "/tmp"  # noqa: S108 (the sandbox's own tmpfs)
    for _ in range(100):
        suffix = "".join(NAME_CHARS[b % len(NAME_CHARS)] for b in os.urandom(8))
        path = os.path.join(base, SANDBOX_PREFIX + suffix)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        return os.path.abspath(path)
    raise FileExistsError(f"no free sandbox dir name under {base}")


def as_the_user_sees_it(text: str, sandbox: str) -> str:
    """``text`` (an error) with the sandbox dir's paths as the user's code knows them:
    relative to its working directory (``data/a.csv``), else under its home, which is
    the sandbox dir (``~/sitecustomize.py``)."""
    work = os.path.join(sandbox, WORK_SUBDIR)
    return text.replace(work + os.sep, "").replace(work, ".").replace(sandbox, "~")


def build_env(
    base_env: Mapping[str, str],
    sandbox_dir: str,
    pathsep: str = os.pathsep,
    extra_paths: tuple[str, ...] | list[str] = (),
) -> dict[str, str]:
    """Return the env shared by install, verify and execute.

    ``PYTHONPATH`` is the sandbox dir first, then ``extra_paths`` (cached,
    read-only environments), then the original entries (empty ones dropped),
    joined with ``pathsep``; ``HOME`` is the sandbox dir; every other variable
    of ``base_env`` is kept as it is.
    """
    env = dict(base_env)
    head = [sandbox_dir, *extra_paths]
    original = [p for p in base_env.get("PYTHONPATH", "").split(pathsep) if p and p not in head]
    env["PYTHONPATH"] = pathsep.join(head + original)
    env["HOME"] = sandbox_dir
    return env


def observed_env(env: Mapping[str, str]) -> dict[str, Any]:
    """What a step reports of the env it ran with, for `env_mismatches`."""
    return {
        "PYTHONPATH": env.get("PYTHONPATH"),
        "HOME": env.get("HOME"),
        "executable": sys.executable,
    }


def env_mismatches(expected: Mapping[str, str], observed: Mapping[str, Any]) -> list[str]:
    """Compare what a step saw (PYTHONPATH, HOME, executable) with what it was given."""
    problems = []
    for key in ("PYTHONPATH", "HOME", "executable"):
        if key in observed and observed[key] != expected.get(key):
            problems.append(f"{key}: expected {expected.get(key)!r}, saw {observed[key]!r}")
    return problems


def platform_name() -> str:
    """``platform.platform()``'s answer (``Linux-6.1.0-x86_64-with-glibc2.36``), cheaply."""
    uname = os.uname()
    name = f"{uname.sysname}-{uname.release}-{uname.machine}"
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        libc = ""
    return f"{name}-with-{libc.replace(' ', '')}" if libc else name


def python_version() -> str:
    return "{}.{}.{}".format(*sys.version_info[:3])


def tree_size(path: str) -> int:
    """Bytes of the regular files under ``path`` (links not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def cgroup_oom_kills() -> int | None:
    """OOM kills in this container's memory cgroup so far (v1 or v2), if readable."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as fh:
                for line in fh:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return None


def resident_kb(pids: list[int]) -> int:
    """Resident memory (VmRSS, kB) of ``pids`` together; one gone or unreadable counts 0."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            continue
    return total


def network_interfaces() -> list[str]:
    """Names of the network interfaces this container has."""
    try:
        return sorted(os.listdir("/sys/class/net"))
    except OSError:
        return []


def _unlock(path: str) -> None:
    """Give the owner back every permission on ``path`` (never through a link)."""
    try:
        if not os.path.islink(path):
            os.chmod(path, stat.S_IRWXU)
    except OSError:
        pass


def _remove_one(path: str, is_dir: bool) -> None:
    remove = os.rmdir if is_dir else os.unlink
    try:
        remove(path)
    except FileNotFoundError:
        pass
    except OSError:  # the code took away write permission on the parent: give it back
        _unlock(os.path.dirname(path))
        try:
            remove(path)
        except OSError:
            pass


def remove_tree(path: str) -> bool:
    """Remove ``path`` even where user code took away read or write bits; True when gone.

    Depth-first without recursion (the code may nest directories deeply) and
    without following links; what cannot be removed stays, and the answer says so.
    """
    stack: list[tuple[str, bool]] = [(path, False)]
    while stack:
        current, visited = stack.pop()
        try:
            is_dir = stat.S_ISDIR(os.lstat(current).st_mode)
        except OSError:
            continue
        if not is_dir or visited:
            _remove_one(current, is_dir)
            continue
        if not os.access(current, os.R_OK | os.W_OK | os.X_OK):
            _unlock(current)  # to list it, reach its entries and remove them
        try:
            names = os.listdir(current)
        except OSError:
            names = []
        stack.append((current, True))
        stack.extend((os.path.join(current, name), False) for name in names)
    return not os.path.lexists(path)


def make_undumpable() -> None:
    """Keep user code (same uid) out of this process's /proc entries and memory.

    Without this, code could open /proc/<runner>/fd/1 and write there, or read
    the frame token from /proc/<runner>/mem.

    Through `_ctypes`, the C half of `ctypes`: `ctypes` itself imports `struct`
    and `types` too, about 3 ms more CPU in a container.
    """
    try:
        import _ctypes

        class Int(_ctypes._SimpleCData):  # type: ignore[type-arg]  # ctypes.c_int
            _type_ = "i"

        class Function(_ctypes.CFuncPtr):  # a C function that returns an int
            _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
            _restype_ = Int

        class Process:  # the symbols of this process, as CFuncPtr looks a library up
            _handle = _ctypes.dlopen(None)  # type: ignore[arg-type]  # None: this process

        Function(("prctl", Process))(4, 0, 0, 0, 0)  # type: ignore[arg-type]  # PR_SET_DUMPABLE
    except (OSError, AttributeError, ImportError):
        pass
