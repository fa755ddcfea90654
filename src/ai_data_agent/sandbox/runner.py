"""The in-container env/pip flow: sandbox dir, install, env, verify, execute, clean up.

Standard library only, Python >= 3.9. The controller runs this file's source as
``python3 -I -c <source>`` in a fresh container and talks to it over the
container's stdin and stdout:

* stdin: one line with the byte length of a JSON job, then the job itself; later
  a single ``go`` line once the controller has taken the install network away.
* stdout: frames, one per line, ``<token> <json>``. The token is a per-run secret
  from the job, so bytes that user code injects into the container's stdout
  (for instance through ``/proc/1/fd/1``) are not mistaken for frames.

The flow, step by step (each step is a function, unit-tested on the host):

1. ``make_sandbox_dir`` creates ``/tmp/ai_data_agent_XXXXXX``;
2. ``pip_install_command`` installs the requirements with ``--target`` into it;
3. ``build_env`` puts it first on ``PYTHONPATH`` (joined with ``os.pathsep``)
   and makes it ``HOME``;
4. ``verify`` reads the installed metadata in that same env;
5. ``execute`` runs the code with that env, cwd ``<sandbox>/work``;
6. ``remove_tree`` cleans up.

Example (on the host, as the unit tests do)::

    env = build_env({"PYTHONPATH": "/opt/lib"}, "/tmp/ai_data_agent_x", pathsep=":")
    assert env["PYTHONPATH"] == "/tmp/ai_data_agent_x:/opt/lib"
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import json
import os
import platform
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import IO, Any

PROTOCOL_VERSION = 1
SANDBOX_PREFIX = "ai_data_agent_"
WORK_SUBDIR = "work"
OUTPUTS_SUBDIR = "outputs"
MAIN_FILE = "main.py"
ARTIFACT_CHUNK = 48 * 1024  # 64 KiB of base64 per frame
STALE_TEMP_S = 3600.0  # a half-published environment this old was abandoned
GO_LINE = b"go\n"
GO_WAIT_S = 120.0
READ_CHUNK = 65536
# After the main process exits, a background child may still hold the pipes
# open; read what is already there, briefly, then stop.
DRAIN_AFTER_EXIT_S = 0.2

Job = dict[str, Any]
Emit = Callable[[dict[str, Any]], None]


# ----------------------------------------------------------------------------
# Pure steps (unit-tested on the host)
# ----------------------------------------------------------------------------


def make_sandbox_dir(base: str | None = None) -> str:
    """Create the private sandbox dir ``<tmp>/ai_data_agent_XXXXXX`` (mode 0700)."""
    return tempfile.mkdtemp(prefix=SANDBOX_PREFIX, dir=base)


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


def pip_install_command(
    python: str,
    requirements_file: str,
    target: str,
    index_url: str | None = None,
    extra_args: list[str] | None = None,
) -> list[str]:
    """The seed's pip invocation: a per-run, forced install into ``target``."""
    cmd = [
        python, "-m", "pip", "install",
        "-r", requirements_file,
        "--target", target,
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--upgrade",
        "--force-reinstall",
        "--no-input",
        "--progress-bar", "off",
    ]  # fmt: skip
    if index_url:
        cmd += ["--index-url", index_url]
    return cmd + list(extra_args or [])


def uv_install_command(
    uv: str,
    python: str,
    requirements_file: str,
    target: str,
    index_url: str | None = None,
    cache_dir: str | None = None,
    compile_bytecode: bool = True,
    only_binary: bool = False,
) -> list[str]:
    """uv's equivalent of the pip install, into ``target`` for ``python``."""
    cmd = [
        uv, "pip", "install",
        "--target", target,
        "--python", python,
        "-r", requirements_file,
        "--no-progress",
        "--link-mode", "copy",  # the cache and the target are different file systems
    ]  # fmt: skip
    cmd += ["--cache-dir", cache_dir] if cache_dir else ["--no-cache"]
    if compile_bytecode:
        cmd.append("--compile-bytecode")
    if index_url:
        cmd += ["--default-index", index_url]
    if only_binary:
        cmd += ["--only-binary", ":all:"]
    return cmd


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


