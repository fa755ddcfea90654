"""The in-container runner: one job from the controller, the env/pip flow, one result frame.

Started by `bootstrap` (``python3 -I -S -c ...``) in a fresh container, the
runner reads one job (see `channel`) and runs its mode:

* ``run``: the sandbox dir ``/tmp/ai_data_agent_XXXXXX``, input files, the
  install (``--target`` into the sandbox dir, when the job asks), ``ready``,
  then, once the controller says ``go`` (the install network is gone), verify
  what the code's interpreter sees, run the code, return ``outputs/``, remove
  the sandbox dir;
* ``install``: the same up to verify, into the environment cache's staging dir;
* ``publish``, ``compile``, ``prune``: the shared environment cache (`envstore`); an
  ``install`` job first looks there and returns the manifest it finds;
* ``probe``: which python this image has;
* ``session``: a kernel in this container, serving cells until ``close`` (`session`).

The last frame is always the result (``{"k": "result", ...}``). Install, verify
and the code share one env (`environment.build_env`): ``PYTHONPATH`` is the
sandbox dir first, joined with ``os.pathsep``, and ``HOME`` is the sandbox dir.
Standard library only, Python >= 3.9; unit-tested on the host. A mode imports
only what it uses: the runner starts in every sandbox, and a hello world
should pay for nothing more.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ai_data_agent.sandbox.bootstrap import source_of
from ai_data_agent.sandbox.channel import Channel, read_message, receive_files
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
    tree_size,
)
from ai_data_agent.sandbox.execute import execute

TYPE_CHECKING = False  # typing is not imported at run time: every start counts
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import IO, Any

    Job = Mapping[str, Any]

VERIFY_TIMEOUT_S = 60.0


class Workspace:
    """The sandbox dir of one job: ``work/`` (the code's cwd), ``work/outputs/``, the env."""

    def __init__(self, job: Job, base_env: Mapping[str, str]) -> None:
        self.sandbox = make_sandbox_dir()
        self.work = os.path.join(self.sandbox, WORK_SUBDIR)
        self.outputs = os.path.join(self.work, OUTPUTS_SUBDIR)
        os.mkdir(self.work, 0o700)
        os.mkdir(self.outputs, 0o700)
        install = job.get("install") or {}
        self.uv_path: str | None = None
        self.target: str | None = install.get("target")
        self.env_paths: list[str] = list(job.get("env_paths") or [])
        extra = self.env_paths + ([self.target] if self.target else [])
        self.env = build_env(base_env, self.sandbox, extra_paths=extra)
        self.env.update(job.get("exec_env") or {})
        self.env["AI_DATA_AGENT_OUTPUTS"] = self.outputs

    def receive(self, job: Job, stdin: IO[bytes]) -> None:
        """The input files and (for installs) the uv binary that follow the job on stdin."""
        receive_files(stdin, self.work, job.get("files") or [])
        uv_size = int((job.get("install") or {}).get("uv_size") or 0)
        if uv_size:
            from ai_data_agent.sandbox.install import receive_uv

            self.uv_path = receive_uv(stdin, self.sandbox, uv_size)
        with open(os.path.join(self.sandbox, "sitecustomize.py"), "w") as fh:
            fh.write(source_of("figures"))

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


def verify(job: Job, where: str, space: Workspace) -> dict[str, Any]:
    """What the code's interpreter sees: each requirement's metadata, packages in ``where``.

    A run asks the code's own interpreter, in the code's env. An install looks in
    ``where`` from this isolated interpreter: nothing it installed is imported
    while the install sandbox holds the shared download cache writable.
    """
    requirements = job.get("requirements") or []
    names = [r["name"] for r in requirements]
    try:
        if job["mode"] == "install":
            from ai_data_agent.sandbox.verify import inspect

            data = dict(inspect(names, where, search=[where]), observed=observed_env(space.env))
        else:
            from ai_data_agent.sandbox.install import run_captured

            cmd = [sys.executable, "-c", source_of("verify"), json.dumps(names), where]
            data = json.loads(run_captured(cmd, space.env, space.work, VERIFY_TIMEOUT_S).stdout)
    except (subprocess.TimeoutExpired, OSError, ValueError) as exc:
        return {"ok": False, "missing": names, "packages": [], "error": str(exc)}
    # A requirement with an environment marker may rightly be skipped by the
    # installer (e.g. `tomli; python_version < "3.11"`): absent is fine then.
    optional = {r["name"] for r in requirements if r.get("optional")}
    missing = [n for n, dist in data["found"].items() if dist is None and n not in optional]
    return {
        "ok": not missing,
        "missing": missing,
        "packages": data["packages"],
        "observed": data["observed"],
    }


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
    channel: Channel, job: Job, space: Workspace, install: dict[str, Any], result: dict[str, Any]
) -> None:
    """Verify the install in the code's env; record mismatches and the words to grep."""
    expected = dict(space.env, executable=sys.executable)
    mismatch = env_mismatches(expected, install["observed"])
    if job.get("requirements"):
        where = space.env_paths[0] if space.env_paths else (space.target or space.sandbox)
        checked = verify(job, where, space)
        result["verify"] = checked
        mismatch += env_mismatches(expected, checked.get("observed", {}))
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
    check_environment(channel, job, space, install, result)
    if job["mode"] == "install":
        result["size"] = tree_size(space.target) if space.target else 0
        return
    start_egress(job, space)
    result["execute"] = execute(channel, job, space.work, space.env)
    channel.phase("collecting")
    result["artifacts"] = collect_outputs(channel, job, space)


