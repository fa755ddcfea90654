"""`SweepRule.doomed` and `delivery.launch`: which leftovers a sweep removes, and a start
that fails half-way leaves nothing behind.

Owners are judged from their labels alone (see `owner`): this process is a live
owner, a process that has exited is a dead one, and a label from another
machine cannot be judged (only its deadline counts).
"""

from __future__ import annotations

import io
import marshal
import subprocess
import sys

import pytest
from fakes import ScriptedBackend, ScriptedSandbox

from ai_data_agent.errors import ExecutorError
from ai_data_agent.executor.backend import SweepRule
from ai_data_agent.executor.delivery import SANDBOX_MODULES, bundle, launch
from ai_data_agent.executor.owner import owner_label
from ai_data_agent.executor.spec import (
    LABEL_CONTROLLER,
    LABEL_DEADLINE,
    LABEL_OWNER,
    LABEL_RUN_ID,
    build_spec,
)
from ai_data_agent.limits import default_limits
from ai_data_agent.sandbox.bootstrap import read_bundle, source_of
from ai_data_agent.settings import Settings

NOW = 1_000_000.0
LIVE = owner_label()
UNKNOWN = "another-boot:1:1:1"


@pytest.fixture(scope="module")
def dead() -> str:
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ai_data_agent.executor.owner import owner_label as o; print(o())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return child.stdout.strip()


def labels(
    owner: str, *, controller: str = "c1", deadline: float = NOW + 60, run: str = "r1"
) -> dict[str, str]:
    return {
        LABEL_OWNER: owner,
        LABEL_CONTROLLER: controller,
        LABEL_DEADLINE: str(deadline),
        LABEL_RUN_ID: run,
    }


def test_the_default_rule_removes_the_expired_and_the_provably_orphaned(dead: str) -> None:
    rule = SweepRule()
    assert not rule.doomed(labels(LIVE), NOW)
    assert not rule.doomed(labels(UNKNOWN), NOW)
    assert rule.doomed(labels(dead), NOW)
    assert rule.doomed(labels(UNKNOWN, deadline=NOW - 1), NOW)
    assert rule.doomed({**labels(UNKNOWN), LABEL_DEADLINE: "soon"}, NOW)  # unreadable: expired


def test_a_controllers_own_sandboxes_always_stay(dead: str) -> None:
    rule = SweepRule(keep_controller="c1", all_controllers=True, force=True)
    assert not rule.doomed(labels(dead, deadline=NOW - 1), NOW)
    assert rule.doomed(labels(LIVE, controller="c2"), NOW)


def test_all_controllers_spares_live_owners_unless_forced() -> None:
    assert SweepRule(all_controllers=True).doomed(labels(UNKNOWN), NOW)
    assert not SweepRule(all_controllers=True).doomed(labels(LIVE), NOW)
    assert SweepRule(all_controllers=True, force=True).doomed(labels(LIVE), NOW)


def test_named_runs_go_whoever_owns_them() -> None:
    rule = SweepRule(run_ids=("r1",))
    assert rule.doomed(labels(LIVE), NOW)
    assert not rule.doomed(labels(LIVE, run="r2"), NOW)


# -- delivery ---------------------------------------------------------------------------------
def spec() -> object:
    settings = Settings()
    return build_spec(
        settings,
        default_limits(settings),
        image="img",
        run_id="r",
        controller_id="c",
        needs_install=False,
    )


def test_the_bundle_carries_every_sandbox_module_and_the_main() -> None:
    header, _, body = bundle().partition(b"\n")
    assert int(header) == len(body)
    assert bundle("verify") != bundle()
    loaded = read_bundle(io.BytesIO(bundle()))
    assert loaded["main"] == "ai_data_agent.sandbox.runner"
    assert set(loaded["sources"]) == {f"ai_data_agent.sandbox.{m}" for m in SANDBOX_MODULES}


@pytest.mark.parametrize("remove_fails", [False, True])
def test_a_start_whose_bundle_cannot_be_sent_is_removed(remove_fails: bool) -> None:
    class FailingBundle(ScriptedSandbox):
        def send(self, data: bytes) -> None:
            self.calls.append("send:bundle")
            raise ExecutorError("attach broke", step="attach")

    class Backend(ScriptedBackend):
        def start(self, spec: object, run_id: str) -> ScriptedSandbox:  # type: ignore[override]
            session = FailingBundle(
                run_id,
                [],
                [],
                end_stream=True,
                fail_send=False,
                fail_remove=remove_fails,
                exit_code=0,
            )
            self.started.append(session)
            return session

    backend = Backend([])
    with pytest.raises(ExecutorError, match="attach broke"):
        launch(backend, spec(), "r")  # type: ignore[arg-type]
    assert backend.started[0].calls == ["send:bundle", "remove"]


LOAD_ONE = """
import marshal, sys
boot = {"__name__": "bootstrap"}
exec(sys.argv[1], boot)
boot["install"](marshal.loads(sys.stdin.buffer.read()))
from ai_data_agent.sandbox import lastvalue
print(lastvalue.RAN)
"""


@pytest.mark.parametrize(("magic", "ran"), [(None, "code"), (b"\0\0\r\n", "source")])
def test_the_bundles_code_runs_only_under_its_own_bytecode_version(
    magic: bytes | None, ran: str
) -> None:
    message = read_bundle(io.BytesIO(bundle()))
    name = "ai_data_agent.sandbox.lastvalue"
    message["code"][name] = marshal.dumps(compile("RAN = 'code'", name, "exec"))  # type: ignore[index]
    message["sources"][name] = "RAN = 'source'"  # type: ignore[index]
    if magic is not None:
        message["magic"] = magic
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", LOAD_ONE, source_of("bootstrap")],
        input=marshal.dumps(message, 4),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.decode().strip() == ran, done.stderr.decode()
