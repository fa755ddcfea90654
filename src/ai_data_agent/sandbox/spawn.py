"""A child process with pipes on its stdin, stdout and stderr, without `subprocess`.

    child = Child.spawn([sys.executable, "-c", src], env, cwd, pass_fds=(r, w))
    child.stdin.write(b"..."); child.stdout.fileno(); child.poll(); child.wait(5.0)

`subprocess` imports `signal` (and with it `enum`), `threading`, `selectors`,
`locale` and more: about 7 ms of CPU in a fresh interpreter in a container,
which every run's runner would pay to start one interpreter. The runner needs
only this: fork, and in the child a new session, the pipes on 0-2, the fds to
pass, the working directory, every other descriptor closed (those the parent
listed in ``/proc/self/fd`` just before), exec. As with `subprocess`, `spawn`
returns once the exec is done, so the child's process group is there to be
killed, and a failure before the exec is raised in the parent (`OSError`, with
the step and the errno the child hit). The caller holds fds 0-2 (the runner
does), so the pipes never land on them.
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
MAX_FD = 65536  # where no /proc lists the open fds: close up to this (the sandbox's limit)


def open_fds() -> list[int]:
    """This process's open descriptors (all up to `MAX_FD` where /proc cannot say)."""
    try:
        return sorted(int(name) for name in os.listdir("/proc/self/fd"))
    except OSError:
        return list(range(MAX_FD))


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
            OSError: no pipe, no fork, or the child could not get to its exec (the step
                and its errno are in the message; nothing is left open).
        """
        passed = set(pass_fds)
        environ = dict(env)  # built here: the child only calls into the system
        made: list[int] = []
        try:
            for _ in range(4):  # stdin, stdout, stderr; and the exec's report
                made.extend(os.pipe())
            (in_r, in_w, out_r, out_w, err_r, err_w, exec_r, exec_w) = made
            doomed = [fd for fd in open_fds() if fd > 2 and fd not in passed and fd != exec_w]
            pid = os.fork()
        except BaseException:
            for fd in made:
                os.close(fd)
            raise
        if pid == 0:  # pragma: no cover - the child, up to its exec
            step = "setsid"
            try:
                os.setsid()
                step = "chdir"
                os.chdir(cwd)
                step = "dup2"
                for fd, end in ((0, in_r), (1, out_w), (2, err_w)):
                    os.dup2(end, fd)
                for fd in passed:
                    os.set_inheritable(fd, True)
                for fd in doomed:
                    os.closerange(fd, fd + 1)  # no error for one already closed
                step = "exec"
                os.execve(argv[0], argv, environ)  # noqa: S606  # our own interpreter
            except BaseException as exc:
                code = exc.errno if isinstance(exc, OSError) and exc.errno else 0
                os.write(exec_w, f"{step} {code}".encode())
            finally:
                os._exit(EXEC_FAILED)
        for fd in (in_r, out_w, err_w, exec_w):
            os.close(fd)
        try:
            failed = os.read(exec_r, 64)  # b"": exec'd (the pipe closed on exec)
        finally:
            os.close(exec_r)
        if failed:
            os.waitpid(pid, 0)
            for fd in (in_w, out_r, err_r):
                os.close(fd)
            step, _, number = failed.decode().partition(" ")
            errno = int(number) if number.isdigit() else 0
            why = os.strerror(errno) if errno else "refused"  # a NUL byte in argv or env
            raise OSError(errno or None, f"cannot start {argv[0]}: {step}: {why}")
        return cls(pid, os.fdopen(in_w, "wb"), os.fdopen(out_r, "rb"), os.fdopen(err_r, "rb"))

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