def start_egress(job: Job, space: Workspace) -> None:
    """With an egress allow-list: the relay to the proxy's sockets, and the code's proxy variables."""
    if job.get("egress"):
        from ai_data_agent.sandbox.egress_relay import start

        space.env.update(start(job["egress"]))


def install_requirements(channel: Channel, job: Job, space: Workspace) -> dict[str, Any]:
    """The install report (an install only where the job asks for one)."""
    wanted = job.get("requirements") and not (job.get("install") or {}).get("skip")
    if not wanted:
        return {"ok": True, "installer": None, "log_tail": "", "observed": observed_env(space.env)}
    from ai_data_agent.sandbox.install import Installer

    return Installer(channel, job, space.uv_path).install(space.sandbox, space.env)


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
    result.update(session.serve(channel, dict(job), space, channel.stdin))


def run_in_workspace(channel: Channel, job: Job, stdin: IO[bytes]) -> dict[str, Any]:
    """Modes ``run``, ``install`` and ``session``: in a sandbox dir that is removed at the end."""
    result: dict[str, Any] = {"k": "result"}
    oom_before = cgroup_oom_kills()
    space = Workspace(job, os.environ)
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
        result["sandbox_removed"] = remove_tree(space.sandbox)
    return result


def probe() -> dict[str, Any]:
    """The image's python, as the environment cache keys it."""
    import sysconfig

    return {
        "python": python_version(),
        "tag": sys.implementation.cache_tag,
        "platform": sysconfig.get_platform(),
    }


def cache_job(job: Job) -> dict[str, Any]:
    """Modes ``publish``, ``compile``, ``prune`` and ``probe``: no sandbox dir, no user code."""
    from ai_data_agent.sandbox import envstore

    mode = job["mode"]
    spec = job.get(mode) or {}
    try:
        if mode == "publish":
            return envstore.publish_env(spec["src"], spec["envs"], spec["key"], spec["manifest"])
        if mode == "prune":
            return envstore.prune_envs(spec["envs"], list(spec["keys"]))
        if mode == "compile":
            return envstore.compile_env(spec["envs"], spec["key"], int(spec["workers"]))
        return probe()
    except (OSError, KeyError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def main() -> int:
    make_undumpable()
    stdin = sys.stdin.buffer
    job = read_message(stdin)
    channel = Channel(str(job["token"]), sys.stdout.buffer, stdin)
    if job.get("mode") in ("run", "install", "session"):
        result = run_in_workspace(channel, job, stdin)
    else:
        result = dict(cache_job(job), k="result")
    channel.emit(result)
    return 0
