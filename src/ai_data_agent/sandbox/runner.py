"""The in-container runner: one job from the controller, the env/pip flow, one result frame.

Started by `bootstrap` (``python3 -I -S -c ...``) in a fresh container, the
runner reads one job (see `channel`) and runs its mode:

* ``run``: the sandbox dir ``/tmp/ai_data_agent_XXXXXX``, input files, the
  install (``--target`` into the sandbox dir, when the job asks), ``ready``,
  then, once the controller says ``go`` (the install network is gone), verify
  what the code's interpreter sees, run the code, return ``outputs/``, remove
  the sandbox dir;
* ``install``: the same up to verify, into the environment cache's staging dir;
* ``publish``, ``compile``, ``prune``, ``probe``: the shared environment cache and the
  image's python (`envstore.cache_job`); an ``install`` job first looks there and
  returns the manifest it finds;
* ``session``: a kernel in this container, serving cells until ``close`` (`session`);
* ``warm`` (a pooled sandbox, before its job): the sandbox dir and the code's
  interpreter (`codeproc`), which imports the set's heavy modules, then a
  ``warm`` frame under this message's own token; the job that follows uses
  both when it may (a run or session of that environment, no variables of
  its own), else they go and it starts as any other.

The last frame is always the result (``{"k": "result", ...}``); with the job's
``hold_s`` the runner then waits up to that long for its stdin to close, so the
controller can read the container's CPU counter on the host while it runs; then
it exits, and the container stops by itself. Install, verify
and the code share one env (`environment.build_env`): ``PYTHONPATH`` is the
sandbox dir first, joined with ``os.pathsep``, and ``HOME`` is the sandbox dir.
The code's interpreter starts as soon as its env is known (before the job in
a pooled sandbox, with the job in a fresh one when nothing is installed), so
its start overlaps the runner's work; it reports the env it sees, the verify
step reads the environment's metadata here, and ``go`` releases the code.
Standard library only, Python >= 3.9; unit-tested on the host. A mode imports
only what it uses: the runner starts in every sandbox, and a hello world
should pay for nothing more.
"""

from __future__ import annotations

import os
import select
import sys

from ai_data_agent.sandbox.bootstrap import MAGIC, code_of, source_of
from ai_data_agent.sandbox.channel import Channel, read_message, receive_files
from ai_data_agent.sandbox.codeproc import CodeProcess, imported_files
from ai_data_agent.sandbox.environment import (
    ENV_MANIFEST,
    OUTPUTS_SUBDIR,
    WORK_SUBDIR,
    as_the_user_sees_it,
    build_env,
    cgroup_oom_kills,
    env_mismatches,
    make_sandbox_dir,
    make_undumpable,
    network_interfaces,
    observed_env,
    platform_name,
    python_version,
    remove_tree,
    resident_kb,
    tree_size,
)

TYPE_CHECKING = False  # typing is not imported at run time: every start counts
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import IO, Any

    Job = Mapping[str, Any]

CODE_START_TIMEOUT_S = 120.0  # the code's interpreter up (and a warm one's imports done)
IMPORTS_REPORT = ".imported"  # in the sandbox dir: the modules a run imported, at its exit


