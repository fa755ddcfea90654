"""The session runner and its kernel, end to end on the host: the container's command line
as a subprocess in session mode, driven by hand as the controller drives it.

These pin the failure table of sessions at the runner's level (the integration
suite repeats the rows that need a container: the memory limit, the network).
"""

from __future__ import annotations

import base64
import hashlib
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ai_data_agent.executor.delivery import bundle
from ai_data_agent.executor.protocol import FrameReader, encode_message, new_token
from ai_data_agent.executor.spec import sandbox_command
from tests.support.measure import CONFIG_VARIABLE, measured

WAIT_S = 30.0


class Runner:
    """A runner in session mode, with the controller's side played by the test."""

    def __init__(self, tmpdir: Path, **job: Any) -> None:
        self.token = new_token()
        job = {
            "mode": "session",
            "token": self.token,
            "network": True,  # the host has interfaces a container would not
            "stdout_limit": 4096,
            "stderr_limit": 4096,
            "artifacts": {"max_count": 10, "max_total_bytes": 1_000_000},
            "interrupt_grace_s": 0.5,
            "display_max_bytes": 100_000,
            "cell_display_max_bytes": 200_000,
            "files": [],
            **job,
        }
        config = os.environ.get(CONFIG_VARIABLE)
        if config is not None:  # the kernel runs without -I -S: coverage's hook starts it
            job["exec_env"] = {**job.get("exec_env", {}), CONFIG_VARIABLE: config}
        env = {"PATH": os.environ.get("PATH", ""), "TMPDIR": str(tmpdir), "LANG": "C.UTF-8"}
        argv, env = measured([sys.executable, *sandbox_command()[1:]], env)
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        self.reader = FrameReader(self.token)
        self.stderr = b""
        self.send_raw(bundle() + encode_message(job))
        self.started = self.until(lambda f: f["k"] == "kernel")

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def op(self, **message: Any) -> None:
        self.send_raw(encode_message(message))

    def frames(self, timeout: float = WAIT_S) -> Iterator[dict[str, Any]]:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            ready, _, _ = select.select([self.proc.stdout, self.proc.stderr], [], [], 0.1)
            for pipe in ready:
                data = os.read(pipe.fileno(), 65536)
                if pipe is self.proc.stderr:
                    self.stderr += data
                elif not data:
                    return
                else:
                    yield from self.reader.feed(data)
        pytest.fail(f"no frame within {timeout} s; runner stderr: {self.stderr[-2000:]!r}")

    def until(self, done: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        seen = []
        for frame in self.frames():
            seen.append(frame)
            if done(frame):
                return seen
        pytest.fail(f"the stream ended first: {seen!r}")

    count = 0

    def cell(
        self, code: str, timeout_s: float = 10.0
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        self.count += 1
        self.op(op="cell", code=code, count=self.count, timeout_s=timeout_s)
        frames = self.until(lambda f: f["k"] == "cell")
        return frames[-1], frames[:-1]

    def close(self) -> dict[str, Any]:
        self.op(op="close")
        result = self.until(lambda f: f["k"] == "result")[-1]
        assert self.proc.wait(timeout=10) == 0
        return result

    def stop(self) -> None:
        """Kill it if it still runs; reap it; close its pipes."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def out(frames: list[dict[str, Any]], stream: str = "stdout") -> str:
    return "".join(f["d"] for f in frames if f["k"] == "out" and f["s"] == stream)


@pytest.fixture
def runner(sandbox_tmp: Path) -> Iterator[Runner]:
    r = Runner(sandbox_tmp)
    yield r
    r.stop()


def test_state_persists_and_the_last_expression_is_the_result(runner: Runner) -> None:
    assert runner.started[-1] == {"k": "kernel", "event": "started", "generation": 1}
    done, frames = runner.cell("x = 41\nprint('hi')\nx + 1")
    assert (done["status"], done["state"], done["generation"]) == ("succeeded", "preserved", 1)
    assert done["result"]["data"] == {"text/plain": "42"}
    assert out(frames) == "hi\n"
    done, _ = runner.cell("x")
    assert done["result"]["data"] == {"text/plain": "41"}
    done, _ = runner.cell("y = x")  # an assignment shows nothing
    assert done["result"] is None
    done, _ = runner.cell("x + 1;")  # nor a value with a trailing semicolon, as in Jupyter
    assert done["result"] is None


def test_an_exception_is_an_error_with_the_cells_lines_and_state_kept(runner: Runner) -> None:
    runner.cell("x = 1")
    done, _ = runner.cell("def f():\n    return 1 / 0\n\nf()")
    assert (done["status"], done["state"]) == ("error", "preserved")
    error = done["error"]
    assert (error["ename"], error["evalue"]) == ("ZeroDivisionError", "division by zero")
    text = "".join(error["traceback"])
    assert "return 1 / 0" in text and 'File "<cell 2>"' in text
    assert "kernel.py" not in text  # the kernel's own frames are not shown
    assert runner.cell("x")[0]["result"]["data"] == {"text/plain": "1"}


def test_a_syntax_error_and_system_exit_keep_the_kernel(runner: Runner) -> None:
    done, _ = runner.cell("def (")
    assert done["error"]["ename"] == "SyntaxError"
    done, _ = runner.cell("import sys; sys.exit(3)")
    assert (done["status"], done["error"]["ename"], done["generation"]) == (
        "error",
        "SystemExit",
        1,
    )


@pytest.mark.parametrize(("code", "what"), [("%pip install six", "%magics"), ("!ls", "!shell")])
def test_magics_and_shell_lines_are_refused_naming_the_packages_call(
    runner: Runner, code: str, what: str
) -> None:
    done, _ = runner.cell(code)
    assert done["error"]["ename"] == "UnsupportedMagic"
    assert what in done["error"]["evalue"]
    assert "/v1/sessions/{id}/packages" in done["error"]["evalue"]


def test_a_timeout_that_stops_on_interrupt_keeps_the_state(runner: Runner) -> None:
    runner.cell("x = 7")
    started = time.monotonic()
    done, _ = runner.cell("import time\ntime.sleep(30)", timeout_s=0.3)
    assert time.monotonic() - started < 5
    assert (done["status"], done["state"], done["generation"]) == ("timed_out", "preserved", 1)
    assert done["error"]["ename"] == "KeyboardInterrupt"
    assert runner.cell("x")[0]["result"]["data"] == {"text/plain": "7"}


def test_a_timeout_the_code_ignores_loses_the_state_and_starts_a_new_kernel(
    runner: Runner,
) -> None:
    runner.cell("x = 7")
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(30)"
    done, frames = runner.cell(code, timeout_s=0.3)
    assert (done["status"], done["state"], done["generation"]) == ("timed_out", "lost", 2)
    assert {"k": "kernel", "event": "started", "generation": 2} in frames
    assert done["error"]["ename"] == "KernelLost"
    assert runner.cell("x")[0]["error"]["ename"] == "NameError"


def test_an_explicit_interrupt(runner: Runner) -> None:
    runner.count += 1
    runner.op(
        op="cell",
        code="import time\nfor i in range(300): time.sleep(0.1)",
        count=runner.count,
        timeout_s=60,
    )
    time.sleep(0.5)
    runner.op(op="interrupt")
    frames = runner.until(lambda f: f["k"] == "cell")
    assert frames[-1]["status"] == "interrupted"
    assert frames[-1]["state"] == "preserved"
    assert any(f["k"] == "ack" and f["op"] == "interrupt" and f["running"] for f in frames)


@pytest.mark.parametrize("interrupt", ["timeout", "explicit"])
def test_an_interrupts_traceback_shows_only_the_users_frames(
    runner: Runner, interrupt: str
) -> None:
    code = "import time\ndef wait():\n    time.sleep(30)\nwait()"
    if interrupt == "timeout":
        done, _ = runner.cell(code, timeout_s=0.3)
    else:
        runner.count += 1
        runner.op(op="cell", code=code, count=runner.count, timeout_s=60)
        time.sleep(0.5)
        runner.op(op="interrupt")
        done = runner.until(lambda f: f["k"] == "cell")[-1]
    lines = done["error"]["traceback"]
    assert lines[0] == "Traceback (most recent call last):\n"
    assert [line.split(",")[0] for line in lines[1:-1]] == [
        '  File "<cell 1>"',
        '  File "<cell 1>"',
    ]
    assert lines[-1] == "KeyboardInterrupt\n"
    assert "ai_data_agent" not in "".join(lines)


def test_an_error_raised_while_handling_an_interrupt_shows_only_the_users_frames(
    runner: Runner,
) -> None:
    code = "import time\ntry:\n    time.sleep(30)\nexcept KeyboardInterrupt:\n    raise ValueError('stop')"
    done, _ = runner.cell(code, timeout_s=0.3)
    text = "".join(done["error"]["traceback"])
    assert (done["status"], done["error"]["ename"]) == ("error", "ValueError")
    assert "KeyboardInterrupt" in text and "ai_data_agent" not in text


@pytest.mark.parametrize("code", ["import os; os._exit(3)", "import ctypes; ctypes.string_at(0)"])
def test_a_dying_kernel_loses_the_state_and_the_session_goes_on(runner: Runner, code: str) -> None:
    runner.cell("x = 1")
    done, _ = runner.cell(code)
    assert (done["status"], done["state"], done["generation"]) == ("kernel_died", "lost", 2)
    assert runner.cell("1 + 1")[0]["result"]["data"] == {"text/plain": "2"}


def test_rich_outputs_and_top_level_await(runner: Runner) -> None:
    code = (
        "class A:\n"
        "    def _repr_html_(self): return '<b>A</b>'\n"
        "    def __repr__(self): return 'A()'\n"
        "display(A(), 3)\n"
        "import asyncio\n"
        "await asyncio.sleep(0.01)\n"
        "A()\n"
    )
    done, frames = runner.cell(code)
    displays = [f for f in frames if f["k"] == "display"]
    assert [d["data"] for d in displays] == [
        {"text/html": "<b>A</b>", "text/plain": "A()"},
        {"text/plain": "3"},
    ]
    assert done["result"]["data"] == {"text/html": "<b>A</b>", "text/plain": "A()"}


def test_display_caps_per_output_and_per_cell(runner: Runner) -> None:
    done, frames = runner.cell("display('x' * 150_000)\nfor i in range(5): display('y' * 60_000)")
    displays = [f for f in frames if f["k"] == "display"]
    assert displays[0]["truncated"] is True  # cut to the per-output cap
    assert sum(len(str(d["data"])) for d in displays) <= 200_000
    assert done["truncated"] is True  # the per-cell cap dropped some


def test_output_is_capped_per_cell(runner: Runner) -> None:
    done, frames = runner.cell("print('z' * 10_000)")
    assert len(out(frames)) == 4096
    assert done["stdout_truncated"] is True
    done, frames = runner.cell("print('fresh')")
    assert out(frames) == "fresh\n" and done["stdout_truncated"] is False


def test_files_written_under_outputs_come_back_with_their_cell(runner: Runner) -> None:
    def returned(code: str) -> list[tuple[str, int]]:
        _, frames = runner.cell(code)
        return [(f["path"], f["size"]) for f in frames if f["k"] == "artifact_begin"]

    assert returned("open('outputs/a.txt', 'w').write('one')") == [("a.txt", 3)]
    assert returned("open('outputs/b.txt', 'w').write('two')") == [("b.txt", 3)]  # new only
    assert returned("open('outputs/a.txt', 'w').write('three')") == [("a.txt", 5)]  # rewritten
    assert returned("x = 1") == []


def test_upload_list_download(runner: Runner) -> None:
    runner.send_raw(encode_message({"op": "put", "path": "data/in.csv", "size": 8}) + b"a,b\n1,2\n")
    ack = runner.until(lambda f: f["k"] == "ack")[-1]
    assert ack == {"k": "ack", "op": "put", "ok": True, "path": "data/in.csv", "size": 8}
    assert (
        runner.cell("open('data/in.csv').read()")[0]["result"]["data"]["text/plain"]
        == "'a,b\\n1,2\\n'"
    )
    runner.op(op="ls")
    ack = runner.until(lambda f: f["k"] == "ack")[-1]
    assert [(f["path"], f["size"]) for f in ack["files"]] == [("data/in.csv", 8)]
    runner.op(op="get", path="data/in.csv", max_bytes=100)
    frames = runner.until(lambda f: f["k"] == "ack")
    data = base64.b64decode("".join(f["d"] for f in frames if f["k"] == "artifact_data"))
    end = next(f for f in frames if f["k"] == "artifact_end")
    assert data == b"a,b\n1,2\n" and end["sha256"] == hashlib.sha256(data).hexdigest()
    runner.op(op="get", path="missing.csv", max_bytes=100)
    assert runner.until(lambda f: f["k"] == "ack")[-1]["error"] == "no such file"


def test_an_upload_never_writes_through_a_link_the_code_made(
    runner: Runner, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    runner.cell(f"import os; os.symlink({str(outside)!r}, 'linked')")
    runner.send_raw(encode_message({"op": "put", "path": "linked/x.txt", "size": 2}) + b"hi")
    ack = runner.until(lambda f: f["k"] == "ack")[-1]
    assert ack["ok"] is False and "not a directory" in ack["error"]
    assert list(outside.iterdir()) == []
    # The stream stays in step: the next operation works.
    assert runner.cell("1")[0]["status"] == "succeeded"


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("outputs", "outputs is a directory"),
        ("x" * 300, "x" * 300 + ": file name too long"),
    ],
    ids=["onto-a-directory", "name-too-long"],
)
def test_a_failed_upload_names_the_users_path_and_the_reason(
    runner: Runner, path: str, error: str
) -> None:
    runner.send_raw(encode_message({"op": "put", "path": path, "size": 2}) + b"hi")
    ack = runner.until(lambda f: f["k"] == "ack")[-1]
    assert (ack["ok"], ack["error"]) == (False, error)
    runner.op(op="get", path=path, max_bytes=100)
    ack = runner.until(lambda f: f["k"] == "ack")[-1]
    assert ack["ok"] is False and "ai_data_agent_" not in ack["error"], ack
    runner.op(op="ls")
    assert [f["path"] for f in runner.until(lambda f: f["k"] == "ack")[-1]["files"]] == []


def test_operations_while_a_cell_runs_are_refused(runner: Runner) -> None:
    runner.count += 1
    runner.op(op="cell", code="import time; time.sleep(1)", count=runner.count, timeout_s=10)
    runner.op(op="ls")
    frames = runner.until(lambda f: f["k"] == "cell")
    refusal = next(f for f in frames if f["k"] == "ack")
    assert (refusal["op"], refusal["ok"], refusal["error"]) == ("ls", False, "a cell is running")


def test_restart_gives_a_new_generation(runner: Runner) -> None:
    runner.cell("x = 1")
    runner.op(op="restart")
    ack = runner.until(lambda f: f["k"] == "ack")[-1]
    assert ack["generation"] == 2
    done, _ = runner.cell("x")
    assert (done["error"]["ename"], done["generation"]) == ("NameError", 2)


def test_the_kernel_is_a_separate_interpreter_that_holds_no_token(runner: Runner) -> None:
    done, _ = runner.cell(
        "import os\n"
        "open('/proc/self/cmdline','rb').read().split(b'\\0')[:2], os.getppid() != os.getpid()"
    )
    text = done["result"]["data"]["text/plain"]
    assert "-c" in text
    environ = runner.cell("import os; sorted(k for k in os.environ if 'AI_DATA_AGENT' in k)")[0]
    assert environ["result"]["data"]["text/plain"] == "['AI_DATA_AGENT_OUTPUTS']"
    # An exec'd interpreter: the token could only have come in its arguments or environment.
    digest = hashlib.sha256(runner.token.encode()).hexdigest()
    leak = runner.cell(
        "import hashlib, re\n"
        "data = open('/proc/self/environ','rb').read() + open('/proc/self/cmdline','rb').read()\n"
        f"{digest!r} in [hashlib.sha256(t).hexdigest() for t in re.findall(rb'[0-9a-f]{{32}}', data)]"
    )
    assert leak[0]["result"]["data"]["text/plain"] == "False"


def test_close_ends_the_runner_and_removes_the_sandbox_dir(runner: Runner) -> None:
    runner.cell("x = 1")
    result = runner.close()
    assert result["sandbox_removed"] is True
    assert result["generation"] == 1
