"""Backends for unit tests: the executor core without Docker.

`FakeBackend` runs the real in-container runner as a local subprocess, wired
like a container: the runner's stdin, stdout and stderr are pipes, read by
two threads into one queue, so `Sandbox.read` has the Docker sandbox's
semantics (``(STDOUT|STDERR, bytes)``, ``(0, b"")`` at end of stream, None on
timeout)::

    backend = FakeBackend(tmp_path)
    result = Executor(Settings(allow_network=True), backend=backend).run(
        RunRequest(code="print(1)", network=True)
    )
    assert backend.started[0].calls[-1] == "remove"

`ScriptedBackend` plays a runner from a script of frames, for controller-side
paths that a real runner cannot be made to take quickly (deadlines, floods).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ai_data_agent.errors import ExecutorError
from ai_data_agent.executor.backend import STDERR, STDOUT, ExitState, SweepRule
from ai_data_agent.executor.protocol import encode_message
from ai_data_agent.executor.spec import ContainerSpec
from tests.support.measure import measured

__all__ = [
    "EngineStub",
    "FakeBackend",
    "ProcessSandbox",
    "SandboxUser",
    "ScriptedBackend",
    "ScriptedSandbox",
    "build_wheel",
    "decode_message",
    "descendants",
    "frame_line",
]

FAKE_IMAGE = "fake/python:host"
SANDBOX_UID = 1000  # as in spec.SANDBOX_USER
SANDBOX_GID = 1000
READ_CHUNK = 65536


@dataclass(frozen=True)
class SandboxUser:
    """How to run a process as the sandbox user: Popen keyword arguments and a python."""

    popen_kwargs: dict[str, Any]
    python: str


def decode_message(data: bytes) -> dict[str, Any]:
    """The inverse of `encode_message` (what the runner's `read_message` does)."""
    header, _, body = data.partition(b"\n")
    assert int(header) == len(body), "message length prefix does not match its body"
    message: dict[str, Any] = json.loads(body)
    return message


def frame_line(token: str, frame: dict[str, Any]) -> bytes:
    """One runner frame, as the runner writes it."""
    return token.encode() + b" " + json.dumps(frame).encode() + b"\n"


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (Linux /proc), children before grandchildren."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def warm_token(data: bytes) -> str | None:
    """The token of a pooled sandbox's warm message (`executor.warm`), None for other data."""
    try:
        message = decode_message(data)
    except (AssertionError, ValueError):
        return None
    return str(message["token"]) if message.get("mode") == "warm" else None


def _is_warm(data: bytes) -> bool:
    return warm_token(data) is not None


def _spec_ids(user: str) -> tuple[int, int]:
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


class ProcessSandbox:
    """The runner as a local process; what a container would be."""

    def __init__(
        self,
        spec: ContainerSpec,
        run_id: str,
        env: dict[str, str],
        *,
        emulate_isolation: bool,
        run_as: SandboxUser | None,
        fail_send: bool,
    ) -> None:
        self.spec = spec
        self.run_id = run_id
        self.calls: list[str] = []
        self.jobs: list[dict[str, Any]] = []
        self.warm_jobs: list[dict[str, Any]] = []
        self._emulate_isolation = emulate_isolation
        self._fail_send = fail_send
        self._id = "fake-" + uuid.uuid4().hex
        self._removed = False
        self._loaded = False
        self._queue: queue.Queue[tuple[int, bytes]] = queue.Queue()
        self._open_streams = 2
        assert spec.command[0] == "python3", spec.command
        argv = [sys.executable, *spec.command[1:]]
        ids: dict[str, Any] = {}
        if run_as is None:
            argv, env = measured(argv, env)
        else:  # another user could not write this run's coverage data
            argv[0], ids = run_as.python, dict(run_as.popen_kwargs)
            if "user" in ids:
                assert (ids["user"], ids["group"]) == _spec_ids(spec.user)
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=env["TMPDIR"],
            start_new_session=True,
            **ids,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, STDOUT), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, STDERR), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self, pipe: Any, stream: int) -> None:
        fd = pipe.fileno()
        while True:
            try:
                data = os.read(fd, READ_CHUNK)
            except OSError:
                data = b""
            self._queue.put((stream, data))
            if not data:
                return

    # -- Sandbox protocol ----------------------------------------------------------
    @property
    def container_id(self) -> str:
        return self._id

    def send(self, data: bytes) -> None:
        if not self._loaded:
            self._loaded = True  # the bundle of sandbox modules, for the bootstrap
            self.calls.append("send:bundle")
        elif not self.jobs and _is_warm(data):
            self.warm_jobs.append(decode_message(data))  # a pooled sandbox's, before its job
            self.calls.append("send:warm")
        elif not self.jobs:
            job = decode_message(data)
            self.jobs.append(job)
            self.calls.append("send:job")
            if self._fail_send:
                raise ExecutorError(
                    "cannot write to the sandbox: injected",
                    run_id=self.run_id,
                    container_id=self._id,
                    step="attach",
                )
            if self._emulate_isolation and (
                self.spec.network is None or self.spec.detach_network_before_code
            ):
                # A container would have only `lo` when the code runs; this
                # process sees the host's interfaces, so tell the runner the
                # network is fine instead.
                job = dict(job, network=True)
            data = encode_message(job)
        else:
            self.calls.append("send:" + data.decode(errors="replace").strip())
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except OSError as exc:
            raise ExecutorError(
                f"cannot write to the sandbox: {exc}",
                run_id=self.run_id,
                container_id=self._id,
                step="attach",
            ) from exc

    def close_stdin(self) -> None:
        self.calls.append("close_stdin")
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def read(self, timeout_s: float) -> tuple[int, bytes] | None:
        while self._open_streams:
            try:
                stream, data = self._queue.get(timeout=max(timeout_s, 0.0))
            except queue.Empty:
                return None
            if data:
                return stream, data
            self._open_streams -= 1
        return 0, b""

    def detach_network(self) -> None:
        self.calls.append("detach")

    def cpu_ns(self) -> int | None:
        return None

    def _kill_all(self) -> None:
        for pid in [*descendants(self.proc.pid), self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def kill(self) -> None:
        self.calls.append("kill")
        self._kill_all()

    def exit_state(self, timeout_s: float) -> ExitState:
        self.calls.append("exit_state")
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._kill_all()
            self.proc.wait()
            return ExitState(exit_code=None, oom_killed=False)
        # As Docker reports it: 128 + signal for a killed main process.
        return ExitState(exit_code=code if code >= 0 else 128 - code, oom_killed=False)

    def remove(self) -> None:
        self.calls.append("remove")
        if self._removed:
            return
        self._removed = True
        self._kill_all()
        self.proc.wait()
        for thread in self._threads:
            thread.join(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass

    @property
    def removed(self) -> bool:
        return self._removed


class EngineStub:
    """The engine operations of the `Backend` protocol that unit fakes answer trivially."""

    image = FAKE_IMAGE
    swept: list[SweepRule]

    def close(self) -> None:
        pass

    def ping(self) -> str:
        return "fake"

    def engine_id(self) -> str:
        return "fake-engine"

    def resolve_image(self) -> str:
        return self.image

    def check_image(self) -> str:
        return self.image

    def image_id(self, image: str) -> str:
        return "sha256:" + hashlib.sha256(image.encode()).hexdigest()

    def ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        pass

    def remove_volume(self, name: str) -> None:
        pass

    def sandboxes(self, controller_id: str) -> list[str]:
        return []

    def sweep(self, rule: SweepRule) -> list[str]:
        if not hasattr(self, "swept"):
            self.swept = []
        self.swept.append(rule)
        return []


class FakeBackend(EngineStub):
    """Starts `ProcessSandbox`s; records every spec and session.

    Args:
        tmp_dir: the "container filesystem": the runner's TMPDIR and cwd.
        emulate_isolation: rewrite the job's network flag where a container
            would have no interfaces but ``lo`` when the code runs.
        run_as: run the runner as this user (``spec.user``) with its python.
        extra_env: variables the "image" defines (e.g. ``PIP_FIND_LINKS``).
        fail_send: the first `send` raises `ExecutorError`.
    """

    def __init__(
        self,
        tmp_dir: Path,
        *,
        emulate_isolation: bool = False,
        run_as: SandboxUser | None = None,
        extra_env: dict[str, str] | None = None,
        fail_send: bool = False,
        image: str = FAKE_IMAGE,
    ) -> None:
        self.tmp_dir = Path(tmp_dir)
        self.emulate_isolation = emulate_isolation
        self.run_as = run_as
        self.extra_env = dict(extra_env or {})
        self.fail_send = fail_send
        self.image = image
        self.specs: list[ContainerSpec] = []
        self.started: list[ProcessSandbox] = []

    def start(self, spec: ContainerSpec, run_id: str) -> ProcessSandbox:
        self.specs.append(spec)
        env = {
            # The "image's" own environment: nothing of the test process leaks in.
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TMPDIR": str(self.tmp_dir),
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_NO_INDEX": "1",
            **spec.environment,
            **self.extra_env,
        }
        sandbox = ProcessSandbox(
            spec,
            run_id,
            env,
            emulate_isolation=self.emulate_isolation,
            run_as=self.run_as,
            fail_send=self.fail_send,
        )
        self.started.append(sandbox)
        return sandbox


# A script item: a frame (dict, sent with the run's token), raw stdout bytes, or
# (STDERR, bytes).
ScriptItem = dict[str, Any] | bytes | tuple[int, bytes]
Responder = Callable[[dict[str, Any]], list[ScriptItem]]


class ScriptedSandbox:
    """Plays ``before_go`` once the job is in, ``after_go`` once ``go`` is in.

    With ``respond``, the job itself picks what is played before ``go``
    (``respond(job)``, called on the driver's thread). When the script is
    over, the stream ends if ``end_stream``; else reads time out until `kill`
    ends it, as with a container that went quiet.
    """

    def __init__(
        self,
        run_id: str,
        before_go: list[ScriptItem],
        after_go: list[ScriptItem],
        *,
        end_stream: bool,
        fail_send: bool,
        fail_remove: bool,
        exit_code: int | None,
        respond: Responder | None = None,
    ) -> None:
        self.run_id = run_id
        self.calls: list[str] = []
        self.jobs: list[dict[str, Any]] = []
        self._pending: list[ScriptItem] = list(before_go)
        self._after_go = list(after_go)
        self.end_stream = end_stream
        self._fail_send = fail_send
        self._fail_remove = fail_remove
        self._exit_code = exit_code
        self._respond = respond
        self._killed = threading.Event()
        self._token: str | None = None
        self._warm_reply: bytes | None = None
        self._loaded = False

    @property
    def container_id(self) -> str:
        return "scripted-" + self.run_id

    def send(self, data: bytes) -> None:
        if not self._loaded:
            self._loaded = True  # the bundle of sandbox modules, for the bootstrap
            self.calls.append("send:bundle")
            return
        if self._token is None and _is_warm(data):  # pooled: report warm, as a runner does
            self.calls.append("send:warm")
            token = str(decode_message(data)["token"])
            self._warm_reply = frame_line(token, {"k": "warm", "imported": [], "rss_kb": 20480})
            return
        if self._token is None:
            self.calls.append("send:job")
            if self._fail_send:
                raise ExecutorError("injected send failure", run_id=self.run_id, step="attach")
            job = decode_message(data)
            self.jobs.append(job)
            self._token = str(job["token"])
            if self._respond is not None:
                self._pending += self._respond(job)
            return
        self.calls.append("send:" + data.decode(errors="replace").strip())
        if data == b"go\n":
            self._pending += self._after_go
            self._after_go = []

    def close_stdin(self) -> None:
        self.calls.append("close_stdin")

    def read(self, timeout_s: float) -> tuple[int, bytes] | None:
        if self._killed.is_set():
            return 0, b""
        if self._warm_reply is not None:
            reply, self._warm_reply = self._warm_reply, None
            return STDOUT, reply
        if self._token is not None and self._pending:
            item = self._pending.pop(0)
            if isinstance(item, dict):
                return STDOUT, frame_line(self._token, item)
            if isinstance(item, tuple):
                return item
            return STDOUT, item
        if self.end_stream and not self._after_go:
            return 0, b""
        # Nothing to say: block like a quiet socket (until killed).
        if self._killed.wait(timeout_s):
            return 0, b""
        return None

    def detach_network(self) -> None:
        self.calls.append("detach")

    def cpu_ns(self) -> int | None:
        return None

    def kill(self) -> None:
        self.calls.append("kill")
        self._killed.set()

    def exit_state(self, timeout_s: float) -> ExitState:
        self.calls.append("exit_state")
        code = 137 if self._killed.is_set() else self._exit_code
        return ExitState(exit_code=code, oom_killed=False)

    def remove(self) -> None:
        self.calls.append("remove")
        if self._fail_remove:
            raise ExecutorError("injected remove failure", run_id=self.run_id, step="remove")


class ScriptedBackend(EngineStub):
    """Starts `ScriptedSandbox`s from a script factory."""

    def __init__(
        self,
        before_go: list[ScriptItem],
        after_go: list[ScriptItem] | None = None,
        *,
        end_stream: bool = True,
        fail_send: bool = False,
        fail_remove: bool = False,
        exit_code: int | None = 0,
        on_start: Callable[[ContainerSpec], None] | None = None,
        respond: Responder | None = None,
    ) -> None:
        self.before_go = before_go
        self.after_go = after_go or []
        self.end_stream = end_stream
        self.fail_send = fail_send
        self.fail_remove = fail_remove
        self.exit_code = exit_code
        self.on_start = on_start
        self.respond = respond
        self.specs: list[ContainerSpec] = []
        self.started: list[ScriptedSandbox] = []

    def start(self, spec: ContainerSpec, run_id: str) -> ScriptedSandbox:
        self.specs.append(spec)
        if self.on_start is not None:
            self.on_start(spec)
        sandbox = ScriptedSandbox(
            run_id,
            self.before_go,
            self.after_go,
            end_stream=self.end_stream,
            fail_send=self.fail_send,
            fail_remove=self.fail_remove,
            exit_code=self.exit_code,
            respond=self.respond,
        )
        self.started.append(sandbox)
        return sandbox


def build_wheel(directory: Path, name: str, version: str, module_source: str) -> Path:
    """A minimal pure-Python wheel ``<name>-<version>-py3-none-any.whl`` in ``directory``."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{dist}/__init__.py": module_source.encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: ai-data-agent-tests\n"
            b"Root-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = directory / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return wheel
