"""The code's interpreter (`sandbox.codeproc`, `sandbox.preload`) on the host: started
before the code, it imports what it is given, reports, then runs ``main.py`` as
``python main.py`` would (its exit status, its output, its files written)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from ai_data_agent.sandbox.codeproc import CodeProcess
from ai_data_agent.sandbox.kernelproc import open_kernel
from ai_data_agent.sandbox.preload import as_json
from ai_data_agent.sandbox.spawn import Child
from tests.support.children import read_to_end
from tests.support.wait import poll

CODE = """
import sys, threading
f = open("left-open.txt", "w")  # never closed: the exit still writes it
f.write("kept")
def late():
    print("from a thread", flush=True)
threading.Timer(0.2, late).start()  # a non-daemon thread: the exit waits for it
print("out", sys.argv[0], "csv" in sys.modules)
sys.exit(EXIT)
"""


def finish(proc: Child, timeout_s: float = 60.0) -> tuple[int, bytes, bytes]:
    """Its exit status and everything it wrote, once it ended."""
    out, err = read_to_end(proc, timeout_s)
    return proc.wait(timeout_s), out, err


def run(tmp_path: Path, modules: list[str], exit_arg: str) -> tuple[CodeProcess, int, str, str]:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(tmp_path), "HOME": str(tmp_path)}
    child = CodeProcess.start(env, str(tmp_path), modules)
    warm = child.report(60.0)
    assert warm is not None and warm["observed"]["executable"] == sys.executable
    main = tmp_path / "main.py"
    main.write_text(CODE.replace("EXIT", exit_arg))
    child.release(str(main), env)
    code, out, err = finish(child.proc)
    return child, code, out.decode(), err.decode()


@pytest.mark.parametrize("modules", [[], ["csv"]], ids=["plain", "preimported"])
def test_the_code_runs_as_a_script_and_exits_as_one(tmp_path: Path, modules: list[str]) -> None:
    child, status, out, err = run(tmp_path, modules, "3")

    assert child.imported == modules
    assert status == 3, err
    assert out.splitlines() == [f"out main.py {bool(modules)}", "from a thread"]
    assert (tmp_path / "left-open.txt").read_text() == "kept"


@pytest.mark.parametrize("modules", [[], ["csv"]], ids=["plain", "preimported"])
def test_an_exit_message_goes_to_stderr_with_status_1(tmp_path: Path, modules: list[str]) -> None:
    _, status, _, err = run(tmp_path, modules, "'bye'")

    assert status == 1 and err.strip().endswith("bye")


def test_a_failed_preimport_is_reported_and_nothing_after_it_imported(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(tmp_path), "HOME": str(tmp_path)}
    child = CodeProcess.start(env, str(tmp_path), ["json", "no_such_module_x", "csv"])
    try:
        warm = child.report(60.0)
        assert warm is not None and "no_such_module_x" in warm["error"]
        assert child.imported == []  # an interpreter whose imports failed is not used as warm
        assert warm["imported"] == ["json"]
    finally:
        child.kill()


def test_a_kernel_made_from_it_sees_the_environments_the_session_adds(tmp_path: Path) -> None:
    """A pooled sandbox's interpreter started without the session's environment (a plain
    pool serves any cached one): the kernel it becomes imports from it all the same."""
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(tmp_path), "HOME": str(tmp_path)}
    added = tmp_path / "env"
    added.mkdir()
    (added / "only_in_the_env.py").write_text("ANSWER = 42\n")
    child = CodeProcess.start(base, str(tmp_path), ["csv"])
    kernel = None
    try:
        assert child.report(60.0) is not None
        session_env = dict(base, PYTHONPATH=os.pathsep.join([str(tmp_path), str(added)]))
        kernel = open_kernel(session_env, str(tmp_path), {}, child)
        kernel.send(
            {"op": "cell", "code": "import only_in_the_env\nonly_in_the_env.ANSWER", "count": 1}
        )
        done = poll(
            lambda: next((m for m in kernel.read_messages(0.1) if m.get("k") == "done"), None),
            timeout_s=30,
            what="the cell's answer",
        )
        assert done["status"] == "ok", done
        assert done["result"]["data"]["text/plain"] == "42"
    finally:
        if kernel is not None:
            kernel.kill()
        child.kill()


@pytest.mark.parametrize(
    "value",
    [
        None,
        {"k": "warm", "imported": ["pandas"], "error": None, "observed": {"HOME": "/tmp/x"}},
        {"quote": 'say "hi"\\ now', "lines": "a\nb\tc\x00", "ok": True, "n": -3},
        ["caf\u00e9", "\u2603", "\U0001f600", "\udcff", "\x7f"],
    ],
)
def test_the_reports_it_writes_by_hand_are_json(value: object) -> None:
    encoded = as_json(value)
    assert encoded.isascii()
    assert json.loads(encoded) == value


def test_its_code_runs_without_json_or_re_imported(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(tmp_path), "HOME": str(tmp_path)}
    child = CodeProcess.start(env, str(tmp_path), [])
    assert child.report(60.0) is not None
    main = tmp_path / "main.py"
    main.write_text("import sys\nprint(sorted({'json', 're', 'enum'} & set(sys.modules)))\n")
    child.release(str(main), env)
    code, out, err = finish(child.proc)
    assert (code, out) == (0, b"[]\n"), err
