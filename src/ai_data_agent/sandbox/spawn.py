"""A child process with pipes on its stdin, stdout and stderr, without `subprocess`.

    child = Child.spawn([sys.executable, "-c", src], env, cwd, pass_fds=(r, w))
    child.stdin.write(b"..."); child.stdout.fileno(); child.poll(); child.wait(5.0)

`subprocess` imports `signal` (and with it `enum`), `threading`, `selectors`,
`locale` and more: about 7 ms of CPU in a fresh interpreter in a container,
which every run's runner would pay to start one interpreter. The runner needs
only this: fork, and in the child a new session, the pipes on 0-2, the fds to
pass, the working directory, every other descriptor closed, exec; `spawn`
returns once the exec is done (as `subprocess` does), so the child's process
group is there to be killed. A failure in the child before its exec ends it
with status 127 (its caller sees a child that died at once, as it would see a
python that crashed at its start).
Standard library only, Python >= 3.9.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # typing is not imported at run time: every start counts
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import BinaryIO

EXEC_FAILED = 127
MAX_FD = 65536  # the sandbox's descriptor limit is far below


class Child:
    """A started child (see the module docstring): ``pid``, its pipes, its exit."""

    def __init__(self, pid: int, stdin: BinaryIO, stdout: BinaryIO, stderr: BinaryIO) -> None:
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: int | None = None

    @classmethod
    def spawn(
        cls,
        argv: list[str],
        env: Mapping[str, str],
        cwd: str,
        pass_fds: Iterable[int] = (),
    ) -> Child:
        """Start ``argv`` in a new session, in ``cwd``, with ``env`` and ``pass_fds`` open.

        Raises:
            OSError: no pipe or no fork (the child's own failures end it with 127).
        """
        passed = sorted(set(pass_fds))
        ends = [os.pipe(), os.pipe(), os.pipe()]  # (read, write) for stdin, stdout, stderr
        # Closed by the child's exec (close-on-exec): its end tells that the exec is done,
        # so the child leads its own session and process group once this returns.
        exec_r, exec_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child, up to its exec
            try:
                os.setsid()
                os.chdir(cwd)
                for fd, end in zip((0, 1, 2), (ends[0][0], ends[1][1], ends[2][1])):
                    os.dup2(end, fd)
                for fd in passed:
                    os.set_inheritable(fd, True)
                low = 3
                for fd in sorted({*passed, exec_w, MAX_FD}):
                    os.closerange(low, fd)
                    low = fd + 1
                os.execve(argv[0], argv, dict(env))  # noqa: S606  # our own interpreter
            except BaseException:
                os.write(exec_w, b"x")
            finally:
                os._exit(EXEC_FAILED)
        os.close(exec_w)
        for end in (ends[0][0], ends[1][1], ends[2][1]):
            os.close(end)
        try:
            os.read(exec_r, 1)  # b"": exec'd; a byte: it failed before, and exits with 127
        finally:
            os.close(exec_r)
        return cls(
            pid,
            os.fdopen(ends[0][1], "wb"),
            os.fdopen(ends[1][0], "rb"),
            os.fdopen(ends[2][0], "rb"),
        )

    def poll(self) -> int | None:
        """Its exit status once it ended (negative: the signal that ended it), else None."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: it is gone, how is not known
                pid, status = self.pid, 255 << 8
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Its exit status, waiting up to ``timeout`` seconds (None: as long as it runs).

        Raises:
            TimeoutError: it still runs after ``timeout``.
        """
        if timeout is None:
            if self.poll() is None:
                try:
                    _, status = os.waitpid(self.pid, 0)
                except ChildProcessError:
                    status = 255 << 8
                self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode  # type: ignore[return-value]  # set just above
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while (code := self.poll()) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"pid {self.pid} still runs after {timeout} s")
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.05)
        return code
