"""The whole runner, end to end on the host: the container's command line as a subprocess.

The controller's side is played here by hand: the bundle of sandbox modules
and the job go in as `delivery` and `encode_message` frame them, stdout is
split with `FrameReader`, and ``go`` is answered to the ``ready`` phase. The host has network interfaces the runner
would refuse, so these jobs ask for network (except the test of that refusal).
"""

from __future__ import annotations

import os
import platform
import selectors
import subprocess
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fakes import ScriptedBackend

from ai_data_agent.executor.core import Executor
from ai_data_agent.executor.delivery import bundle
from ai_data_agent.executor.protocol import FrameReader, encode_message, new_token
from ai_data_agent.executor.spec import sandbox_command
from ai_data_agent.models import RunRequest
from ai_data_agent.settings import Settings
from tests.support.measure import measured

RUN_DEADLINE_S = 30.0


@dataclass
class Transcript:
    frames: list[dict[str, Any]] = field(default_factory=list)
    stderr: bytes = b""
    raw_stdout: bytes = b""
    returncode: int | None = None
    noise_lines: int = 0
    held_s: float | None = None  # from its result frame to its exit

    @property
    def result(self) -> dict[str, Any]:
        results = [f for f in self.frames if f["k"] == "result"]
        assert len(results) == 1, f"expected one result frame, got {self.frames!r}"
        return results[0]

    def phases(self) -> list[str]:
        return [f["phase"] for f in self.frames if f["k"] == "phase"]

    def output(self, stream: str) -> str:
        return "".join(f["d"] for f in self.frames if f["k"] == "out" and f["s"] == stream)


def make_job(code: str, **overrides: Any) -> dict[str, Any]:
    """The job the executor sends for ``code`` (network on for the host), with overrides.

    Captured from a real `Executor.run` against a scripted backend, so these
    tests follow the executor's job format wherever it goes.
    """
    backend = ScriptedBackend([], end_stream=True)
    Executor(Settings(allow_network=True), backend=backend).run(RunRequest(code=code, network=True))
    (job,) = backend.started[0].jobs
    assert job["hold_s"] > 0  # a run's runner waits for its controller to read the CPU...
    del job["hold_s"]  # ...which no one does here: it exits at its result
    job.update(overrides)
    return job