class Workspace:
    """The sandbox dir of one job: ``work/`` (the code's cwd), ``work/outputs/``, the env;
    and the code's interpreter, once started (`codeproc`)."""

    def __init__(self, job: Job, base_env: Mapping[str, str]) -> None:
        self.base_env = base_env
        self.sandbox = make_sandbox_dir()
        self.work = os.path.join(self.sandbox, WORK_SUBDIR)
        self.outputs = os.path.join(self.work, OUTPUTS_SUBDIR)
        os.mkdir(self.work, 0o700)
        os.mkdir(self.outputs, 0o700)
        write_sitecustomize(self.sandbox)
        self.uv_path: str | None = None
        self.child: CodeProcess | None = None
        self.configure(job)

    def configure(self, job: Job) -> None:
        """The env of ``job``: its environments and install target on the path, its variables."""
        install = job.get("install") or {}
        self.target: str | None = install.get("target")
        self.env_paths: list[str] = list(job.get("env_paths") or [])
        extra = self.env_paths + ([self.target] if self.target else [])
        self.env = build_env(self.base_env, self.sandbox, extra_paths=extra)
        self.env.update(job.get("exec_env") or {})
        self.env["AI_DATA_AGENT_OUTPUTS"] = self.outputs

    def start_code(self, modules: list[str] | None = None) -> CodeProcess:
        """The code's interpreter, started now unless it is already (see `codeproc`)."""
        if self.child is None:
            self.child = CodeProcess.start(self.env, self.work, list(modules or []))
        return self.child

    def receive(self, job: Job, stdin: IO[bytes]) -> None:
        """The input files and (for installs) the uv binary that follow the job on stdin."""
        receive_files(stdin, self.work, job.get("files") or [])
        uv_size = int((job.get("install") or {}).get("uv_size") or 0)
        if uv_size:
            from ai_data_agent.sandbox.install import receive_uv

            self.uv_path = receive_uv(stdin, self.sandbox, uv_size)

    def close(self) -> bool:
        """Kill the code's interpreter (if still there); remove the sandbox dir (True: gone)."""
        if self.child is not None:
            self.child.kill()
        return remove_tree(self.sandbox)

    def describe(self) -> dict[str, Any]:
        return {
            "platform": platform_name(),
            "python_version": python_version(),
            "path_separator": os.pathsep,
            "pythonpath": self.env["PYTHONPATH"],
            "home": self.env["HOME"],
            "sandbox_dir": self.sandbox,
            "uid": os.getuid(),
        }


def write_sitecustomize(sandbox: str) -> None:
    """`figures` as ``sandbox/sitecustomize.py``, which every interpreter of the code
    imports at its start; with its compiled code beside it (a pyc of the source's mtime
    and size) when the bundle brought code for this Python, the code's: no compile of it
    at each start, about 2.5 ms of CPU in a container."""
    path = os.path.join(sandbox, "sitecustomize.py")
    with open(path, "w") as fh:
        fh.write(source_of("figures"))
    code, tag = code_of("figures"), sys.implementation.cache_tag
    if code is None or tag is None:
        return
    info = os.stat(path)
    fields = (0, int(info.st_mtime), info.st_size)  # flags 0: checked by mtime and size
    header = MAGIC + b"".join((f & 0xFFFFFFFF).to_bytes(4, "little") for f in fields)
    os.mkdir(os.path.join(sandbox, "__pycache__"), 0o700)
    with open(os.path.join(sandbox, "__pycache__", f"sitecustomize.{tag}.pyc"), "wb") as fh:
        fh.write(header + code)


def verify(job: Job, where: str, space: Workspace) -> dict[str, Any]:
    """Each requirement's distribution where the code's interpreter looks (its
    ``PYTHONPATH``), and the packages in ``where``, read here (see `verify`)."""
    from ai_data_agent.sandbox.verify import inspect

    requirements = job.get("requirements") or []
    names = [r["name"] for r in requirements]
    search = [p for p in space.env["PYTHONPATH"].split(os.pathsep) if p]
    data = inspect(names, where, search)
    # A requirement with an environment marker may rightly be skipped by the
    # installer (e.g. `tomli; python_version < "3.11"`): absent is fine then.
    optional = {r["name"] for r in requirements if r.get("optional")}
    missing = [n for n, dist in data["found"].items() if dist is None and n not in optional]
    return {"ok": not missing, "missing": missing, "packages": data["packages"]}


def refusal(job: Job, space: Workspace) -> dict[str, Any] | None:
    """Why the code must not start now (network left, cached env gone), or None."""
    interfaces = [i for i in network_interfaces() if i != "lo"]
    if interfaces and not job.get("network"):
        return {"error": f"network interfaces {interfaces} still attached"}
    missing = [p for p in space.env_paths if not os.path.isfile(os.path.join(p, ENV_MANIFEST))]
    if missing:  # the cache lost it (volume removed, pruned): the controller reinstalls
        return {"env_missing": missing}
    return None


def check_environment(
    channel: Channel,
    job: Job,
    space: Workspace,
    install: dict[str, Any],
    result: dict[str, Any],
    observed: dict[str, Any],
) -> None:
    """Verify the install; compare what install and the code's interpreter (``observed``:
    the env it started with) saw with what they were given; log the words to grep."""
    mismatch = env_mismatches(dict(space.env, executable=sys.executable), install["observed"])
    if space.child is not None:
        mismatch += env_mismatches(dict(space.child.env, executable=sys.executable), observed)
    if job.get("requirements"):
        where = space.env_paths[0] if space.env_paths else (space.target or space.sandbox)
        checked = verify(job, where, space)
        result["verify"] = checked
        if checked["packages"] and install.get("installer"):
            names = " ".join("{}=={}".format(p["name"], p["version"]) for p in checked["packages"])
            channel.log("INFO", f"Successfully installed {names}")
    result["mismatch"] = mismatch
    if mismatch:
        channel.log("WARNING", "Environment mismatch: {}".format("; ".join(mismatch)))