def publish_env(src: str, envs_dir: str, key: str) -> dict[str, Any]:
    """Copy a finished install into the shared cache under ``key``, atomically.

    The copy goes to a hidden name first and is renamed into place, so a
    half-copied environment is never visible; if ``key`` exists already
    (another controller was first) the copy is dropped.
    """
    final = os.path.join(envs_dir, key)
    if os.path.isdir(final):
        return {"published": False, "exists": True, "size": tree_size(final)}
    tmp = os.path.join(envs_dir, f".tmp-{key}-{os.urandom(6).hex()}")
    shutil.copytree(src, tmp, symlinks=True)
    try:
        os.rename(tmp, final)
    except OSError:
        remove_tree(tmp)
        return {"published": False, "exists": True, "size": tree_size(final)}
    return {"published": True, "exists": True, "size": tree_size(final)}


def prune_envs(envs_dir: str, keys: list[str]) -> dict[str, Any]:
    """Remove cached environments: renamed away first, so no run sees half of one."""
    removed = []
    for key in keys:
        if "/" in key or key.startswith("."):
            continue
        path = os.path.join(envs_dir, key)
        trash = os.path.join(envs_dir, f".trash-{key}-{os.urandom(6).hex()}")
        try:
            os.rename(path, trash)
        except OSError:
            continue
        remove_tree(trash)
        removed.append(key)
    # Leftovers of interrupted copies and removals (old enough not to be in progress).
    for name in os.listdir(envs_dir):
        path = os.path.join(envs_dir, name)
        try:
            stale = time.time() - os.lstat(path).st_mtime > STALE_TEMP_S
        except OSError:
            continue
        if name.startswith((".tmp-", ".trash-")) and stale:
            remove_tree(path)
    return {"removed": removed}


def env_mismatches(expected: Mapping[str, str], observed: Mapping[str, Any]) -> list[str]:
    """Compare what a step saw (PYTHONPATH, HOME, executable) with what it was given."""
    problems = []
    for key in ("PYTHONPATH", "HOME", "executable"):
        if key in observed and observed[key] != expected.get(key):
            problems.append(f"{key}: expected {expected.get(key)!r}, saw {observed[key]!r}")
    return problems


def normalise_name(name: str) -> str:
    """PEP 503 normalisation, as the index and the metadata compare names."""
    out = []
    prev_sep = False
    for ch in name.lower():
        if ch in "-_.":
            if not prev_sep:
                out.append("-")
            prev_sep = True
        else:
            out.append(ch)
            prev_sep = False
    return "".join(out)


def tail(text: str, limit: int) -> str:
    """The last ``limit`` characters, marked when cut."""
    if len(text) <= limit:
        return text
    return "[...]\n" + text[-limit:]


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


def network_interfaces() -> list[str]:
    """Names of the network interfaces this container has."""
    try:
        return sorted(os.listdir("/sys/class/net"))
    except OSError:
        return []


def remove_tree(path: str) -> bool:
    """Remove ``path`` even where user code took away read or write bits; True when gone."""
    seen = set()

    def make_writable_and_retry(_func: Callable[..., Any], target: str, _exc: Any) -> None:
        if target in seen:  # chmod did not help: give up on this one
            return
        seen.add(target)
        for item in (os.path.dirname(target), target):
            try:
                if not os.path.islink(item):
                    os.chmod(item, stat.S_IRWXU)
            except OSError:
                pass
        try:
            if os.path.isdir(target) and not os.path.islink(target):
                rmtree(target)
            else:
                os.unlink(target)
        except OSError:
            pass

    def rmtree(target: str) -> None:
        if sys.version_info >= (3, 12):
            shutil.rmtree(target, onexc=make_writable_and_retry)
        else:
            shutil.rmtree(target, onerror=make_writable_and_retry)

    rmtree(path)
    return not os.path.lexists(path)


