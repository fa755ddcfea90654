"""The sandbox's pure steps, on the host (sandbox/environment, install, execute, channel)."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import SandboxUser

from ai_data_agent.executor import protocol
from ai_data_agent.executor.protocol import encode_message
from ai_data_agent.sandbox import channel, environment
from ai_data_agent.sandbox.bootstrap import source_of
from ai_data_agent.sandbox.channel import read_message
from ai_data_agent.sandbox.environment import (
    build_env,
    env_mismatches,
    make_sandbox_dir,
    remove_tree,
)
from ai_data_agent.sandbox.execute import OutputPump
from ai_data_agent.sandbox.install import pip_install_command, tail, uv_cannot_run
from ai_data_agent.sandbox.runner import write_sitecustomize

# -- build_env -------------------------------------------------------------------


def test_build_env_puts_sandbox_first_and_keeps_original_entries() -> None:
    env = build_env({"PYTHONPATH": "/opt/lib:/srv/lib"}, "/tmp/ai_data_agent_x", pathsep=":")
    assert env["PYTHONPATH"] == "/tmp/ai_data_agent_x:/opt/lib:/srv/lib"


def test_build_env_without_pythonpath_is_just_the_sandbox() -> None:
    env = build_env({}, "/tmp/ai_data_agent_x", pathsep=":")
    assert env["PYTHONPATH"] == "/tmp/ai_data_agent_x"


def test_build_env_drops_empty_entries() -> None:
    # An empty entry means "the current directory" to Python: never inherit it.
    env = build_env({"PYTHONPATH": ":/opt/lib::/srv/lib:"}, "/sb", pathsep=":")
    assert env["PYTHONPATH"] == "/sb:/opt/lib:/srv/lib"
    assert "" not in env["PYTHONPATH"].split(":")


def test_build_env_does_not_repeat_the_sandbox() -> None:
    env = build_env({"PYTHONPATH": "/sb:/opt/lib"}, "/sb", pathsep=":")
    assert env["PYTHONPATH"] == "/sb:/opt/lib"


def test_build_env_sets_home_and_preserves_other_variables() -> None:
    base = {"HOME": "/root", "PATH": "/usr/bin", "LANG": "C.UTF-8", "MPLBACKEND": "Agg"}
    env = build_env(base, "/sb", pathsep=":")
    assert env["HOME"] == "/sb"
    assert {k: env[k] for k in ("PATH", "LANG", "MPLBACKEND")} == {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
    }
    assert set(env) == set(base) | {"PYTHONPATH"}


def test_build_env_does_not_mutate_its_input() -> None:
    base = {"PYTHONPATH": "/opt/lib", "HOME": "/root"}
    build_env(base, "/sb", pathsep=":")
    assert base == {"PYTHONPATH": "/opt/lib", "HOME": "/root"}


def test_build_env_simulated_windows_uses_semicolons() -> None:
    base = {"PYTHONPATH": r"C:\lib;;D:\site packages;", "PATH": r"C:\Windows"}
    env = build_env(base, r"C:\x", pathsep=";")
    # Drive-letter colons are not separators here.
    assert env["PYTHONPATH"] == r"C:\x;C:\lib;D:\site packages"
    assert env["HOME"] == r"C:\x"
    assert env["PATH"] == r"C:\Windows"


def test_build_env_default_separator_is_os_pathsep() -> None:
    env = build_env({"PYTHONPATH": "/a"}, "/sb")
    assert env["PYTHONPATH"] == os.pathsep.join(["/sb", "/a"])


def test_build_env_extra_paths_follow_the_sandbox() -> None:
    base = {"PYTHONPATH": "/opt/lib:/envs/abc"}
    env = build_env(base, "/sb", pathsep=":", extra_paths=["/envs/abc", "/envs/def"])
    assert env["PYTHONPATH"] == "/sb:/envs/abc:/envs/def:/opt/lib"


def test_module_docstring_example_holds() -> None:
    env = build_env({"PYTHONPATH": "/opt/lib"}, "/tmp/ai_data_agent_x", pathsep=":")
    assert env["PYTHONPATH"] == "/tmp/ai_data_agent_x:/opt/lib"


# -- pip_install_command ---------------------------------------------------------


def test_pip_install_command_forces_a_reinstall_into_the_target() -> None:
    cmd = pip_install_command("/usr/bin/python3", "/sb/req.txt", "/sb")
    assert cmd[:4] == ["/usr/bin/python3", "-m", "pip", "install"]
    assert cmd[cmd.index("-r") + 1] == "/sb/req.txt"
    assert cmd[cmd.index("--target") + 1] == "/sb"
    for flag in ("--no-cache-dir", "--disable-pip-version-check", "--upgrade", "--force-reinstall"):
        assert cmd.count(flag) == 1, flag
    assert "--index-url" not in cmd


def test_pip_install_command_adds_index_url_only_when_given() -> None:
    cmd = pip_install_command("py", "r.txt", "/sb", index_url="https://pypi.example/simple")
    assert cmd[cmd.index("--index-url") + 1] == "https://pypi.example/simple"
    assert "--index-url" not in pip_install_command("py", "r.txt", "/sb", index_url="")
    assert "--index-url" not in pip_install_command("py", "r.txt", "/sb", index_url=None)


def test_pip_install_command_appends_extra_args_last() -> None:
    cmd = pip_install_command("py", "r.txt", "/sb", extra_args=["--only-binary", ":all:"])
    assert cmd[-2:] == ["--only-binary", ":all:"]


# -- env_mismatches --------------------------------------------------------------


def test_env_mismatches_empty_when_everything_agrees() -> None:
    expected = {"PYTHONPATH": "/sb", "HOME": "/sb", "executable": "/py", "OTHER": "x"}
    assert env_mismatches(expected, {"PYTHONPATH": "/sb", "HOME": "/sb", "executable": "/py"}) == []


def test_env_mismatches_names_each_difference() -> None:
    expected = {"PYTHONPATH": "/sb", "HOME": "/sb", "executable": "/py"}
    problems = env_mismatches(expected, {"PYTHONPATH": "/other", "HOME": "/sb", "executable": "/x"})
    assert len(problems) == 2
    assert problems[0].startswith("PYTHONPATH: expected '/sb', saw '/other'")
    assert problems[1].startswith("executable:")


def test_env_mismatches_ignores_keys_not_observed_and_other_keys() -> None:
    assert env_mismatches({"PYTHONPATH": "/sb"}, {"LANG": "C"}) == []


def test_env_mismatches_reports_a_variable_missing_from_expected() -> None:
    assert env_mismatches({}, {"HOME": "/sb"}) == ["HOME: expected None, saw '/sb'"]


# -- normalise_name and tail -------------------------------------------------------


def test_tail_keeps_short_text_as_is() -> None:
    assert tail("abc", 3) == "abc"
    assert tail("", 0) == ""


def test_tail_keeps_the_end_and_marks_the_cut() -> None:
    assert tail("0123456789", 4) == "[...]\n6789"


def test_tail_cuts_at_a_line_boundary_when_there_is_one() -> None:
    text = "first line\nFailed to fetch the index\n"
    assert tail(text, 30) == "[...]\nFailed to fetch the index\n"


@pytest.mark.parametrize(
    ("returncode", "output", "cannot_run"),
    [
        (None, "cannot start uv: [Errno 8] Exec format error", True),
        (-11, "", True),
        (2, "error: No interpreter found at path `/usr/bin/python3`", True),
        (1, "error: No solution found when resolving dependencies", False),
        (1, "error: Failed to fetch: `https://pypi.org/simple/six/`", False),
    ],
)
def test_uv_falls_back_to_pip_only_when_uv_itself_cannot_run(
    returncode: int | None, output: str, cannot_run: bool
) -> None:
    assert uv_cannot_run(returncode, output) is cannot_run


# -- make_sandbox_dir and remove_tree ----------------------------------------------


def test_make_sandbox_dir_is_private_and_prefixed(tmp_path: Path) -> None:
    path = Path(make_sandbox_dir(str(tmp_path)))
    assert path.parent == tmp_path
    assert path.name.startswith("ai_data_agent_")
    assert path.is_dir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_make_sandbox_dir_is_fresh_each_time(tmp_path: Path) -> None:
    assert make_sandbox_dir(str(tmp_path)) != make_sandbox_dir(str(tmp_path))


def _populate(root: Path) -> None:
    (root / "work" / "pkg" / "sub").mkdir(parents=True)
    (root / "work" / "pkg" / "sub" / "f.txt").write_text("x")
    (root / "work" / "main.py").write_text("print(1)")
    (root / "link").symlink_to("/etc")


def test_remove_tree_removes_everything(tmp_path: Path) -> None:
    sandbox = Path(make_sandbox_dir(str(tmp_path)))
    _populate(sandbox)
    assert remove_tree(str(sandbox)) is True
    assert not sandbox.exists()
    assert Path("/etc").is_dir()  # the symlink was removed, not followed


def test_remove_tree_with_read_only_dirs_and_files(tmp_path: Path) -> None:
    sandbox = Path(make_sandbox_dir(str(tmp_path)))
    _populate(sandbox)
    (sandbox / "work" / "pkg" / "sub" / "f.txt").chmod(0o400)
    (sandbox / "work" / "pkg" / "sub").chmod(0o500)
    (sandbox / "work").chmod(0o500)
    assert remove_tree(str(sandbox)) is True
    assert not sandbox.exists()


# As the sandbox user: root ignores mode bits, so the case that matters in a
# container (uid 1000) must run as a non-root user to mean anything.
REMOVE_AS_USER = """
import json, os, sys
ns = {"__name__": "sandbox_environment"}
exec(sys.stdin.read(), ns)
base, mode = sys.argv[1], int(sys.argv[2], 8)
sandbox = ns["make_sandbox_dir"](base)
os.makedirs(os.path.join(sandbox, "work", "locked", "inner"))
with open(os.path.join(sandbox, "work", "locked", "f.txt"), "w") as fh:
    fh.write("x")