def drive(
    job: dict[str, Any],
    tmpdir: Path,
    *,
    go_line: bytes = b"go\n",
    inputs: bytes = b"",
    close_after_result_s: float | None = None,
) -> Transcript:
    """Run the runner with ``job``; answer ``ready`` with ``go_line`` and close its stdin
    (with ``close_after_result_s``, that long after its result instead); collect everything."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TMPDIR": str(tmpdir),
    }
    transcript = Transcript()
    reader = FrameReader(job["token"])
    deadline = time.monotonic() + RUN_DEADLINE_S
    closer: threading.Timer | None = None
    result_at: float | None = None
    argv, env = measured([sys.executable, *sandbox_command()[1:]], env)
    with subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmpdir,
        start_new_session=True,
    ) as proc:
        assert proc.stdin and proc.stdout and proc.stderr
        proc.stdin.write(bundle() + encode_message(job) + inputs)
        proc.stdin.flush()
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
            sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
            while sel.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    proc.kill()
                    pytest.fail(f"runner still going after {RUN_DEADLINE_S}s: {transcript!r}")
                for key, _ in sel.select(timeout=remaining):
                    data = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
                    if not data:
                        sel.unregister(key.fileobj)
                    elif key.data == "stderr":
                        transcript.stderr += data
                    else:
                        transcript.raw_stdout += data
                        for frame in reader.feed(data):
                            transcript.frames.append(frame)
                            if frame == {"k": "phase", "phase": "ready"}:
                                proc.stdin.write(go_line)
                                proc.stdin.flush()
                                if close_after_result_s is None:
                                    proc.stdin.close()
                            elif frame.get("k") == "result":
                                result_at = time.monotonic()
                                if close_after_result_s is not None:
                                    closer = threading.Timer(close_after_result_s, proc.stdin.close)
                                    closer.start()
        transcript.returncode = proc.wait(timeout=max(deadline - time.monotonic(), 1))
        if result_at is not None:
            transcript.held_s = time.monotonic() - result_at
        if closer is not None:
            closer.cancel()
    transcript.noise_lines = reader.noise_lines
    return transcript


def test_successful_code(sandbox_tmp: Path) -> None:
    t = drive(make_job("print('hello')\nprint(6 * 7)"), sandbox_tmp)
    assert t.returncode == 0
    assert t.phases() == ["ready", "running", "collecting"]
    assert t.output("stdout") == "hello\n42\n"
    assert t.output("stderr") == ""
    execute = t.result["execute"]
    assert execute["exit_code"] == 0
    assert execute["timed_out"] is False
    assert execute["stdout_truncated"] is False
    assert t.result["install"]["ok"] is True
    assert t.result["mismatch"] == []
    assert "error" not in t.result
    assert t.noise_lines == 0


def test_result_describes_the_environment(sandbox_tmp: Path) -> None:
    code = (
        "import os, sys\n"
        "print(os.environ['HOME'])\n"
        "print(os.environ['PYTHONPATH'])\n"
        "print(os.getcwd())\n"
        "print(os.environ.get('GREETING'))\n"
    )
    t = drive(make_job(code, exec_env={"GREETING": "hi"}), sandbox_tmp)
    env = t.result["environment"]
    sandbox = env["sandbox_dir"]
    assert Path(sandbox).parent == sandbox_tmp
    assert Path(sandbox).name.startswith("ai_data_agent_")
    assert env["home"] == sandbox
    assert env["pythonpath"].split(os.pathsep)[0] == sandbox
    assert env["path_separator"] == os.pathsep
    assert env["uid"] == os.getuid()
    workdir = os.path.join(sandbox, "work")
    assert t.output("stdout").splitlines() == [sandbox, env["pythonpath"], workdir, "hi"]


def test_sandbox_dir_is_removed(sandbox_tmp: Path) -> None:
    t = drive(make_job("open('data.csv', 'w').write('a,b\\n1,2\\n')"), sandbox_tmp)
    assert t.result["sandbox_removed"] is True
    assert not Path(t.result["environment"]["sandbox_dir"]).exists()
    assert list(sandbox_tmp.iterdir()) == []


def test_a_held_runner_stays_after_its_result_until_its_stdin_closes(sandbox_tmp: Path) -> None:
    t = drive(make_job("print(1)", hold_s=30.0), sandbox_tmp, close_after_result_s=1.5)
    assert t.returncode == 0 and t.result["execute"]["exit_code"] == 0
    assert t.held_s is not None and 1.4 <= t.held_s < 20.0  # long before the hold's end


def test_a_held_runner_exits_at_the_end_of_its_hold(sandbox_tmp: Path) -> None:
    t = drive(make_job("print(1)", hold_s=1.5), sandbox_tmp, close_after_result_s=30.0)
    assert t.returncode == 0 and t.result["execute"]["exit_code"] == 0
    assert t.held_s is not None and 1.4 <= t.held_s < 20.0


def test_failing_code_gives_exit_code_and_traceback(sandbox_tmp: Path) -> None:
    t = drive(make_job("print('before')\nraise ValueError('boom')"), sandbox_tmp)
    assert t.returncode == 0  # the runner itself is fine
    assert t.result["execute"]["exit_code"] == 1
    assert t.output("stdout") == "before\n"
    stderr = t.output("stderr")
    assert "Traceback (most recent call last)" in stderr
    assert "ValueError: boom" in stderr
    assert t.result["sandbox_removed"] is True


def test_exit_code_is_passed_through(sandbox_tmp: Path) -> None:
    t = drive(make_job("import sys; sys.exit(3)"), sandbox_tmp)
    assert t.result["execute"]["exit_code"] == 3
    assert t.result["execute"]["signal"] is None


def test_timeout_kills_a_busy_loop(sandbox_tmp: Path) -> None:
    started = time.monotonic()
    t = drive(
        make_job("print('spinning', flush=True)\nwhile True: pass", timeout_s=0.5), sandbox_tmp
    )
    elapsed = time.monotonic() - started
    execute = t.result["execute"]
    assert execute["timed_out"] is True
    assert execute["exit_code"] is None
    assert execute["signal"] == 9
    assert t.output("stdout") == "spinning\n"
    assert elapsed < 10
    assert t.result["sandbox_removed"] is True


def test_timeout_also_kills_the_codes_children(sandbox_tmp: Path) -> None:
    code = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "child.wait()\n"
    )
    t = drive(make_job(code, timeout_s=1.0), sandbox_tmp)
    assert t.result["execute"]["timed_out"] is True
    child_pid = int(t.output("stdout"))
    deadline = time.monotonic() + 5
    while Path(f"/proc/{child_pid}").exists() and _state(child_pid) != "Z":
        assert time.monotonic() < deadline, f"child {child_pid} survived the timeout"
        time.sleep(0.01)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_stdout_cap_truncates_and_keeps_running(sandbox_tmp: Path) -> None:
    code = "import sys\nprint('x' * 5000)\nsys.stderr.write('done')\n"
    t = drive(make_job(code, stdout_limit=100, stderr_limit=100), sandbox_tmp)
    execute = t.result["execute"]
    assert t.output("stdout") == "x" * 100
    assert execute["stdout_truncated"] is True
    assert execute["stderr_truncated"] is False
    assert execute["output_exceeded"] is False
    assert execute["exit_code"] == 0
    assert t.output("stderr") == "done"


def test_output_policy_kill_stops_a_flood(sandbox_tmp: Path) -> None:
    code = "while True:\n    print('y' * 1000)\n"
    t = drive(make_job(code, stdout_limit=2048, output_policy="kill", timeout_s=20), sandbox_tmp)
    execute = t.result["execute"]
    assert execute["output_exceeded"] is True
    assert execute["stdout_truncated"] is True
    assert execute["timed_out"] is False
    assert len(t.output("stdout")) == 2048


def test_output_frames_carry_non_ascii_text(sandbox_tmp: Path) -> None:
    code = "import sys\nsys.stdout.buffer.write('caf\\u00e9 \\u20ac\\n'.encode() + b'\\xff\\n')\n"
    t = drive(make_job(code), sandbox_tmp)
    assert t.output("stdout") == "caf\u00e9 \u20ac\n\ufffd\n"


def test_an_error_names_paths_as_the_code_knows_them(sandbox_tmp: Path) -> None:
    # Input paths the controller would refuse (a file under a file): the runner's
    # error names them under the working directory, not under the sandbox dir.
    job = make_job("print('ran')", files=[{"path": "a", "size": 1}, {"path": "a/b", "size": 1}])
    t = drive(job, sandbox_tmp, inputs=b"12")
    assert t.result["error"] == "FileExistsError: [Errno 17] File exists: 'a'"
    assert t.result["sandbox_removed"] is True and "ran" not in t.output("stdout")


def test_no_go_means_no_run(sandbox_tmp: Path) -> None:
    t = drive(make_job("open('/dev/null', 'w').write('ran')"), sandbox_tmp, go_line=b"nope\n")
    assert t.result["error"] == "controller did not release the run"
    assert "execute" not in t.result
    assert t.phases() == ["ready"]
    assert t.result["sandbox_removed"] is True


def test_refuses_to_run_with_interfaces_and_no_network(sandbox_tmp: Path) -> None:
    interfaces = [i for i in os.listdir("/sys/class/net") if i != "lo"]
    if not interfaces:
        pytest.skip("this host has no network interface but lo")
    t = drive(make_job("print('ran')", network=False), sandbox_tmp)
    assert f"{sorted(interfaces)} still attached" in t.result["error"]
    assert "execute" not in t.result
    assert t.output("stdout") == ""


def test_every_stdout_line_is_a_frame_with_the_jobs_token(sandbox_tmp: Path) -> None:
    job = make_job("print('hi')\nprint('not a frame')")
    t = drive(job, sandbox_tmp)
    lines = t.raw_stdout.splitlines()
    assert lines, "no output at all"
    assert all(line.startswith(job["token"].encode() + b" {") for line in lines)
    assert t.noise_lines == 0
    assert len(t.frames) == len(lines)
    # A reader holding another token accepts none of them.
    other = FrameReader(new_token())
    assert other.feed(t.raw_stdout) == []
    assert other.noise_lines == len(lines)


@pytest.mark.parametrize(
    ("before_job", "message"),
    [
        (b"12\n{}", b"EOFError: bundle truncated"),  # shorter than announced
        (b"", b"ValueError"),  # no bundle at all
        (None, b"EOFError: message truncated"),  # the bundle, then half a job
    ],
)
def test_runner_crash_before_the_job_shows_on_stderr(
    sandbox_tmp: Path, before_job: bytes | None, message: bytes
) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "TMPDIR": str(sandbox_tmp)}
    data = bundle() + b"12\n{}" if before_job is None else before_job
    proc = subprocess.run(
        [sys.executable, *sandbox_command()[1:]],
        input=data,
        capture_output=True,
        env=env,
        timeout=RUN_DEADLINE_S,
        check=False,
    )
    assert proc.returncode != 0
    assert message in proc.stderr
    assert proc.stdout == b""


def test_probe_names_the_python_the_cache_keys_on(sandbox_tmp: Path) -> None:
    result = drive({"mode": "probe", "token": new_token()}, sandbox_tmp).result
    assert result["python"] == platform.python_version()
    assert result["tag"] == sys.implementation.cache_tag
    assert result["platform"] == sysconfig.get_platform()


def test_publish_then_adopt_then_prune(sandbox_tmp: Path, tmp_path: Path) -> None:
    stage, envs = tmp_path / "stage", tmp_path / "envs"
    (stage / "pkg").mkdir(parents=True)
    (stage / "pkg" / "__init__.py").write_text("X = 1\n")
    envs.mkdir()
    manifest = {"requirements": ["pkg"], "installer": "pip"}

    def job(mode: str, **fields: Any) -> dict[str, Any]:
        return {"mode": mode, "token": new_token(), **fields}

    spec = {"src": str(stage), "envs": str(envs), "key": "k1", "manifest": manifest}
    published = drive(job("publish", publish=spec), sandbox_tmp).result
    assert published["published"] is True and published["size"] > 0

    # An install whose set is already published answers with its manifest, at once.
    lookup = make_job("print(1)", mode="install", lookup={"envs": str(envs), "key": "k1"})
    adopted = drive(lookup, sandbox_tmp)
    assert adopted.result["manifest"]["installer"] == "pip"
    assert "install" not in adopted.result and "ready" not in adopted.phases()

    pruned = drive(job("prune", prune={"envs": str(envs), "keys": ["k1"]}), sandbox_tmp).result
    assert pruned["removed"] == ["k1"] and list(envs.iterdir()) == []

    refused = drive(job("publish", publish=dict(spec, key="../k")), sandbox_tmp).result
    assert refused["error"].startswith("ValueError: bad key")
    missing = drive(job("prune", prune={}), sandbox_tmp).result
    assert missing["error"].startswith("KeyError")


# -- the last expression's value (sandbox.lastvalue) ----------------------------------------------
def test_the_last_expressions_value_comes_back_as_a_mime_bundle(sandbox_tmp: Path) -> None:
    code = "class T:\n    def _repr_html_(self):\n        return '<b>6</b>'\nx = 6\nprint(x)\nT()"
    t = drive(make_job(code), sandbox_tmp)
    assert t.output("stdout") == "6\n"  # the value is not printed: python main.py prints none
    value = t.result["execute"]["value"]
    assert value["data"]["text/html"] == "<b>6</b>"
    assert value["data"]["text/plain"].startswith("<__main__.T object at")
    assert value["truncated"] is False


@pytest.mark.parametrize("code", ["x = 42", "print(42)", "None", "42;", "def f():\n    return 42"])
def test_no_value_without_a_last_expression_or_with_none_or_a_semicolon(
    sandbox_tmp: Path, code: str
) -> None:
    t = drive(make_job(code), sandbox_tmp)
    assert t.result["execute"]["exit_code"] == 0
    assert "value" not in t.result["execute"]


def test_the_code_runs_as_python_main_py_would_run_it(sandbox_tmp: Path) -> None:
    code = (
        "import os, pickle, sys\n"
        "class Point:\n    pass\n"
        "pickle.loads(pickle.dumps(Point()))\n"  # classes of __main__ pickle
        "print(__name__, sys.argv, __file__ == os.path.abspath('main.py'))\n"
        "print(sys.path[0] == os.getcwd(), sorted(k for k in globals() if not k.startswith('__')))\n"
        "if __name__ == '__main__':\n    print('main')\n"
    )
    t = drive(make_job(code), sandbox_tmp)
    assert (
        t.output("stdout")
        == "__main__ ['main.py'] True\nTrue ['Point', 'os', 'pickle', 'sys']\nmain\n"
    )


def test_a_traceback_shows_only_the_codes_frames(sandbox_tmp: Path) -> None:
    t = drive(make_job("def f():\n    raise ValueError('boom')\nf()"), sandbox_tmp)
    assert t.result["execute"]["exit_code"] == 1
    stderr = t.output("stderr")
    assert stderr.startswith("Traceback (most recent call last):\n")
    frames = [line for line in stderr.splitlines() if line.startswith("  File ")]
    assert len(frames) == 2 and all("main.py" in line for line in frames), stderr
    assert stderr.endswith("ValueError: boom\n")


def test_a_syntax_error_reads_as_pythons(sandbox_tmp: Path) -> None:
    t = drive(make_job("x = (\n"), sandbox_tmp)
    assert t.result["execute"]["exit_code"] == 1
    stderr = t.output("stderr")
    assert "Traceback" not in stderr and 'main.py", line 1' in stderr, stderr
    assert "SyntaxError: '(' was never closed" in stderr


def test_a_forged_value_file_is_read_only_when_it_is_a_regular_json_bundle(
    sandbox_tmp: Path,
) -> None:
    code = "import os\nos.symlink('/etc/passwd', os.path.join(os.environ['HOME'], 'value.json'))"
    t = drive(make_job(code), sandbox_tmp)
    assert t.result["execute"]["exit_code"] == 0
    assert "value" not in t.result["execute"]