# Imported at interpreter start (the sandbox dir is first on PYTHONPATH): saves
# matplotlib figures still open at exit, so `plt.show()` under Agg gives PNGs.
# pyplot registers its own atexit handler that closes every figure; atexit runs
# handlers last-in first-out, so ours is registered right after pyplot loads.
FIGURE_HOOK = r"""
import atexit, importlib.util, os, sys

def _ai_data_agent_save_figures():
    plt = sys.modules.get("matplotlib.pyplot")
    out = os.environ.get("AI_DATA_AGENT_OUTPUTS")
    if plt is None or not out or os.getpid() != _main_pid:
        return
    try:
        nums = plt.get_fignums()
        if nums:
            os.makedirs(out, exist_ok=True)
        for num in nums:
            if getattr(plt.figure(num), "_ai_data_agent_saved", False):
                continue  # the code saved it itself
            name = "figure_%d.png" % num
            n = 1
            while os.path.lexists(os.path.join(out, name)):
                n += 1
                name = "figure_%d_%d.png" % (num, n)
            plt.figure(num).savefig(os.path.join(out, name), format="png")
    except Exception as exc:
        sys.stderr.write("ai-data-agent: could not save figures: %r\n" % (exc,))


class _AfterPyplot:
    def find_spec(self, name, path=None, target=None):
        if name != "matplotlib.pyplot":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            atexit.register(_ai_data_agent_save_figures)
            figure = sys.modules["matplotlib.figure"].Figure
            savefig = figure.savefig

            def savefig_and_mark(self, *args, **kwargs):
                self._ai_data_agent_saved = True
                return savefig(self, *args, **kwargs)

            figure.savefig = savefig_and_mark

        spec.loader.exec_module = exec_module
        return spec


_main_pid = os.getpid()
sys.meta_path.insert(0, _AfterPyplot())
"""


def install_figure_hook(sandbox: str) -> None:
    with open(os.path.join(sandbox, "sitecustomize.py"), "w") as fh:
        fh.write(FIGURE_HOOK)


def receive_files(stdin: IO[bytes], work: str, manifest: list[dict[str, Any]]) -> int:
    """Write the input files that follow the job on stdin under ``work``; return bytes written.

    Paths were checked by the controller; here they are created exclusively and
    without following links, so nothing outside ``work`` can be touched.
    """
    total = 0
    for entry in manifest:
        rel = str(entry["path"])
        size = int(entry["size"])
        if rel.startswith("/") or ".." in rel.split("/") or "\x00" in rel:
            raise ValueError(f"unsafe input path {rel!r}")
        target = os.path.join(work, rel)
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(target, flags, 0o600)
        with os.fdopen(fd, "wb") as fh:
            left = size
            while left:
                chunk = stdin.read(min(left, READ_CHUNK))
                if not chunk:
                    raise EOFError(f"input {rel!r} truncated")
                fh.write(chunk)
                left -= len(chunk)
        total += size
    return total


def scan_outputs(
    outputs: str, max_count: int, max_total: int
) -> tuple[list[tuple[str, str, int]], list[dict[str, str]]]:
    """Regular files under ``outputs`` as (relative path, path, size), within the caps.

    Links are never followed (not even to directories); FIFOs, sockets and
    devices are skipped; a file over the remaining budget is skipped by its
    size, without reading it (a sparse 10 GB file costs nothing).
    """
    found: list[tuple[str, str, int]] = []
    skipped: list[dict[str, str]] = []
    budget = max_total
    if not os.path.isdir(outputs) or os.path.islink(outputs):
        return found, skipped
    for root, dirs, files in os.walk(outputs, followlinks=False):
        dirs.sort()
        for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, outputs).replace(os.sep, "/")
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                kind = "symlink" if stat.S_ISLNK(st.st_mode) else "not a regular file"
                skipped.append({"path": rel, "reason": kind})
            elif len(found) >= max_count:
                skipped.append({"path": rel, "reason": "artifact count cap reached"})
            elif st.st_size > budget:
                skipped.append({"path": rel, "reason": "artifact size cap reached"})
            else:
                found.append((rel, path, st.st_size))
                budget -= st.st_size
    return found, skipped


# Runs in the same env as the user code: what does that interpreter see?
VERIFY_SNIPPET = r"""
import importlib.metadata as md, json, os, re, sys
wanted = json.loads(sys.argv[1]); sandbox = sys.argv[2]
def norm(n): return re.sub(r"[-_.]+", "-", n).lower()
found, in_sandbox = {}, []
for dist in md.distributions():
    name = dist.metadata["Name"]
    if not name:
        continue
    loc = os.path.realpath(str(dist.locate_file("")))
    found.setdefault(norm(name), {"name": name, "version": dist.version, "location": loc})
for dist in md.distributions(path=[sandbox]):
    if dist.metadata["Name"]:
        in_sandbox.append({"name": dist.metadata["Name"], "version": dist.version})
print(json.dumps({
    "found": {n: found.get(norm(n)) for n in wanted},
    "packages": sorted(in_sandbox, key=lambda p: norm(p["name"])),
    "observed": {"PYTHONPATH": os.environ.get("PYTHONPATH"), "HOME": os.environ.get("HOME"),
                 "executable": sys.executable},
    "sys_path_head": sys.path[:3],
}))
"""