os.chmod(os.path.join(sandbox, "work", "locked"), mode)
try:
    removed = ns["remove_tree"](sandbox)
    outcome = {"removed": removed, "exists": os.path.lexists(sandbox)}
except Exception as exc:
    outcome = {"raised": repr(exc)}
print(json.dumps(outcome))
"""


def _remove_as_sandbox_user(user: SandboxUser, base: Path, mode: int) -> dict[str, object]:
    proc = subprocess.run(
        [user.python, "-I", "-c", REMOVE_AS_USER, str(base), oct(mode)],
        input=source_of("environment"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        **user.popen_kwargs,  # type: ignore[arg-type]
    )
    assert proc.returncode == 0, proc.stderr
    outcome: dict[str, object] = json.loads(proc.stdout)
    return outcome


def test_remove_tree_as_sandbox_user_with_a_read_only_subdir(
    sandbox_user: SandboxUser, unprivileged_tmp: Path
) -> None:
    assert _remove_as_sandbox_user(sandbox_user, unprivileged_tmp, 0o500) == {
        "removed": True,
        "exists": False,
    }


@pytest.mark.parametrize("mode", [0o000, 0o300])
def test_remove_tree_as_sandbox_user_with_an_unreadable_subdir(
    sandbox_user: SandboxUser, unprivileged_tmp: Path, mode: int
) -> None:
    assert _remove_as_sandbox_user(sandbox_user, unprivileged_tmp, mode) == {
        "removed": True,
        "exists": False,
    }


# -- OutputPump ------------------------------------------------------------------------


class Frames(list[dict[str, object]]):
    def text(self, stream: str) -> str:
        return "".join(str(f["d"]) for f in self if f["k"] == "out" and f["s"] == stream)


def _pump(stdout_limit: int = 100, stderr_limit: int = 100) -> tuple[OutputPump, Frames]:
    frames = Frames()
    pump = OutputPump(frames.append, {"stdout": stdout_limit, "stderr": stderr_limit}, False)
    return pump, frames


def test_output_pump_forwards_each_stream() -> None:
    pump, frames = _pump()
    pump.feed("stdout", b"out")
    pump.feed("stderr", b"err")
    assert frames == [
        {"k": "out", "s": "stdout", "d": "out"},
        {"k": "out", "s": "stderr", "d": "err"},
    ]
    assert pump.truncated == {"stdout": False, "stderr": False}


def test_output_pump_caps_each_stream_separately() -> None:
    pump, frames = _pump(stdout_limit=10, stderr_limit=4)
    pump.feed("stdout", b"0123456")
    pump.feed("stdout", b"789abc")
    pump.feed("stdout", b"def")
    pump.feed("stderr", b"abcdef")
    assert frames.text("stdout") == "0123456789"
    assert frames.text("stderr") == "abcd"
    assert pump.truncated == {"stdout": True, "stderr": True}
    assert pump.seen == {"stdout": 10, "stderr": 4}


def test_output_pump_exactly_at_the_cap_is_not_truncated() -> None:
    pump, frames = _pump(stdout_limit=4)
    pump.feed("stdout", b"abcd")
    assert frames.text("stdout") == "abcd"
    assert pump.truncated["stdout"] is False


def test_output_pump_joins_utf8_split_across_chunks() -> None:
    pump, frames = _pump()
    data = "\u00e9\u20ac\U0001f600".encode()  # 2, 3 and 4 byte sequences
    for i in range(len(data)):
        pump.feed("stdout", data[i : i + 1])
    pump.feed("stdout", b"", final=True)
    assert frames.text("stdout") == "\u00e9\u20ac\U0001f600"
    assert "\ufffd" not in frames.text("stdout")


def test_output_pump_replaces_invalid_utf8() -> None:
    pump, frames = _pump()
    pump.feed("stdout", b"a\xffb\xc3(")
    pump.feed("stdout", b"", final=True)
    assert frames.text("stdout") == "a\ufffdb\ufffd("


def test_output_pump_flushes_a_dangling_partial_sequence_as_replacement() -> None:
    pump, frames = _pump()
    pump.feed("stdout", b"ok\xe2\x82")
    assert frames.text("stdout") == "ok"
    pump.feed("stdout", b"", final=True)
    assert frames.text("stdout") == "ok\ufffd"


def test_output_pump_cut_inside_a_character_counts_bytes_not_characters() -> None:
    pump, frames = _pump(stdout_limit=3)
    pump.feed("stdout", "a\u20ac".encode())  # 4 bytes, cap 3: the euro sign is cut
    pump.feed("stdout", b"", final=True)
    assert pump.seen["stdout"] == 3
    assert pump.truncated["stdout"] is True
    assert frames.text("stdout") == "a\ufffd"


# -- read_message -----------------------------------------------------------------------


def test_read_message_reads_a_length_prefixed_message_and_nothing_more() -> None:
    job = {"token": "t", "code": "print('h\u00e9llo')\n", "requirements": []}
    stream = io.BytesIO(encode_message(job) + b"go\n")
    assert read_message(stream) == job
    assert stream.read() == b"go\n"  # the go line stays for wait_for_go


def test_read_message_truncated_raises() -> None:
    data = encode_message({"token": "t", "code": "x" * 100})
    with pytest.raises(EOFError, match="message truncated"):
        read_message(io.BytesIO(data[:-10]))


def test_read_message_at_the_end_of_input_raises_eof() -> None:
    with pytest.raises(EOFError, match="end of input"):
        read_message(io.BytesIO(b""))


def test_read_message_bad_header_raises() -> None:
    with pytest.raises(ValueError):
        read_message(io.BytesIO(b"not-a-number\n{}"))
    with pytest.raises(ValueError, match="out of range"):
        read_message(io.BytesIO(b"999999999999\n{}"))


def test_read_message_body_must_be_a_json_object() -> None:
    with pytest.raises(ValueError):
        read_message(io.BytesIO(b"3\nabc"))
    with pytest.raises(ValueError, match="JSON object"):
        read_message(io.BytesIO(b"2\n[]"))


def test_sandbox_constants_match_the_controller() -> None:
    assert channel.GO_LINE == protocol.GO_LINE == b"go\n"
    assert environment.SANDBOX_PREFIX == "ai_data_agent_"


def test_sitecustomize_comes_with_its_compiled_code_which_python_loads_as_it_is(
    tmp_path: Path,
) -> None:
    write_sitecustomize(str(tmp_path))
    assert (tmp_path / "sitecustomize.py").read_text() == source_of("figures")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(tmp_path)}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # as in a sandbox: nothing written, only read
    proc = subprocess.run(
        [sys.executable, "-v", "-c", "import sitecustomize; print(sitecustomize.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert proc.stdout.strip() == str(tmp_path / "sitecustomize.py")
    cached = tmp_path / "__pycache__" / f"sitecustomize.{sys.implementation.cache_tag}.pyc"
    assert f"code object from '{cached}'" in proc.stderr  # not compiled from the source
