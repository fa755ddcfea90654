"""Installing a requirement set with ``--target``: uv (pip when uv cannot run) or pip alone.

    cmd = pip_install_command(sys.executable, "reqs.txt", "/tmp/ai_data_agent_x")
    report = Installer(channel, job, uv_path=None).install(sandbox, env)

The pip invocation is a forced install into the target (``--target --upgrade
--force-reinstall``). uv is the faster path; pip takes over only when uv itself
cannot run here (no binary, it cannot start, it dies from a signal, or it says
this interpreter or platform is unsupported). A requirement that does not resolve fails with uv's own message,
without a second attempt. Standard library only, Python >= 3.9.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from ai_data_agent.sandbox.channel import Channel, receive_file
from ai_data_agent.sandbox.environment import observed_env

TYPE_CHECKING = False  # typing is not imported at run time: every start counts
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import IO, Any

# uv's own words when it cannot work with this interpreter or platform (pip can).
UV_UNSUPPORTED = (
    "no interpreter found",
    "failed to inspect python interpreter",
    "not supported",
    "unsupported",
    "glibc_",
    "exec format error",
)
REQUIREMENTS_FILE = ".requirements.txt"


def pip_install_command(
    python: str,
    requirements_file: str,
    target: str,
    index_url: str | None = None,
    extra_args: list[str] | None = None,
) -> list[str]:
    """A per-run, forced pip install into ``target``."""
    cmd = [python, "-m", "pip", "install", "-r", requirements_file, "--target", target]
    cmd += ["--no-cache-dir", "--disable-pip-version-check", "--upgrade", "--force-reinstall"]
    cmd += ["--no-input", "--progress-bar", "off"]
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
    cmd = [uv, "pip", "install", "--target", target, "--python", python, "-r", requirements_file]
    # copy: the cache and the target are different file systems.
    cmd += ["--no-progress", "--link-mode", "copy"]
    cmd += ["--cache-dir", cache_dir] if cache_dir else ["--no-cache"]
    if compile_bytecode:
        cmd.append("--compile-bytecode")
    if index_url:
        cmd += ["--default-index", index_url]
    if only_binary:
        cmd += ["--only-binary", ":all:"]
    return cmd


def tail(text: str, limit: int) -> str:
    """The last whole lines within ``limit`` characters, marked when cut."""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    newline = cut.find("\n")
    if 0 <= newline < len(cut) - 1:
        cut = cut[newline + 1 :]
    return "[...]\n" + cut


def run_captured(
    cmd: list[str], env: Mapping[str, str], cwd: str, timeout_s: float
) -> subprocess.CompletedProcess[str]:
    """Run a helper command (an installer, verify) with merged, decoded output."""
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


def uv_cannot_run(returncode: int | None, output: str) -> bool:
    """Whether a failed uv call means "uv does not work here" (then pip may)."""
    if returncode is None or returncode < 0:
        return True
    lowered = output.lower()
    return any(words in lowered for words in UV_UNSUPPORTED)


def receive_uv(stdin: IO[bytes], sandbox: str, size: int) -> str | None:
    """The uv binary, when the controller sends one (``size`` bytes) after the input files."""
    if not size:
        return None
    folder = os.path.join(sandbox, ".bin")
    os.mkdir(folder, 0o700)
    return receive_file(stdin, folder, "uv", size, mode=0o700)


class Installer:
    """One install of the job's requirements, reported as a dict for the result frame."""

    def __init__(self, channel: Channel, job: Mapping[str, Any], uv_path: str | None) -> None:
        self.channel = channel
        self.requirements: list[dict[str, Any]] = list(job.get("requirements") or [])
        self.spec: Mapping[str, Any] = job.get("install") or {}
        self.index_url: str | None = job.get("index_url")
        self.timeout_s = float(job.get("install_timeout_s", 300))
        self.log_limit = int(job.get("install_log_limit", 16384))
        self.uv_path = uv_path

    def install(self, sandbox: str, env: Mapping[str, str]) -> dict[str, Any]:
        target = self.spec.get("target") or sandbox
        report: dict[str, Any] = {
            "installer": self.spec.get("installer", "pip"),
            "fallback_triggered": False,
            "log_tail": "",
            "duration_s": 0.0,
            "observed": observed_env(env),
        }
        if not self.requirements or self.spec.get("skip"):
            report["ok"] = True
            report["installer"] = None
            return report
        os.makedirs(target, exist_ok=True)
        req_file = os.path.join(sandbox, REQUIREMENTS_FILE)
        with open(req_file, "w") as fh:
            fh.write("".join(r["line"] + "\n" for r in self.requirements))
        self.channel.phase("installing")
        started = time.monotonic()
        try:
            report["ok"] = self._install_into(req_file, target, sandbox, env, report)
        finally:
            report["duration_s"] = time.monotonic() - started
            os.unlink(req_file)
        return report

    def _install_into(
        self, req_file: str, target: str, cwd: str, env: Mapping[str, str], report: dict[str, Any]
    ) -> bool:
        if report["installer"] == "uv":
            if self.uv_path is None:
                reason = "uv binary not available"
            else:
                cmd = uv_install_command(
                    self.uv_path,
                    sys.executable,
                    req_file,
                    target,
                    self.index_url,
                    self.spec.get("uv_cache"),
                    bool(self.spec.get("compile", True)),
                    bool(self.spec.get("only_binary")),
                )
                returncode, output = self._run("uv", cmd, cwd, env, report)
                if returncode == 0:
                    return True
                if report.get("timed_out") or not uv_cannot_run(returncode, output):
                    return False
                reason = f"uv cannot run here: {tail(output, 300).strip()}"
            self.channel.log("WARNING", f"fallback_triggered: {reason}; installing with pip")
            report["fallback_triggered"] = True
            report["fallback_reason"] = reason
            report["installer"] = "pip"
        pip_args = ["--only-binary", ":all:"] if self.spec.get("only_binary") else []
        cmd = pip_install_command(sys.executable, req_file, target, self.index_url, pip_args)
        returncode, _ = self._run("pip", cmd, cwd, env, report)
        return returncode == 0

    def _run(
        self, name: str, cmd: list[str], cwd: str, env: Mapping[str, str], report: dict[str, Any]
    ) -> tuple[int | None, str]:
        """Run one installer; keep its log tail in ``report``; return (exit code, output).

        The exit code is None when the installer could not start.
        """
        count = len(self.requirements)
        self.channel.log("INFO", f"installing {count} requirement(s) with {name} --target")
        try:
            proc = run_captured(cmd, env, cwd, self.timeout_s)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout or ""
            out = out.decode(errors="replace") if isinstance(out, bytes) else out
            report["log_tail"] = tail(out + "\n[install timed out]", self.log_limit)
            report["timed_out"] = True
            return None, out
        except OSError as exc:
            report["log_tail"] = f"cannot start {name}: {exc}"
            return None, report["log_tail"]
        report["exit_code"] = proc.returncode
        report["log_tail"] = tail(proc.stdout, self.log_limit)
        return proc.returncode, proc.stdout