# ----------------------------------------------------------------------------
# Process plumbing
# ----------------------------------------------------------------------------


class OutputPump:
    """Reads a child's stdout/stderr, forwards capped text as frames, enforces a deadline."""

    def __init__(self, emit: Emit, limits: Mapping[str, int], kill_on_cap: bool) -> None:
        self.emit = emit
        self.limits = dict(limits)
        self.kill_on_cap = kill_on_cap
        self.seen = {"stdout": 0, "stderr": 0}
        self.truncated = {"stdout": False, "stderr": False}
        self.decoders = {
            name: codecs.getincrementaldecoder("utf-8")(errors="replace") for name in self.seen
        }
        self.output_exceeded = False

    def feed(self, stream: str, data: bytes, final: bool = False) -> None:
        room = self.limits[stream] - self.seen[stream]
        if len(data) > room:
            data = data[: max(room, 0)]
            self.truncated[stream] = True
        self.seen[stream] += len(data)
        text = self.decoders[stream].decode(data, final)
        if text:
            self.emit({"k": "out", "s": stream, "d": text})

    def run(self, proc: subprocess.Popen[bytes], timeout_s: float) -> dict[str, Any]:
        """Pump until the process exits (or times out); return what happened."""
        deadline = time.monotonic() + timeout_s
        sel = selectors.DefaultSelector()
        assert proc.stdout is not None and proc.stderr is not None
        for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            os.set_blocking(pipe.fileno(), False)
            sel.register(pipe, selectors.EVENT_READ, name)
        timed_out = False
        exited_at: float | None = None
        while sel.get_map():
            now = time.monotonic()
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > DRAIN_AFTER_EXIT_S:
                break
            if exited_at is None and now >= deadline:
                timed_out = True
                kill_group(proc)
                exited_at = time.monotonic()
                continue
            wait = min(deadline - now, 0.05 if exited_at is not None else 0.5)
            for key, _ in sel.select(timeout=max(wait, 0.0)):
                name = key.data
                try:
                    data = os.read(key.fileobj.fileno(), READ_CHUNK)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                self.feed(name, data)
                if self.truncated[name] and self.kill_on_cap and not self.output_exceeded:
                    self.output_exceeded = True
                    kill_group(proc)
        sel.close()
        if exited_at is None:
            # Both pipes closed (the code may have pointed its fds elsewhere)
            # while the process runs on: wait for it, up to the deadline.
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0))
            except subprocess.TimeoutExpired:
                timed_out = True
        for name in self.seen:
            self.feed(name, b"", final=True)
        kill_group(proc)  # whatever the main process left behind in its group
        code = proc.wait()
        return {
            "exit_code": code if code >= 0 else None,
            "signal": -code if code < 0 else None,
            "timed_out": timed_out,
            "output_exceeded": self.output_exceeded,
            "stdout_truncated": self.truncated["stdout"],
            "stderr_truncated": self.truncated["stderr"],
        }


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


def run_captured(
    cmd: list[str], env: Mapping[str, str], cwd: str, timeout_s: float
) -> subprocess.CompletedProcess[str]:
    """Run a helper command (pip, verify) with merged, decoded output."""
    return subprocess.run(
        cmd,
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout_s,
        check=False,
        text=True,
        errors="replace",
    )


