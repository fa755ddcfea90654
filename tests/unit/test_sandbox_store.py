"""The sandbox's file programs on the host: the shared environment store, artifacts out,
input files in, the verify program and the figures hook.

These run inside containers in production; here they run in this process on
temporary directories (the runner as a whole is exercised by test_runner_host).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import marshal
import os
import sys
import time
import types
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest

from ai_data_agent.sandbox import envstore, figures, outputs, verify
from ai_data_agent.sandbox.channel import Channel, receive_files, safe_join
from ai_data_agent.sandbox.environment import ENV_MANIFEST

TOKEN = "k" * 32


def frames(buffer: io.BytesIO) -> list[dict[str, Any]]:
    lines = buffer.getvalue().decode().splitlines()
    assert all(line.startswith(TOKEN + " ") for line in lines)
    return [json.loads(line.split(" ", 1)[1]) for line in lines]


# -- envstore -------------------------------------------------------------------------------
@pytest.fixture
def envs(tmp_path: Path) -> Path:
    path = tmp_path / "envs"
    path.mkdir()
    return path


@pytest.fixture
def staged(tmp_path: Path) -> Path:
    src = tmp_path / "stage" / "env"
    (src / "six").mkdir(parents=True)
    (src / "six" / "__init__.py").write_text("X = 1\n" * 100)
    (src / "link").symlink_to("six")
    return src


def test_a_directory_without_a_manifest_is_debris_and_publish_replaces_it(
    staged: Path, envs: Path
) -> None:
    debris = envs / "k1" / "six" / "__pycache__"
    debris.mkdir(parents=True)  # what a stray compile would leave: no __init__.py, no manifest

    report = envstore.publish_env(str(staged), str(envs), "k1", {"n": 1})

    assert report["published"] is True
    assert (envs / "k1" / "six" / "__init__.py").is_file()
    assert envstore.read_manifest(str(envs), "k1") is not None
    assert sorted(p.name for p in envs.iterdir()) == ["k1"]


def test_compile_writes_bytecode_named_for_the_import_path(
    staged: Path, envs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(envs)  # compile_env changes the cwd; the fixture restores it
    envstore.publish_env(str(staged), str(envs), "k1", {})
    assert envstore.read_manifest(str(envs), "k1") == {"size": ANY, "compiled": False}
    report = envstore.compile_env(str(envs), "k1", workers=1)
    assert report == {"compiled": True, "complete": True, "first": 0}
    [pyc] = (envs / "k1" / "six" / "__pycache__").iterdir()
    code = marshal.loads(pyc.read_bytes()[16:])
    assert code.co_filename == str(envs / "k1" / "six" / "__init__.py")
    assert envstore.read_manifest(str(envs), "k1") == {"size": ANY, "compiled": True}


def test_compile_takes_the_files_a_run_imported_first_and_only_inside_the_environment(
    staged: Path, envs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import compileall

    monkeypatch.chdir(envs)
    envstore.publish_env(str(staged), str(envs), "k1", {})
    seen_before_the_rest: list[bool] = []

    def some_fail(*args: Any, **kwargs: Any) -> bool:
        seen_before_the_rest.append((envs / "k1" / "six" / "__pycache__").is_dir())
        return False  # a file that does not compile: it never will

    monkeypatch.setattr(compileall, "compile_dir", some_fail)
    first = ["six/__init__.py", "../k1/six/__init__.py", "/etc/passwd", "missing.py"]
    report = envstore.compile_env(str(envs), "k1", workers=1, first=first)

    assert report == {"compiled": False, "complete": True, "first": 1}
    assert seen_before_the_rest == [True]
    manifest = envstore.read_manifest(str(envs), "k1")
    assert manifest is not None and manifest["compiled"] is True  # not to be tried again


def test_a_compile_of_the_imported_files_alone_leaves_the_walk_to_a_later_one(
    staged: Path, envs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import compileall

    monkeypatch.chdir(envs)
    envstore.publish_env(str(staged), str(envs), "k1", {})
    walked: list[object] = []
    monkeypatch.setattr(compileall, "compile_dir", lambda *a, **k: walked.append(a) or True)

    report = envstore.compile_env(str(envs), "k1", workers=1, first=["six/__init__.py"], rest=False)

    assert report == {"compiled": True, "complete": False, "first": 1}
    assert walked == [] and (envs / "k1" / "six" / "__pycache__").is_dir()
    manifest = envstore.read_manifest(str(envs), "k1")
    assert manifest is not None and manifest["compiled"] is False  # the rest still to do


def test_a_compile_cut_short_leaves_no_marker(
    staged: Path, envs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import compileall

    monkeypatch.chdir(envs)
    envstore.publish_env(str(staged), str(envs), "k1", {})

    def killed(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("killed")  # as the process dies half-way

    monkeypatch.setattr(compileall, "compile_dir", killed)
    with pytest.raises(RuntimeError):
        envstore.compile_env(str(envs), "k1", workers=1)
    manifest = envstore.read_manifest(str(envs), "k1")
    assert manifest is not None and manifest["compiled"] is False


def test_a_compile_whose_environment_is_pruned_meanwhile_recreates_nothing(
    staged: Path, envs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import compileall

    monkeypatch.chdir(envs)
    envstore.publish_env(str(staged), str(envs), "k1", {})
    real = compileall.compile_dir

    def pruned_first(*args: Any, **kwargs: Any) -> bool:
        os.rename(envs / "k1", envs / ".trash-k1")  # a prune's rename, as the walk starts
        return bool(real(*args, **kwargs))

    monkeypatch.setattr(compileall, "compile_dir", pruned_first)
    envstore.compile_env(str(envs), "k1", workers=1)

    assert not (envs / "k1").exists()  # nothing under the old name for a publish to adopt
    assert (envs / ".trash-k1" / "six" / "__pycache__").is_dir()  # the compile followed it


def test_publish_renames_a_full_copy_with_its_manifest_into_place(staged: Path, envs: Path) -> None:
    report = envstore.publish_env(str(staged), str(envs), "k1", {"installer": "uv"})

    assert report["published"] is True and report["size"] > 600
    assert sorted(p.name for p in envs.iterdir()) == ["k1"]  # no temporary left
    assert (envs / "k1" / "link").is_symlink()  # copied as a link, not followed
    manifest = envstore.read_manifest(str(envs), "k1")
    assert manifest is not None and manifest["installer"] == "uv"
    assert manifest["size"] == report["size"]


def test_a_second_publish_of_a_key_keeps_the_first(staged: Path, envs: Path) -> None:
    envstore.publish_env(str(staged), str(envs), "k1", {"n": 1})
    report = envstore.publish_env(str(staged), str(envs), "k1", {"n": 2})

    assert report["published"] is False
    assert envstore.read_manifest(str(envs), "k1")["n"] == 1  # type: ignore[index]


@pytest.mark.parametrize("key", ["", "a/b", ".hidden", ".."])
def test_a_bad_key_is_refused(staged: Path, envs: Path, key: str) -> None:
    with pytest.raises(ValueError, match="bad key"):
        envstore.publish_env(str(staged), str(envs), key, {})
    assert envstore.read_manifest(str(envs), key) is None
    assert envstore.prune_envs(str(envs), [key]) == {"removed": []}


@pytest.mark.parametrize("content", [None, "{not json", "[1, 2]"])
def test_a_missing_or_broken_manifest_reads_as_none(envs: Path, content: str | None) -> None:
    (envs / "k1").mkdir()
    if content is not None:
        (envs / "k1" / ENV_MANIFEST).write_text(content)
    assert envstore.read_manifest(str(envs), "k1") is None


def test_prune_removes_keys_and_only_stale_leftovers(staged: Path, envs: Path) -> None:
    envstore.publish_env(str(staged), str(envs), "k1", {})
    envstore.publish_env(str(staged), str(envs), "k2", {})
    old, fresh = envs / ".tmp-k3-abc", envs / ".trash-k4-def"
    old.mkdir()
    fresh.mkdir()
    an_hour_ago = time.time() - envstore.STALE_TEMP_S - 10
    os.utime(old, (an_hour_ago, an_hour_ago))

    report = envstore.prune_envs(str(envs), ["k1", "gone"])

    assert report == {"removed": ["k1"]}
    assert sorted(p.name for p in envs.iterdir()) == [".trash-k4-def", "k2"]


# -- artifacts out ---------------------------------------------------------------------------
@pytest.fixture
def outputs_dir(tmp_path: Path) -> Path:
    out = tmp_path / "outputs"
    (out / "sub").mkdir(parents=True)
    (out / "a.txt").write_bytes(b"alpha")
    (out / "sub" / "b.bin").write_bytes(b"\x00" * 70_000)  # two data frames
    (out / "link.txt").symlink_to(out / "a.txt")
    (out / "dirlink").symlink_to(out / "sub")
    os.mkfifo(out / "pipe")
    return out


def test_scan_skips_links_and_special_files_and_respects_the_caps(outputs_dir: Path) -> None:
    found, skipped = outputs.scan_outputs(str(outputs_dir), 10, 1 << 20)
    assert [rel for rel, _, _ in found] == ["a.txt", "sub/b.bin"]
    assert {s["path"]: s["reason"] for s in skipped} == {
        "link.txt": "symlink",
        "dirlink": "symlink",
        "pipe": "not a regular file",
    }

    found, skipped = outputs.scan_outputs(str(outputs_dir), 1, 1 << 20)
    assert [rel for rel, _, _ in found] == ["a.txt"]
    assert {"path": "sub/b.bin", "reason": "artifact count cap reached"} in skipped

    found, skipped = outputs.scan_outputs(str(outputs_dir), 10, 10)
    assert {"path": "sub/b.bin", "reason": "artifact size cap reached"} in skipped

    found, skipped = outputs.scan_outputs(str(outputs_dir), 10, 1 << 20, only={"sub/b.bin"})
    assert ([rel for rel, _, _ in found], skipped) == (["sub/b.bin"], [])
    assert outputs.scan_outputs(str(outputs_dir / "nope"), 10, 10) == ([], [])


def test_send_artifacts_streams_each_file_with_its_hash(outputs_dir: Path) -> None:
    out = io.BytesIO()
    report = outputs.send_artifacts(
        Channel(TOKEN, out, io.BytesIO()), str(outputs_dir), 10, 1 << 20
    )

    sent = frames(out)
    begins = [f for f in sent if f["k"] == "artifact_begin"]
    assert [(f["path"], f["size"]) for f in begins] == [("a.txt", 5), ("sub/b.bin", 70_000)]
    data = b"".join(
        base64.b64decode(f["d"]) for f in sent[sent.index(begins[1]) :] if f["k"] == "artifact_data"
    )
    ends = [f for f in sent if f["k"] == "artifact_end"]
    assert ends[1] == {
        "k": "artifact_end",
        "size": 70_000,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert len(report["skipped"]) == 3


def test_send_file_never_follows_a_link_swapped_in_after_the_scan(tmp_path: Path) -> None:
    (tmp_path / "real").write_bytes(b"secret")
    (tmp_path / "swapped").symlink_to(tmp_path / "real")
    out = io.BytesIO()
    reason = outputs.send_file(
        Channel(TOKEN, out, io.BytesIO()), "swapped", str(tmp_path / "swapped"), 6
    )
    assert reason is not None and reason.startswith("cannot open")
    assert out.getvalue() == b""


def test_a_file_that_shrank_since_the_scan_ends_with_what_was_read(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    out = io.BytesIO()
    assert (
        outputs.send_file(Channel(TOKEN, out, io.BytesIO()), "f", str(tmp_path / "f"), 10) is None
    )
    assert frames(out)[-1]["size"] == 3


# -- input files in ---------------------------------------------------------------------------
def test_input_files_are_written_exclusively_under_the_base(tmp_path: Path) -> None:
    stdin = io.BytesIO(b"hello" + b"x" * 3)
    total = receive_files(
        stdin, str(tmp_path), [{"path": "d/a.txt", "size": 5}, {"path": "b", "size": 3}]
    )

    assert total == 8
    assert (tmp_path / "d" / "a.txt").read_bytes() == b"hello"
    assert oct((tmp_path / "d" / "a.txt").stat().st_mode & 0o777) == oct(0o600)
    with pytest.raises(FileExistsError):
        receive_files(io.BytesIO(b"y"), str(tmp_path), [{"path": "b", "size": 1}])
    with pytest.raises(EOFError, match="truncated"):
        receive_files(io.BytesIO(b"zz"), str(tmp_path), [{"path": "c", "size": 5}])


@pytest.mark.parametrize("rel", ["", "/abs", "a/../../b", "x\x00"])
def test_safe_join_refuses_a_path_that_could_climb(tmp_path: Path, rel: str) -> None:
    with pytest.raises(ValueError, match="unsafe path"):
        safe_join(str(tmp_path), rel)


def test_go_is_the_exact_line_within_the_wait(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as stdin, os.fdopen(write_end, "wb") as feed:
        channel = Channel(TOKEN, io.BytesIO(), stdin)
        assert channel.wait_for_go(0.05) is False  # nothing came
        feed.write(b"go now\n")
        feed.flush()
        assert channel.wait_for_go(1) is False  # not the exact line
        feed.write(b"go\n")
        feed.flush()
        assert channel.wait_for_go(1) is True


# -- verify ------------------------------------------------------------------------------------
def test_verify_reads_the_metadata_the_code_would_find(tmp_path: Path) -> None:
    env, other = tmp_path / "env", tmp_path / "other"
    for folder, name, version in ((env, "aida_probe", "1.0"), (other, "aida_probe", "2.0")):
        dist = folder / f"{name}-{version}.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: aida-probe\nVersion: {version}\n\nName: not this\n"
        )
    egg = other / "legacy_pkg-0.3-py3.11.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.0\nName: Legacy.Pkg\nVersion: 0.3\n")
    (other / "broken-1.0.dist-info").mkdir()  # no METADATA: not a distribution

    report = verify.inspect(
        ["Aida_Probe", "legacy-pkg", "not-there"], str(env), search=[str(env), str(other)]
    )

    assert report["found"] == {  # the first on the path wins, as for the interpreter
        "Aida_Probe": {"name": "aida-probe", "version": "1.0"},
        "legacy-pkg": {"name": "Legacy.Pkg", "version": "0.3"},
        "not-there": None,
    }
    assert report["packages"] == [{"name": "aida-probe", "version": "1.0"}]
    assert verify.norm("Foo_Bar.baz") == "foo-bar-baz"
    assert verify.norm("a--b__c") == "a-b-c"


# -- figures -----------------------------------------------------------------------------------
class StubFigure:
    def __init__(self, num: int, saved: bool = False) -> None:
        self.num = num
        if saved:
            setattr(self, figures.SAVED_MARK, True)

    def savefig(self, path: str, format: str) -> None:
        Path(path).write_bytes(b"\x89PNG" + format.encode())


@pytest.fixture
def pyplot(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """A stand-in for ``matplotlib.pyplot`` (matplotlib is not a test dependency)."""
    figs = {1: StubFigure(1), 2: StubFigure(2, saved=True), 3: StubFigure(3)}
    closed: list[int] = []
    stub = types.SimpleNamespace(
        get_fignums=lambda: sorted(figs),
        figure=lambda num: figs[num],
        close=lambda figure: closed.append(figure.num),
        closed=closed,
    )
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", stub)
    return stub


def test_open_figures_not_saved_by_the_code_are_saved_once(
    tmp_path: Path, pyplot: types.SimpleNamespace
) -> None:
    (tmp_path / "figure_1.png").write_bytes(b"the code's own")

    saved = figures.save_open_figures(str(tmp_path), close=True)

    assert [Path(p).name for p in saved] == ["figure_1_2.png", "figure_3.png"]
    assert (tmp_path / "figure_1.png").read_bytes() == b"the code's own"
    assert pyplot.closed == [1, 2, 3]


def test_without_pyplot_there_is_nothing_to_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "matplotlib.pyplot", raising=False)
    assert figures.save_open_figures(str(tmp_path / "out")) == []
    assert not (tmp_path / "out").exists()


def test_the_hook_saves_open_figures_at_exit_once_pyplot_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in matplotlib package on disk: the hook wraps pyplot's import."""
    package = tmp_path / "site" / "matplotlib"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "figure.py").write_text(
        "class Figure:\n"
        "    def savefig(self, path, format=None):\n"
        "        with open(path, 'wb') as fh:\n"
        "            fh.write(b'png')\n"
    )
    (package / "pyplot.py").write_text(
        "from matplotlib.figure import Figure\n"
        "_figs = {1: Figure(), 2: Figure()}\n"
        "def get_fignums(): return sorted(_figs)\n"
        "def figure(num): return _figs[num]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.pyplot"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    at_exit: list[Any] = []
    monkeypatch.setattr(figures.atexit, "register", at_exit.append)
    out = tmp_path / "outputs"
    monkeypatch.setenv(figures.OUTPUTS_VARIABLE, str(out))

    figures.install_hook()
    assert sys.meta_path[0].find_spec("json") is None  # type: ignore[call-arg]
    import matplotlib.pyplot as plt  # type: ignore[import-not-found]

    assert not isinstance(sys.meta_path[0], figures._AfterPyplot)  # one shot
    plt.figure(2).savefig(str(tmp_path / "own.png"))  # the code saved this one itself
    (save_at_exit,) = at_exit
    save_at_exit()

    assert sorted(p.name for p in out.iterdir()) == ["figure_1.png"]
