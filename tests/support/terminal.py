"""A program on a pseudo-terminal, driven as a person at a keyboard drives it.

    with Terminal.start([CLI, "repl"], env) as term:
        term.expect(">>> ")
        term.type("x = 41\n")
        term.ctrl_c()                       # SIGINT from the terminal, to its foreground group
        term.expect("KeyboardInterrupt")    # (ctrl_c_until: again until it shows)
        term.ctrl_d()
        assert term.wait(30) == 0

The program is a session leader with the terminal as its controlling terminal,
so Ctrl-C, Ctrl-D and the window size mean what they mean at a shell. ``expect``
reads until a text shows up or a deadline passes, and fails with everything the
program wrote (``transcript``). Only the standard library (``pty``-style, no
pexpect).
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Mapping, Sequence
from types import TracebackType

__all__ = ["Terminal"]

# In the child: take the terminal on stdin as the controlling one, then become the program.
_LAUNCH = (
    "import fcntl, os, sys, termios\n"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "os.execvp(sys.argv[1], sys.argv[1:])\n"
)
ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][0-9A-B])")


class Terminal:
    """One program on its own pseudo-terminal (see the module docstring)."""

    def __init__(self, process: subprocess.Popen[bytes], master: int) -> None:
        self.process = process
        self.master = master
        self.raw = b""  # every byte the program wrote (and the terminal echoed)
        self._seen = 0  # how much of the text `expect` has consumed

    @classmethod
    def start(
        cls,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        columns: int = 120,
        cwd: str | None = None,
    ) -> Terminal:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        env = {**env, "TERM": "xterm-256color", "COLUMNS": str(columns)}
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", _LAUNCH, *argv],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        finally:
            os.close(slave)
        return cls(process, master)

    @property
    def text(self) -> str:
        """What the program wrote, as a person reads it: escape sequences and CRs dropped."""
        return ANSI.sub("", self.raw.decode(errors="replace")).replace("\r", "")

    def transcript(self) -> str:
        return f"--- terminal (pid {self.process.pid}) ---\n{self.text}\n--- end ---"

    def _read(self, timeout_s: float) -> bool:
        """Read what is there within ``timeout_s``; False once the program closed the terminal."""
        ready, _, _ = select.select([self.master], [], [], max(timeout_s, 0.0))
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: every copy of the other side is closed
            return False
        self.raw += chunk
        return bool(chunk)

    def expect(self, pattern: str, *, timeout_s: float = 30.0) -> str:
        """Read until ``pattern`` (a regular expression) appears after what earlier calls
        consumed; return the text up to its end.

        Raises:
            AssertionError: not within ``timeout_s``, or the program closed the terminal first.
        """
        deadline = time.monotonic() + timeout_s
        regex = re.compile(pattern)
        while True:
            found = regex.search(self.text, self._seen)
            if found:
                consumed = self.text[self._seen : found.end()]
                self._seen = found.end()
                return consumed
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.2)):
                what = "in time" if left <= 0 else "before the terminal closed"
                raise AssertionError(f"{pattern!r} did not show {what}\n{self.transcript()}")

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def ctrl_c(self) -> None:
        self.type("\x03")

    def ctrl_c_until(self, pattern: str, *, every_s: float = 1.0, timeout_s: float = 30.0) -> str:
        """Ctrl-C, again every ``every_s`` until ``pattern`` shows, as a person presses it
        again when nothing happens: a signal that arrives just before a program blocks
        in a read (it printed its prompt, it is not reading yet) waits for that read to
        end, in Python as in C.

        Raises:
            AssertionError: ``pattern`` did not show within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            self.ctrl_c()
            try:
                return self.expect(pattern, timeout_s=min(every_s, deadline - time.monotonic()))
            except AssertionError:
                if time.monotonic() >= deadline or self.process.poll() is not None:
                    raise

    def ctrl_d(self) -> None:
        self.type("\x04")

    def wait(self, timeout_s: float) -> int:
        """The exit status, reading the terminal meanwhile (so the program never blocks on it).

        Raises:
            AssertionError: still running after ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"still running after {timeout_s:g} s\n{self.transcript()}")
            self._read(0.1)
        while self._read(0.0) and select.select([self.master], [], [], 0)[0]:
            pass
        return self.process.returncode

    def close(self) -> None:
        """Kill the program if it still runs (this pid only); close the terminal."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        os.close(self.master)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