def make_undumpable() -> None:
    """Keep user code (same uid) out of this process's /proc entries and memory.

    Without this, code could open /proc/<runner>/fd/1 and write there, or read
    the frame token from /proc/<runner>/mem.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError, ImportError):
        pass


# ----------------------------------------------------------------------------
# The flow
# ----------------------------------------------------------------------------


class Runner:
    """One job, start to finish. ``out`` receives frames; ``stdin`` the controller's go."""

    def __init__(self, job: Job, out: IO[bytes], stdin: IO[bytes]) -> None:
        self.job = job
        self.out = out
        self.stdin = stdin
        self.token = str(job["token"]).encode()
        self.uv_path: str | None = None

    # -- framing --------------------------------------------------------------
    def emit(self, frame: dict[str, Any]) -> None:
        line = self.token + b" " + json.dumps(frame, ensure_ascii=True).encode() + b"\n"
        self.out.write(line)
        self.out.flush()

    def log(self, level: str, msg: str) -> None:
        self.emit({"k": "log", "level": level, "msg": msg})

    def phase(self, name: str) -> None:
        self.emit({"k": "phase", "phase": name})

    def wait_for_go(self) -> bool:
        sel = selectors.DefaultSelector()
        sel.register(self.stdin, selectors.EVENT_READ)
        ready = sel.select(timeout=GO_WAIT_S)
        sel.close()
        return bool(ready) and self.stdin.readline() == GO_LINE

    # -- steps ------------------------------------------------------------------
    def install(self, sandbox: str, env: Mapping[str, str]) -> dict[str, Any]:
        """Install the requirements with uv (pip as the fallback) or pip alone."""
        reqs = self.job.get("requirements") or []
        spec = self.job.get("install") or {}
        target = spec.get("target") or sandbox
        report: dict[str, Any] = {
            "installer": spec.get("installer", "pip"),
            "fallback_triggered": False,
            "exit_code": None,
            "log_tail": "",
            "duration_s": 0.0,
            "target": target,
            "observed": {
                "PYTHONPATH": env.get("PYTHONPATH"),
                "HOME": env.get("HOME"),
                "executable": sys.executable,
            },
        }
        if not reqs or spec.get("skip"):
            report["ok"] = True
            return report
        os.makedirs(target, exist_ok=True)
        req_file = os.path.join(sandbox, ".requirements.txt")
        with open(req_file, "w") as fh:
            fh.write("".join(r["line"] + "\n" for r in reqs))
        self.phase("installing")
        started = time.monotonic()
        index_url = self.job.get("index_url")
        only_binary = bool(spec.get("only_binary"))
        ok = False
        if report["installer"] == "uv":
            if self.uv_path is None:
                reason = "uv binary not available"
            else:
                cmd = uv_install_command(
                    self.uv_path, sys.executable, req_file, target, index_url,
                    spec.get("uv_cache"), bool(spec.get("compile", True)), only_binary,
                )  # fmt: skip
                ok, reason = self._run_installer("uv", cmd, sandbox, env, report)
            if not ok:
                self.log("WARNING", f"fallback_triggered: {reason}; installing with pip")
                report["fallback_triggered"] = True
                report["installer"] = "pip"
        if not ok:
            pip_args = ["--only-binary", ":all:"] if only_binary else []
            cmd = pip_install_command(sys.executable, req_file, target, index_url, pip_args)
            ok, _ = self._run_installer("pip", cmd, sandbox, env, report)
        report["ok"] = ok
        report["duration_s"] = time.monotonic() - started
        os.unlink(req_file)
        return report

    def _run_installer(
        self, name: str, cmd: list[str], cwd: str, env: Mapping[str, str], report: dict[str, Any]
    ) -> tuple[bool, str]:
        """Run one installer; keep its log tail in ``report``; return (ok, why not)."""
        self.log("INFO", "installing {} requirement(s) with {} --target".format(
            len(self.job.get("requirements") or []), name))  # fmt: skip
        limit = int(self.job.get("install_log_limit", 16384))
        try:
            proc = run_captured(cmd, env, cwd, float(self.job.get("install_timeout_s", 300)))
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout or ""
            out = out.decode(errors="replace") if isinstance(out, bytes) else out
            report["log_tail"] = tail(out + "\n[install timed out]", limit)
            report["timed_out"] = True
            return False, f"{name} timed out"
        except OSError as exc:
            report["log_tail"] = f"cannot start {name}: {exc}"
            return False, f"cannot start {name}: {exc}"
        report["exit_code"] = proc.returncode
        report["log_tail"] = tail(proc.stdout, limit)
        if proc.returncode != 0:
            return False, f"{name} exited with {proc.returncode}: {tail(proc.stdout, 300)}"
        return True, ""

    def verify(self, where: str, work: str, env: Mapping[str, str]) -> dict[str, Any]:
        """What the run's interpreter sees: each requirement's metadata, packages in ``where``."""
        names = [r["name"] for r in self.job.get("requirements") or []]
        cmd = [sys.executable, "-c", VERIFY_SNIPPET, json.dumps(names), where]
        try:
            proc = run_captured(cmd, env, work, 60.0)
            data = json.loads(proc.stdout)
        except (subprocess.TimeoutExpired, OSError, ValueError) as exc:
            return {"ok": False, "missing": names, "packages": [], "error": str(exc)}
        # A requirement with an environment marker may rightly be skipped by the
        # installer (e.g. `tomli; python_version < "3.11"`): absent is fine then.
        optional = {r["name"] for r in self.job.get("requirements") or [] if r.get("optional")}
        missing = [n for n, dist in data["found"].items() if dist is None and n not in optional]
        return {
            "ok": not missing,
            "missing": missing,
            "found": data["found"],
            "packages": data["packages"],
            "observed": data["observed"],
            "sys_path_head": data["sys_path_head"],
        }

    def execute(self, work: str, env: Mapping[str, str]) -> dict[str, Any]:
        main = os.path.join(work, MAIN_FILE)
        with open(main, "w", encoding="utf-8") as fh:
            fh.write(self.job["code"])
        limits = {"stdout": int(self.job["stdout_limit"]), "stderr": int(self.job["stderr_limit"])}
        pump = OutputPump(self.emit, limits, kill_on_cap=self.job.get("output_policy") == "kill")
        self.phase("running")
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, MAIN_FILE],
            cwd=work,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        report = pump.run(proc, float(self.job["timeout_s"]))
        report["duration_s"] = time.monotonic() - started
        report["started"] = True
        report["observed"] = {
            "PYTHONPATH": env.get("PYTHONPATH"),
            "HOME": env.get("HOME"),
            "executable": sys.executable,
        }
        return report

    def send_artifacts(self, outputs: str) -> dict[str, Any]:
        """Stream the files under ``outputs`` to the controller as framed chunks."""
        limits = self.job.get("artifacts") or {}
        found, skipped = scan_outputs(
            outputs, int(limits.get("max_count", 0)), int(limits.get("max_total_bytes", 0))
        )
        sent = 0
        for rel, path, size in found:
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
            except OSError as exc:
                skipped.append({"path": rel, "reason": f"cannot open: {exc.strerror}"})
                continue
            with os.fdopen(fd, "rb") as fh:
                if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the scan
                    skipped.append({"path": rel, "reason": "not a regular file"})
                    continue
                self.emit({"k": "artifact_begin", "path": rel, "size": size})
                digest = hashlib.sha256()
                length = 0
                while length < size:  # never more than the size scanned: files may grow
                    chunk = fh.read(min(ARTIFACT_CHUNK, size - length))
                    if not chunk:
                        break
                    digest.update(chunk)
                    length += len(chunk)
                    self.emit({"k": "artifact_data", "d": base64.b64encode(chunk).decode()})
                self.emit({"k": "artifact_end", "size": length, "sha256": digest.hexdigest()})
                sent += 1
        return {"sent": sent, "skipped": skipped[:100], "skipped_count": len(skipped)}

    def receive_uv(self, sandbox: str) -> None:
        """The uv binary, when the controller sends one after the input files."""
        size = int((self.job.get("install") or {}).get("uv_size") or 0)
        if not size:
            return
        folder = os.path.join(sandbox, ".bin")
        os.mkdir(folder, 0o700)
        receive_files(self.stdin, folder, [{"path": "uv", "size": size}])
        path = os.path.join(folder, "uv")
        os.chmod(path, 0o700)
        self.uv_path = path

    # -- orchestration ----------------------------------------------------------
    def run(self, base_env: Mapping[str, str]) -> dict[str, Any]:
        mode = self.job.get("mode", "run")
        if mode in ("publish", "prune"):
            spec = self.job[mode]
            try:
                if mode == "publish":
                    done = publish_env(spec["src"], spec["envs"], spec["key"])
                else:
                    done = prune_envs(spec["envs"], list(spec["keys"]))
            except (OSError, KeyError, ValueError) as exc:
                return {"k": "result", "error": f"{type(exc).__name__}: {exc}"}
            return dict(done, k="result")
        result: dict[str, Any] = {"k": "result", "protocol": PROTOCOL_VERSION}
        sandbox = make_sandbox_dir()
        work = os.path.join(sandbox, WORK_SUBDIR)
        outputs = os.path.join(work, OUTPUTS_SUBDIR)
        os.mkdir(work, 0o700)
        os.mkdir(outputs, 0o700)
        receive_files(self.stdin, work, self.job.get("files") or [])
        self.receive_uv(sandbox)
        install_figure_hook(sandbox)
        target = (self.job.get("install") or {}).get("target")
        extra = list(self.job.get("env_paths") or []) + ([target] if target else [])
        env = build_env(base_env, sandbox, extra_paths=extra)
        env.update(self.job.get("exec_env") or {})
        env["AI_DATA_AGENT_OUTPUTS"] = outputs
        platform_name = platform.platform()
        result["environment"] = {
            "platform": platform_name,
            "python_version": platform.python_version(),
            "python_executable": sys.executable,
            "path_separator": os.pathsep,
            "pythonpath": env["PYTHONPATH"],
            "home": env["HOME"],
            "sandbox_dir": sandbox,
            "workdir": work,
            "uid": os.getuid(),
            "gid": os.getgid(),
        }
        self.log(
            "DEBUG",
            "platform={} python={} executable={} PYTHONPATH={} pathsep={!r}".format(
                platform_name, platform.python_version(), sys.executable,
                env["PYTHONPATH"], os.pathsep,
            ),
        )  # fmt: skip
        oom_before = cgroup_oom_kills()
        try:
            install = self.install(sandbox, env)
            result["install"] = install
            self.phase("ready")
            if not self.wait_for_go():
                result["error"] = "controller did not release the run"
                return result
            if not install["ok"]:
                return result
            ifaces = [i for i in network_interfaces() if i != "lo"]
            result["interfaces"] = ifaces
            if ifaces and not self.job.get("network"):
                result["error"] = f"network interfaces {ifaces} still attached"
                return result
            missing_envs = [p for p in self.job.get("env_paths") or [] if not os.path.isdir(p)]
            if missing_envs:  # the cache lost it (volume removed?): the controller reinstalls
                result["env_missing"] = missing_envs
                return result
            expected = dict(env, executable=sys.executable)
            mismatch = env_mismatches(expected, install["observed"])
            if self.job.get("requirements"):
                where = install["target"] if target else sandbox
                env_dirs = list(self.job.get("env_paths") or [])
                verify = self.verify(env_dirs[0] if env_dirs else where, work, env)
                result["verify"] = verify
                mismatch += env_mismatches(expected, verify.get("observed", {}))
                if verify["packages"]:
                    self.log(
                        "INFO",
                        "Successfully installed {}".format(
                            " ".join(
                                "{}=={}".format(p["name"], p["version"]) for p in verify["packages"]
                            )
                        ),
                    )
            result["mismatch"] = mismatch
            if mismatch:
                self.log("WARNING", "Environment mismatch: {}".format("; ".join(mismatch)))
            if mode == "install":
                result["size"] = tree_size(target) if target else 0
                return result
            result["execute"] = self.execute(work, env)
            self.phase("collecting")
            result["artifacts"] = self.send_artifacts(outputs)
        except Exception as exc:  # report, never die silently: the result frame must go out
            result["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            oom_after = cgroup_oom_kills()
            if oom_before is not None and oom_after is not None:
                result["oom_kills"] = oom_after - oom_before
            result["sandbox_removed"] = remove_tree(sandbox)
        return result


def read_job(stdin: IO[bytes]) -> Job:
    header = stdin.readline(32)
    size = int(header.strip())
    data = b""
    while len(data) < size:
        chunk = stdin.read(size - len(data))
        if not chunk:
            raise EOFError(f"job truncated: {len(data)} of {size} bytes")
        data += chunk
    job: Job = json.loads(data)
    return job


def main() -> int:
    make_undumpable()
    stdin = sys.stdin.buffer
    out = sys.stdout.buffer
    job = read_job(stdin)
    runner = Runner(job, out, stdin)
    # The runner itself runs with -I; its children get the computed env instead.
    result = runner.run(dict(os.environ))
    runner.emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
