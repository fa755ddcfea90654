"""Proposed changes to the executor, tried from outside src/ to measure what they would buy.

    DeferredRemoval(executor)      # answer at the result frame; wait for exit and rm later
    LeanRunner(executor)           # the same runner, with less interpreter start-up work
    StdinRunner(executor)          # the runner's source on stdin, not in the container's argv
    NoCompileAtInstall(executor)   # install environments without compiling bytecode

These wrap one `Executor` instance the way `bench.profile` does; they are
experiments for the benchmark's evidence, not the product. The numbers they
give are labelled "experiment" in the table.

`DeferredRemoval`: today a run returns only after the runner's container has
exited (end of the attach stream, up to `EXIT_WAIT_S`) and ``docker rm`` has
finished. The result frame is the runner's last word: it has already measured
OOM kills and removed its sandbox dir. Here the session reports the end of the
stream as soon as the result frame has arrived, and ``remove`` hands the real
wait-for-exit and removal to a background thread (`drain` joins them).

`LeanRunner`: the runner costs about 65 ms of CPU per run inside the container
(the floor's ``python3 -c`` about 10): its imports and its own interpreter
start. `lean_runner_source` rewrites the shipped runner text so that it starts
with ``-S`` (no site: it needs only the standard library), does not import
``platform`` (``platform.platform()`` scans the interpreter binary for the libc
version), ``tempfile`` (and with it ``random``) or, until artifacts are sent,
``hashlib`` and ``base64``. Behaviour is otherwise the same.

`StdinRunner`: today the runner's 30 KB source is the container's command
(``python3 -I -c <source>``), so it travels through dockerd's and containerd's
container configs, the OCI spec and runc on every start. Here the command is a
one-line bootstrap that reads the source, length-prefixed, from stdin and
executes it; the source is sent over the attach socket right after the start,
before the job.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from ai_data_agent.executor import Executor
from ai_data_agent.executor.spec import runner_source

__all__ = [
    "DeferredRemoval",
    "LeanRunner",
    "NoCompileAtInstall",
    "StdinRunner",
    "lean_runner_source",
]

BOOTSTRAP = (
    "import sys; n = int(sys.stdin.buffer.readline()); "
    "exec(compile(sys.stdin.buffer.read(n), '<ai-data-agent runner>', 'exec'))"
)

LEAN_HELPERS = """
class platform:  # lean: os.uname() instead of the platform module
    @staticmethod
    def platform() -> str:
        u = os.uname()
        return "{}-{}-{}".format(u.sysname, u.release, u.machine)

    @staticmethod
    def python_version() -> str:
        return "%d.%d.%d" % sys.version_info[:3]


def _mkdtemp(prefix: str, base: "str | None" = None) -> str:
    base = base or os.environ.get("TMPDIR") or "/tmp"
    while True:
        path = os.path.join(base, prefix + os.urandom(6).hex())
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue
"""


def lean_runner_source(source: str) -> str:
    """The runner's text with the start-up savings described above.

    Raises:
        ValueError: the runner changed so that a rewrite no longer applies.
    """
    rewrites = [
        ("import base64\n", ""),
        ("import hashlib\n", ""),
        ("import platform\n", ""),
        ("import tempfile\n", ""),
        ("hashlib.sha256()", '__import__("hashlib").sha256()'),
        ("base64.b64encode(", '__import__("base64").b64encode('),
        ("tempfile.mkdtemp(prefix=SANDBOX_PREFIX, dir=base)", "_mkdtemp(SANDBOX_PREFIX, base)"),
        ("from typing import IO, Any\n", "from typing import IO, Any\n" + LEAN_HELPERS),
    ]
    for old, new in rewrites:
        if old not in source:
            raise ValueError(f"the runner changed: {old!r} not found")
        source = source.replace(old, new, 1)
    return source


class _DeferredSession:
    def __init__(self, inner: Any, owner: DeferredRemoval) -> None:
        self._inner = inner
        self._owner = owner
        self._result_seen = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def read(self, timeout_s: float) -> Any:
        if self._result_seen:
            return 0, b""  # the result is in: nothing more is needed from the stream
        chunk = self._inner.read(timeout_s)
        if chunk is not None and b'{"k": "result"' in chunk[1]:
            self._result_seen = True
        return chunk

    def remove(self) -> None:
        if not self._result_seen:
            self._inner.remove()  # an abnormal end: as today
            return
        thread = threading.Thread(target=self._finish, daemon=True)
        thread.start()  # before tracking: `drain` may join it at once
        self._owner.track(thread)

    def _finish(self) -> None:
        try:
            for _ in range(40):  # the runner exits right after its result
                chunk = self._inner.read(0.05)
                if chunk is not None and not chunk[1]:
                    break
            self._inner.remove()
        except Exception:  # counted; the benchmark's final sweep removes what is left
            self._owner.failures += 1


class DeferredRemoval:
    """Wraps ``executor``'s sessions so runs return at the result frame."""

    def __init__(self, executor: Executor) -> None:
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.failures = 0
        backend = executor.backend
        original_start = backend.start

        def start(spec: Any, run_id: str) -> Any:
            return _DeferredSession(original_start(spec, run_id), self)

        backend.start = start  # type: ignore[method-assign]

    def track(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)

    def drain(self, timeout_s: float = 30.0) -> None:
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout_s)


class LeanRunner:
    """Starts ``executor``'s sandboxes (pooled ones too: wrap before `start_pool`) leaner."""

    def __init__(self, executor: Executor) -> None:
        command = ["python3", "-I", "-S", "-c", lean_runner_source(runner_source())]
        backend = executor.backend
        original_start = backend.start

        def start(spec: Any, run_id: str) -> Any:
            return original_start(dataclasses.replace(spec, command=command), run_id)

        backend.start = start  # type: ignore[method-assign]


class StdinRunner:
    """Ships the runner over stdin (wrap before `start_pool`; composes with `LeanRunner`)."""

    def __init__(self, executor: Executor) -> None:
        backend = executor.backend
        original_start = backend.start

        def start(spec: Any, run_id: str) -> Any:
            *interpreter, _flag, source = spec.command  # [python3, -I, (-S,) -c, source]
            command = [*interpreter, "-c", BOOTSTRAP]
            session = original_start(dataclasses.replace(spec, command=command), run_id)
            data = source.encode()
            session.send(b"%d\n" % len(data) + data)
            return session

        backend.start = start  # type: ignore[method-assign]


class NoCompileAtInstall:
    """Makes ``executor``'s environment cache install without compiling bytecode."""

    def __init__(self, executor: Executor) -> None:
        cache = executor.env_cache
        if cache is None:
            raise ValueError("the executor has no environment cache")
        original_drive = cache.drive

        def drive(job: dict[str, Any], **kwargs: Any) -> Any:
            if job.get("mode") == "install":
                job = dict(job, install=dict(job["install"], compile=False))
            return original_drive(job, **kwargs)

        cache.drive = drive
