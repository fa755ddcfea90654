"""`sandbox.spawn.Child`: a child on three pipes, in its own session and working
directory, with exactly the descriptors it is given, and its exit as `subprocess`
reports it."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from ai_data_agent.sandbox.spawn import Child
from tests.support.children import read_to_end

SHOW = """
import os, sys
data = sys.stdin.read()
print(os.getcwd(), os.getsid(0) == os.getpid(), os.environ.get("ONLY"), data)
for fd in range(3, 64):
    try:
        os.fstat(fd)
    except OSError:
        continue
    print("open", fd)
print("to stderr", file=sys.stderr)
sys.exit(int(os.environ["CODE"]))
"""


def test_the_child_gets_its_cwd_env_session_pipes_and_only_the_fds_passed(
    tmp_path: Path,
) -> None:
    passed_r, passed_w = os.pipe()
    kept_r, kept_w = os.pipe()  # not passed: the child must not have it
    os.set_inheritable(kept_r, True)  # even when it could be inherited
    try:
        child = Child.spawn(
            [sys.executable, "-I", "-S", "-c", SHOW],
            {"ONLY": "this", "CODE": "3"},
            str(tmp_path),
            pass_fds=(passed_r,),
        )
        child.stdin.write(b"input")
        child.stdin.close()
        out, err = read_to_end(child, 30)
    finally:
        for fd in (passed_r, passed_w, kept_r, kept_w):
            os.close(fd)
    lines = out.decode().splitlines()
    assert lines[0] == f"{tmp_path} True this input"
    assert lines[1:] == [f"open {passed_r}"]
    assert err == b"to stderr\n"
    assert child.wait(30) == 3
    assert child.poll() == 3 == child.returncode


@pytest.mark.parametrize(
    ("argv", "env", "cwd", "says"),
    [
        (["missing"], {}, None, "exec: No such file or directory"),
        ([sys.executable, "-c", "pass"], {}, "missing", "chdir: No such file or directory"),
        ([sys.executable, "-c", "pass"], {"A": "x\x00y"}, None, "exec: refused"),
    ],
    ids=["no program", "no cwd", "nul in env"],
)
def test_a_child_that_cannot_get_to_its_exec_is_an_error_here_and_leaves_nothing_open(
    tmp_path: Path, argv: list[str], env: dict[str, str], cwd: str | None, says: str
) -> None:
    before = sorted(os.listdir("/proc/self/fd"))
    program = [str(tmp_path / argv[0]), *argv[1:]] if argv == ["missing"] else argv
    with pytest.raises(OSError, match=says):
        Child.spawn(program, env, str(tmp_path / cwd) if cwd else str(tmp_path))
    assert sorted(os.listdir("/proc/self/fd")) == before


def test_a_signal_shows_as_a_negative_status_and_wait_can_time_out(tmp_path: Path) -> None:
    child = Child.spawn(
        [sys.executable, "-I", "-S", "-c", "import time; time.sleep(60)"], {}, str(tmp_path)
    )
    try:
        assert child.poll() is None
        with pytest.raises(TimeoutError):
            child.wait(0.05)
        os.killpg(child.pid, signal.SIGKILL)  # its own session: its group is its pid
        assert child.wait() == -signal.SIGKILL
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        for pipe in (child.stdin, child.stdout, child.stderr):
            pipe.close()


def test_its_process_group_is_there_to_kill_as_soon_as_spawn_returns(tmp_path: Path) -> None:
    for _ in range(30):  # a child not yet in its own session would escape the kill
        child = Child.spawn(
            [sys.executable, "-I", "-S", "-c", "import time; time.sleep(60)"], {}, str(tmp_path)
        )
        os.killpg(child.pid, signal.SIGKILL)
        assert child.wait(30) == -signal.SIGKILL
        for pipe in (child.stdin, child.stdout, child.stderr):
            pipe.close()