def run_flow(channel: Channel, job: Job, space: Workspace, result: dict[str, Any]) -> None:
    """Install, wait for ``go``, check, then run the code (mode ``run``) or measure (``install``)."""
    install = install_requirements(channel, job, space)
    result["install"] = install
    channel.phase("ready")
    if not channel.wait_for_go():
        result["error"] = "controller did not release the run"
        return
    if not install["ok"]:
        return
    refused = refusal(job, space)
    if refused is not None:
        result.update(refused)
        return
    observed: dict[str, Any] = {}
    if job["mode"] == "run":
        warm = space.start_code().report(CODE_START_TIMEOUT_S)
        if warm is None:
            tail = space.child.early["stderr"] if space.child is not None else b""
            result["error"] = "the code's interpreter did not start: {}".format(
                tail[-1000:].decode("utf-8", "replace").strip() or "no report"
            )
            return
        observed = dict(warm.get("observed") or {})
    check_environment(channel, job, space, install, result, observed)
    if job["mode"] == "install":
        result["size"] = tree_size(space.target) if space.target else 0
        return
    start_egress(job, space)
    result["execute"] = execute(channel, job, space)
    channel.phase("collecting")
    result["artifacts"] = collect_outputs(channel, job, space)
    if job.get("report_imports") and space.env_paths:
        report = os.path.join(space.sandbox, IMPORTS_REPORT)
        result["imported"] = imported_files(report, space.env_paths[0])


def execute(channel: Channel, job: Job, space: Workspace) -> dict[str, Any]:
    """The code in its interpreter (`execute.execute`), reporting its imports when asked."""
    from ai_data_agent.sandbox.execute import execute as run_code

    child = space.start_code()
    report = os.path.join(space.sandbox, IMPORTS_REPORT) if job.get("report_imports") else None

    def release(main: str, value_to: str) -> None:
        child.release(
            main, space.env, report_to=report, prefixes=space.env_paths, value_to=value_to
        )

    report_of_run = run_code(channel, job, space.work, child, release)
    report_of_run["preimported"] = child.imported
    return report_of_run


def start_egress(job: Job, space: Workspace) -> None:
    """With an egress allow-list: the relay to the proxy's sockets, and the code's proxy variables."""
    if job.get("egress"):
        from ai_data_agent.sandbox.egress_relay import start

        space.env.update(start(job["egress"]))


def install_requirements(channel: Channel, job: Job, space: Workspace) -> dict[str, Any]:
    """The install report (an install only where the job asks for one)."""
    if not wants_install(job):
        return {"ok": True, "installer": None, "log_tail": "", "observed": observed_env(space.env)}
    from ai_data_agent.sandbox.install import Installer

    return Installer(channel, job, space.uv_path).install(space.sandbox, space.env)


def wants_install(job: Job) -> bool:
    return bool(job.get("requirements")) and not (job.get("install") or {}).get("skip")


def collect_outputs(channel: Channel, job: Job, space: Workspace) -> dict[str, Any]:
    """Send what the code left under ``outputs/``."""
    try:
        if not os.listdir(space.outputs):
            return {"skipped": []}
    except OSError:
        pass  # gone, or not a directory: the scan says what it is

    from ai_data_agent.sandbox.outputs import send_artifacts

    caps = job.get("artifacts") or {}
    return send_artifacts(
        channel, space.outputs, int(caps.get("max_count", 0)), int(caps.get("max_total_bytes", 0))
    )


def session_flow(channel: Channel, job: Job, space: Workspace, result: dict[str, Any]) -> None:
    """Mode ``session``: no install here (never a network), then the kernel until ``close``."""
    from ai_data_agent.sandbox import session

    refused = refusal(job, space)
    if refused is not None:
        result.update(refused)
        return
    start_egress(job, space)
    channel.phase("ready")
    child, space.child = space.child, None  # the kernel's now: it kills it
    result.update(session.serve(channel, dict(job), space, channel.stdin, child))


