"""`Executor.run` end to end without Docker: the real runner behind `FakeBackend`.

The host has network interfaces a container would not have, and the runner
refuses to run code next to interfaces it was not promised; so these runs ask
for network (``Settings(allow_network=True)``, ``RunRequest(network=True)``),
or let the fake emulate the isolation a container would have.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fakes import FAKE_IMAGE, FakeBackend, SandboxUser

from ai_data_agent.errors import ExecutorError, RequestRejected
from ai_data_agent.executor.core import Executor, RunEvent
from ai_data_agent.models import PackageInfo, RunRequest, RunResult, RunStatus
from ai_data_agent.settings import Settings
from tests.support.logs import LogLine

LOOP_FOREVER = "print('started', flush=True)\nwhile True:\n    pass\n"


def net_settings(**overrides: Any) -> Settings:
    # The per-run pip install: the fake runs no environment cache (no volumes).
    return Settings(allow_network=True, **{"install_mode": "per_run", **overrides})


def net_request(code: str, **overrides: Any) -> RunRequest:
    return RunRequest(code=code, network=True, **overrides)


def run(
    backend: FakeBackend, request: RunRequest, settings: Settings | None = None, **kwargs: Any
) -> RunResult:
    # Closed before the checks: a run's container is removed after its answer.
    with Executor(settings or net_settings(), backend=backend) as executor:
        return executor.run(request, **kwargs)


def assert_cleaned_up(backend: FakeBackend) -> None:
    """One container, removed once at the very end; its runner process gone."""
    assert len(backend.started) == 1
    session = backend.started[0]
    assert session.calls.count("remove") == 1
    assert session.calls[-1] == "remove"
    assert session.proc.returncode is not None


def test_succeeded(sandbox_tmp: Path) -> None:
    backend = FakeBackend(sandbox_tmp)
    result = run(backend, net_request("print('hello')\nprint(6 * 7)"), run_id="run-1")
    assert result.status is RunStatus.SUCCEEDED
    assert result.id == "run-1"
    assert result.exit_code == 0
    assert result.stdout == "hello\n42\n"
    assert result.stderr == ""
    assert result.error is None
    assert result.image == FAKE_IMAGE
    assert result.stdout_truncated is False
    assert result.timings.total_s >= result.timings.execute_s > 0
    assert_cleaned_up(backend)


def test_the_runner_reports_its_environment_and_removes_its_sandbox(sandbox_tmp: Path) -> None:
    backend = FakeBackend(sandbox_tmp)
    result = run(backend, net_request("import os; print(os.environ['HOME'])"))
    env = result.environment
    assert Path(env.sandbox_dir).parent == sandbox_tmp
    assert Path(env.sandbox_dir).name.startswith("ai_data_agent_")
    assert result.stdout == env.sandbox_dir + "\n"
    assert env.home == env.sandbox_dir
    assert env.pythonpath.split(os.pathsep)[0] == env.sandbox_dir
    assert env.path_separator == os.pathsep
    assert env.sandbox_removed is True
    assert env.mismatches == []
    assert list(sandbox_tmp.iterdir()) == []


def test_events_report_phases_and_output_in_order(sandbox_tmp: Path) -> None:
    events: list[RunEvent] = []
    result = run(
        FakeBackend(sandbox_tmp), net_request("print('a')"), run_id="r", on_event=events.append
    )
    assert result.status is RunStatus.SUCCEEDED
    assert {e.run_id for e in events} == {"r"}
    phases = [i for i, e in enumerate(events) if e.kind == "phase"]
    assert [events[i].data for i in phases] == ["ready", "running", "collecting"]
    output = [i for i, e in enumerate(events) if e.kind == "stdout"]
    # Output arrives in chunks of any size, but all of it while the code runs.
    assert "".join(events[i].data for i in output) == "a\n"
    assert all(phases[1] < i < phases[2] for i in output)
    assert len(events) == len(phases) + len(output)


def test_spec_carries_the_run(sandbox_tmp: Path) -> None:
    backend = FakeBackend(sandbox_tmp)
    executor = Executor(net_settings(), backend=backend)
    run_ = executor.run(net_request("pass"), run_id="abc")
    assert run_.status is RunStatus.SUCCEEDED
    (spec,) = backend.specs
    assert spec.labels["ai-data-agent.run-id"] == "abc"
    assert spec.labels["ai-data-agent.controller"] == executor.controller_id
    assert spec.image == FAKE_IMAGE


def test_failed(sandbox_tmp: Path) -> None:
    backend = FakeBackend(sandbox_tmp)
    result = run(backend, net_request("print('before')\nraise ValueError('boom')"))
    assert result.status is RunStatus.FAILED
    assert result.exit_code == 1
    assert result.stdout == "before\n"
    assert "Traceback (most recent call last)" in result.stderr
    assert "ValueError: boom" in result.stderr
    assert result.error is None
    assert_cleaned_up(backend)


def test_timed_out(sandbox_tmp: Path) -> None:
    backend = FakeBackend(sandbox_tmp)
    started = time.monotonic()
    result = run(backend, net_request(LOOP_FOREVER, timeout_s=0.5))
    assert time.monotonic() - started < 10
    assert result.status is RunStatus.TIMED_OUT
    assert result.error == "the code ran past its timeout"
    assert result.exit_code == -9
    assert result.stdout == "started\n"
    assert result.environment.sandbox_removed is True
    assert_cleaned_up(backend)


def test_output_cap_truncates(sandbox_tmp: Path) -> None:
    settings = net_settings(stdout_limit_bytes=1024, stderr_limit_bytes=1024)
    code = "import sys\nprint('x' * 5000)\nsys.stderr.write('e' * 100)\n"
    result = run(FakeBackend(sandbox_tmp), net_request(code), settings)
    assert result.status is RunStatus.SUCCEEDED
    assert result.stdout == "x" * 1024
    assert result.stdout_truncated is True
    assert result.stderr == "e" * 100
    assert result.stderr_truncated is False


def test_output_cap_with_kill_policy(sandbox_tmp: Path) -> None:
    settings = net_settings(stdout_limit_bytes=1024, output_policy="kill")
    result = run(
        FakeBackend(sandbox_tmp), net_request("while True:\n    print('y' * 100)\n"), settings
    )
    assert result.status is RunStatus.OUTPUT_EXCEEDED
    assert result.stdout_truncated is True
    assert len(result.stdout) == 1024


def test_cancel_from_on_event(sandbox_tmp: Path) -> None:
    backend = FakeBackend(sandbox_tmp)
    cancel = threading.Event()

    def on_event(event: RunEvent) -> None:
        if event.kind == "stdout" and "started" in event.data:
            cancel.set()

    started = time.monotonic()
    result = run(backend, net_request(LOOP_FOREVER, timeout_s=60), on_event=on_event, cancel=cancel)
    assert time.monotonic() - started < 10
    assert result.status is RunStatus.CANCELLED
    assert result.error == "cancelled by request"
    session = backend.started[0]
    assert session.calls.count("kill") == 1
    assert_cleaned_up(backend)


def test_cancel_from_a_timer(sandbox_tmp: Path) -> None:
    backend = FakeBackend(sandbox_tmp)
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    try:
        result = run(backend, net_request(LOOP_FOREVER, timeout_s=60), cancel=cancel)
    finally:
        timer.cancel()
    assert result.status is RunStatus.CANCELLED
    assert "kill" in backend.started[0].calls
    assert_cleaned_up(backend)


def test_cancel_set_before_the_run(sandbox_tmp: Path) -> None:
    backend = FakeBackend(sandbox_tmp)
    cancel = threading.Event()
    cancel.set()
    result = run(backend, net_request("print('never')"), cancel=cancel)
    assert result.status is RunStatus.CANCELLED
    assert result.stdout == ""
    assert_cleaned_up(backend)


def test_remove_is_called_when_send_raises(sandbox_tmp: Path) -> None:
    backend = FakeBackend(sandbox_tmp, fail_send=True)
    with pytest.raises(ExecutorError, match="injected") as info:
        run(backend, net_request("print(1)"))
    assert info.value.step == "attach"
    assert backend.started[0].calls == ["send:bundle", "send:job", "remove"]
    assert_cleaned_up(backend)


def test_remove_is_called_when_on_event_raises(sandbox_tmp: Path) -> None:
    backend = FakeBackend(sandbox_tmp)

    def on_event(event: RunEvent) -> None:
        raise RuntimeError("handler broke")

    with pytest.raises(RuntimeError, match="handler broke"):
        run(backend, net_request("print(1)"), on_event=on_event)
    assert_cleaned_up(backend)


def test_rejected_request_starts_nothing(sandbox_tmp: Path) -> None:
    backend = FakeBackend(sandbox_tmp)
    with pytest.raises(RequestRejected) as info:
        run(backend, net_request("pass", timeout_s=10), net_settings(max_timeout_s=5))
    assert info.value.field == "timeout_s"
    assert backend.specs == []
    assert backend.started == []


def test_requirements_install_then_network_detached_exactly_once(
    sandbox_tmp: Path, wheelhouse: Path
) -> None:
    backend = FakeBackend(
        sandbox_tmp, emulate_isolation=True, extra_env={"PIP_FIND_LINKS": str(wheelhouse)}
    )
    request = RunRequest(
        code="import aida_probe\nprint(aida_probe.VALUE)", requirements=["aida-probe==1.0"]
    )
    events: list[RunEvent] = []
    result = run(backend, request, Settings(install_mode="per_run"), on_event=events.append)
    assert result.status is RunStatus.SUCCEEDED, result.error or result.install.log_tail
    assert result.stdout == "42\n"
    (spec,) = backend.specs
    assert spec.network == "bridge"
    assert spec.detach_network_before_code is True
    calls = backend.started[0].calls
    assert calls.count("detach") == 1
    assert calls.index("detach") < calls.index("send:go")
    assert [e.data for e in events if e.kind == "phase"][:3] == ["installing", "ready", "running"]
    assert result.install.requirements == ["aida-probe==1.0"]
    assert result.install.packages == [PackageInfo(name="aida-probe", version="1.0")]
    assert "Successfully installed aida-probe-1.0" in result.install.log_tail
    assert result.timings.install_s > 0
    assert result.environment.mismatches == []
    assert_cleaned_up(backend)


def test_no_network_and_no_requirements_means_no_network_at_all(sandbox_tmp: Path) -> None:
    backend = FakeBackend(sandbox_tmp, emulate_isolation=True)
    result = run(backend, RunRequest(code="print('offline')"), Settings())
    assert result.status is RunStatus.SUCCEEDED
    (spec,) = backend.specs
    assert spec.network is None
    assert spec.detach_network_before_code is False
    assert "detach" not in backend.started[0].calls


def test_install_failure(sandbox_tmp: Path) -> None:
    # No index and an empty find-links: pip cannot find the package.
    backend = FakeBackend(sandbox_tmp, extra_env={"PIP_FIND_LINKS": str(sandbox_tmp)})
    result = run(backend, net_request("print('never')", requirements=["aida-missing==1.0"]))
    assert result.status is RunStatus.INSTALL_FAILED
    assert result.error is not None
    # The cause in pip's own words, and what to do about it.
    assert result.error.startswith("no matching distribution: ")
    assert "No matching distribution found for aida-missing==1.0" in result.error
    assert result.error.endswith("(check the requirement's name and version)")
    assert result.install.installer == "pip"
    assert "aida-missing" in result.install.log_tail
    assert result.stdout == ""
    assert_cleaned_up(backend)


def test_runner_refuses_when_interfaces_remain(sandbox_tmp: Path) -> None:
    if not [i for i in os.listdir("/sys/class/net") if i != "lo"]:
        pytest.skip("this host has no network interface but lo")
    backend = FakeBackend(sandbox_tmp)  # no emulation: the host's interfaces show
    result = run(backend, RunRequest(code="print('ran')"), Settings())
    assert result.status is RunStatus.ERROR
    assert result.error is not None and "still attached" in result.error
    assert result.stdout == ""


def test_exec_env_reaches_the_code(sandbox_tmp: Path) -> None:
    request = net_request("import os; print(os.environ['GREETING'])", env={"GREETING": "hi"})
    result = run(FakeBackend(sandbox_tmp), request)
    assert result.stdout == "hi\n"


def test_controller_env_does_not_leak_into_the_sandbox(
    sandbox_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTROLLER_SECRET", "s3cret")
    monkeypatch.setenv("SHARED_NAME", "shared")
    code = "import os; print(os.environ.get('CONTROLLER_SECRET'), os.environ.get('SHARED_NAME'))"
    settings = net_settings(env_passthrough=["SHARED_NAME"])
    result = run(FakeBackend(sandbox_tmp), net_request(code), settings)
    assert result.stdout == "None shared\n"


def test_requirement_excluded_by_its_marker_does_not_fail_the_run(sandbox_tmp: Path) -> None:
    request = net_request("print('ok')", requirements=['aida-absent; python_version < "3"'])
    result = run(FakeBackend(sandbox_tmp), request)
    assert result.status is RunStatus.SUCCEEDED, (result.status, result.error)


def test_code_leaving_an_unreadable_dir_still_succeeds(
    unprivileged_tmp: Path, sandbox_user: SandboxUser
) -> None:
    backend = FakeBackend(unprivileged_tmp, run_as=sandbox_user)
    code = "import os\nos.makedirs('locked/inner')\nos.chmod('locked', 0)\nprint('done')\n"
    result = run(backend, net_request(code))
    assert backend.started[0].calls[-1] == "remove"
    assert result.stdout == "done\n"  # the code itself ran fine
    assert result.status is RunStatus.SUCCEEDED, (result.status, result.error)


def test_cleanup_failure_is_logged_not_raised(sandbox_tmp: Path, log_lines: list[LogLine]) -> None:
    class FailingRemove(FakeBackend):
        def start(self, spec: Any, run_id: str) -> Any:
            session = super().start(spec, run_id)
            real_remove = session.remove

            def remove() -> None:
                real_remove()
                raise ExecutorError("remove refused", run_id=run_id, step="remove")

            session.remove = remove  # type: ignore[method-assign]
            return session

    backend = FailingRemove(sandbox_tmp)
    result = run(backend, net_request("print(1)"))
    assert result.status is RunStatus.SUCCEEDED
    assert any(
        line.level == "WARNING"
        and "cleanup failed" in line.message
        and "remove refused" in line.message
        for line in log_lines
    )


def test_input_files_in_and_artifacts_out(sandbox_tmp: Path, tmp_path: Path) -> None:
    code = (
        "import os\n"
        "data = open('data/in.csv').read()\n"
        "os.makedirs('outputs/tables')\n"
        "open('outputs/tables/out.csv', 'w').write(data.upper())\n"
        "open('outputs/note.txt', 'w').write('n')\n"
        "os.symlink('/etc/passwd', 'outputs/leak')\n"
    )
    request = net_request(
        code, files=[{"path": "data/in.csv", "content_b64": base64.b64encode(b"a,b\n").decode()}]
    )
    out = tmp_path / "artifacts"
    backend = FakeBackend(sandbox_tmp)
    result = run(backend, request, artifacts_dir=out)

    assert result.status is RunStatus.SUCCEEDED, (result.error, result.stderr)
    assert [(a.path, a.size, a.media_type) for a in result.artifacts] == [
        ("note.txt", 1, "text/plain"),
        ("tables/out.csv", 4, "text/csv"),
    ]
    assert (out / "tables" / "out.csv").read_bytes() == b"A,B\n"
    assert [(s.path, s.reason) for s in result.artifacts_skipped] == [("leak", "symlink")]
    assert not result.artifacts_truncated
    assert_cleaned_up(backend)