def workspace_for(job: Job, prepared: Workspace | None) -> Workspace:
    """The prepared workspace (and its code interpreter) when ``job`` may use them, else a
    new one: a run or session of the same environments, nothing to install, no variables
    of its own (its interpreter started without them), an interpreter that came up."""
    if prepared is None:
        space = Workspace(job, os.environ)
    else:
        child = prepared.child
        fits = (
            job.get("mode") in ("run", "session")
            and not wants_install(job)
            and not job.get("exec_env")
            and list(job.get("env_paths") or [])[: len(prepared.env_paths)] == prepared.env_paths
            and child is not None
            and child.warm is not None
            and not child.warm.get("error")
        )
        if fits:
            prepared.configure(job)
            return prepared
        prepared.close()
        space = Workspace(job, os.environ)
    if job.get("mode") == "run" and not wants_install(job):
        space.start_code()  # starts while the files come and the controller says go
    return space


def run_in_workspace(
    channel: Channel, job: Job, stdin: IO[bytes], prepared: Workspace | None = None
) -> dict[str, Any]:
    """Modes ``run``, ``install`` and ``session``: in a sandbox dir that is removed at the end."""
    result: dict[str, Any] = {"k": "result"}
    oom_before = cgroup_oom_kills()
    space = workspace_for(job, prepared)
    result["environment"] = space.describe()
    channel.log(
        "DEBUG",
        "platform={} python={} executable={} PYTHONPATH={} pathsep={!r}".format(
            result["environment"]["platform"],
            python_version(),
            sys.executable,
            space.env["PYTHONPATH"],
            os.pathsep,
        ),
    )
    lookup = job.get("lookup")
    manifest = None
    if lookup:
        from ai_data_agent.sandbox.envstore import read_manifest

        manifest = read_manifest(lookup["envs"], lookup["key"])
    try:
        space.receive(job, stdin)
        if manifest is not None:  # published by another controller meanwhile
            result["manifest"] = manifest
        elif job["mode"] == "session":
            session_flow(channel, job, space, result)
        else:
            run_flow(channel, job, space, result)
    except Exception as exc:  # report, never die silently: the result frame must go out
        result["error"] = as_the_user_sees_it(f"{type(exc).__name__}: {exc}", space.sandbox)
    finally:
        oom_after = cgroup_oom_kills()
        if oom_before is not None and oom_after is not None:
            result["oom_kills"] = oom_after - oom_before
        result["sandbox_removed"] = space.close()
    return result


def prepare(job: Job) -> Workspace:
    """Mode ``warm``: the sandbox dir and the code's interpreter with ``modules`` imported,
    for the job to come; a ``warm`` frame (under this message's token) says how it went."""
    from ai_data_agent.sandbox.verify import heavy_modules

    space = Workspace(job, os.environ)
    configured = job.get("modules")
    modules: list[str] = []
    for path in space.env_paths:
        modules += heavy_modules(path, None if configured is None else list(configured))
    child = space.start_code(list(dict.fromkeys(modules)))
    report = child.report(CODE_START_TIMEOUT_S) or {"error": "the interpreter did not start"}
    frame = {
        "k": "warm",
        "imported": child.imported,
        "error": report.get("error"),
        "rss_kb": resident_kb([os.getpid(), child.proc.pid] + ([1] if os.getppid() == 1 else [])),
    }
    Channel(str(job["token"]), sys.stdout.buffer, sys.stdin.buffer).emit(frame)
    return space


def main() -> int:
    make_undumpable()
    stdin = sys.stdin.buffer
    job = read_message(stdin)
    prepared = None
    if job.get("mode") == "warm":  # a pooled sandbox: its job comes when a run takes it
        prepared = prepare(job)
        job = read_message(stdin)
    channel = Channel(str(job["token"]), sys.stdout.buffer, stdin)
    if job.get("mode") in ("run", "install", "session"):
        result = run_in_workspace(channel, job, stdin, prepared)
    else:
        from ai_data_agent.sandbox.envstore import cache_job

        if prepared is not None:
            prepared.close()
        result = dict(cache_job(job), k="result")
    channel.emit(result)
    hold_s = job.get("hold_s")
    if hold_s:  # the controller reads the container's CPU counter, then closes stdin
        select.select([stdin], [], [], float(hold_s))
        # Every frame is flushed: skip the interpreter's teardown, milliseconds of CPU.
        os._exit(0)
    return 0
