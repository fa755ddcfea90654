"""`EnvCache` with a scripted backend: every internal sandbox answers by its job.

The probe, install, publish and prune sandboxes are played by `ScriptedBackend`
with ``respond``: each job gets the frames a runner would send for it, so the
cache's own decisions (keys, index, locks, volumes, eviction) are what is
tested, through the real `SandboxDriver` and `Conversation`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fakes import ScriptedBackend, ScriptedSandbox, ScriptItem

from ai_data_agent.errors import ConfigurationError, ExecutorError
from ai_data_agent.executor.core import Executor
from ai_data_agent.executor.driver import SandboxDriver
from ai_data_agent.executor.env import EnvCache, InstallFailure, Ready
from ai_data_agent.executor.env import cache as cache_module
from ai_data_agent.executor.env.index import CachedEnv, ImageInfo, cache_key, default_index_path
from ai_data_agent.executor.env.sandboxes import CACHE_VOLUME, STAGE_MOUNT, UV_CACHE_VOLUME
from ai_data_agent.executor.spec import ENVS_MOUNT, ContainerSpec, VolumeMount
from ai_data_agent.models import PackageInfo, RunRequest
from ai_data_agent.settings import Settings
from tests.support.logs import LogLine
from tests.support.wait import poll

IMAGE_INFO = ImageInfo("3.11.2-cpython-311", "linux-x86_64")
PANDAS = [{"name": "pandas", "version": "2.2.0"}]


def result(**fields: Any) -> dict[str, Any]:
    return {"k": "result", **fields}


def installed(size: int = 1234, packages: list[dict[str, str]] = PANDAS) -> list[ScriptItem]:
    return [
        {"k": "phase", "phase": "installing"},
        {"k": "phase", "phase": "ready"},
        result(
            install={"ok": True, "installer": "pip", "duration_s": 0.5, "log_tail": "done"},
            verify={"ok": True, "packages": packages},
            size=size,
            oom_kills=0,
        ),
    ]


class CacheBackend(ScriptedBackend):
    """Answers each job like a runner would; records volumes and jobs by mode."""

    def __init__(self) -> None:
        super().__init__([], respond=self.answer)
        self.handlers: dict[str, Callable[[dict[str, Any]], list[ScriptItem]]] = {
            "probe": lambda job: [
                result(python="3.11.2", tag="cpython-311", platform="linux-x86_64")
            ],
            "install": lambda job: installed(),
            "publish": lambda job: [result(published=True, size=4321)],
            "prune": lambda job: [result(removed=job["prune"]["keys"])],
            "compile": lambda job: [result(compiled=True, complete=True)],
        }
        self.ensured: list[tuple[str, dict[str, str]]] = []
        self.removed_volumes: list[str] = []
        self.images: dict[str, str] = {}
        self.quiet_compiles = False  # a compile's sandbox then goes quiet instead of ending

    def answer(self, job: dict[str, Any]) -> list[ScriptItem]:
        return self.handlers[job["mode"]](job)

    def start(self, spec: ContainerSpec, run_id: str) -> ScriptedSandbox:
        sandbox = super().start(spec, run_id)
        sandbox.end_stream = not (self.quiet_compiles and run_id.endswith("-compile"))
        return sandbox

    def modes(self) -> list[str]:
        return [s.jobs[0]["mode"] for s in self.started if s.jobs]

    def jobs(self, mode: str) -> list[dict[str, Any]]:
        return [s.jobs[0] for s in self.started if s.jobs and s.jobs[0]["mode"] == mode]

    def ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        self.ensured.append((name, labels))

    def remove_volume(self, name: str) -> None:
        self.removed_volumes.append(name)

    def image_id(self, image: str) -> str:
        return self.images.get(image, "sha256:" + image)


@pytest.fixture
def backend() -> CacheBackend:
    return CacheBackend()


@pytest.fixture
def make_cache(tmp_path: Path, backend: CacheBackend) -> Iterator[Callable[..., EnvCache]]:
    drivers: list[SandboxDriver] = []
    caches: list[EnvCache] = []

    def make(**overrides: Any) -> EnvCache:
        values: dict[str, Any] = {"installer": "pip", "env_cache_index": tmp_path / "index.db"}
        settings = Settings(**{**values, **overrides})
        drivers.append(SandboxDriver(settings, backend))
        caches.append(EnvCache(settings, backend, drivers[-1], "controller-1"))
        return caches[-1]

    yield make
    for cache in caches:
        cache.close()
    for driver in drivers:
        driver.close()


def env(key: str, size: int, last_used: float) -> CachedEnv:
    return CachedEnv(
        key=key,
        requirements=[key],
        packages=[PackageInfo(name=key, version="1")],
        installer="pip",
        fallback_triggered=False,
        size_bytes=size,
        created_at=last_used,
        last_used_at=last_used,
    )


# -- keys -----------------------------------------------------------------------------------
def test_the_key_ignores_order_spelling_and_spacing_of_names() -> None:
    one = cache_key(["Pandas>=2.0", "numpy"], "img", IMAGE_INFO, "f")
    assert cache_key(["numpy", "pandas >= 2.0"], "img", IMAGE_INFO, "f") == one
    assert cache_key(["NumPy", "pandas>=2.0"], "img", IMAGE_INFO, "f") == one
    assert len(one) == 32


@pytest.mark.parametrize(
    "changed",
    [
        (["pandas>=2.1", "numpy"], "img", IMAGE_INFO, "f"),
        (["pandas>=2.0"], "img", IMAGE_INFO, "f"),
        (["pandas>=2.0", "numpy"], "other", IMAGE_INFO, "f"),
        (
            ["pandas>=2.0", "numpy"],
            "img",
            ImageInfo("3.12.1-cpython-312", IMAGE_INFO.platform),
            "f",
        ),
        (["pandas>=2.0", "numpy"], "img", ImageInfo(IMAGE_INFO.python, "linux-aarch64"), "f"),
        (["pandas>=2.0", "numpy"], "img", IMAGE_INFO, "g"),
    ],
)
def test_the_key_changes_with_what_makes_wheels_differ(
    changed: tuple[list[str], str, ImageInfo, str],
) -> None:
    assert cache_key(*changed) != cache_key(["pandas>=2.0", "numpy"], "img", IMAGE_INFO, "f")


def test_the_installer_flavour_is_part_of_the_key(make_cache: Callable[..., EnvCache]) -> None:
    keys = {
        make_cache(**flavour).key_for(["six"], "img", "run")
        for flavour in (
            {},
            {"installer": "uv"},
            {"allow_sdists": True},
            {"pip_index_url": "https://mirror.example/simple"},
        )
    }
    assert len(keys) == 4


def test_the_default_index_is_per_engine_under_the_user_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, backend: CacheBackend
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    path = default_index_path("ab:c/../d")
    assert path == tmp_path / "xdg" / "ai-data-agent" / "engines" / "abcd" / "envcache.sqlite3"
    assert default_index_path("///").parent.name == "default"

    cache = EnvCache(Settings(), backend, SandboxDriver(Settings(), backend), "c")
    assert cache.index.path == default_index_path("fake-engine")
    assert cache.index.path.parent.is_dir()


def test_an_index_that_cannot_be_written_is_a_configuration_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, backend: CacheBackend
) -> None:
    (tmp_path / "home").write_text("a file, not a directory: as unwritable as a read-only root")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home"))
    cache = EnvCache(Settings(), backend, SandboxDriver(Settings(), backend), "c")
    with pytest.raises(ConfigurationError) as info:
        cache.index  # noqa: B018 (the property opens it)
    assert str(default_index_path("fake-engine")) in info.value.message
    assert "AI_DATA_AGENT_ENV_CACHE_INDEX" in info.value.message


# -- the image probe --------------------------------------------------------------------------
def test_the_image_is_probed_once_per_image_id_and_kept_in_the_index(
    make_cache: Callable[..., EnvCache], backend: CacheBackend
) -> None:
    cache = make_cache()
    first = cache.image_info("img:1", "run-1")
    assert cache.image_info("img:1", "run-2") == first
    assert first == ("sha256:img:1", ImageInfo("3.11.2-cpython-311", "linux-x86_64"))
    assert backend.modes() == ["probe"]
    probe_spec = backend.specs[0]
    assert probe_spec.network is None and probe_spec.mounts == ()

    make_cache().image_info("img:1", "run-3")  # another process, the same index file
    assert backend.modes() == ["probe"]

    backend.images["img:2"] = "sha256:img:1"  # a new tag of the same image
    make_cache().image_info("img:2", "run-4")
    assert backend.modes() == ["probe"]

    make_cache().image_info("img:3", "run-5")
    assert backend.modes() == ["probe", "probe"]


@pytest.mark.parametrize(
    "answer",
    [[result(python="", platform="linux")], [result(error="OSError: boom")], []],
    ids=["no python", "runner error", "no result"],
)
def test_a_probe_without_an_answer_is_an_executor_error(
    make_cache: Callable[..., EnvCache], backend: CacheBackend, answer: list[ScriptItem]
) -> None:
    backend.handlers["probe"] = lambda job: answer
    with pytest.raises(ExecutorError) as caught:
        make_cache().image_info("img", "run-1")
    assert caught.value.step == "probe"
    assert backend.started[0].calls[-1] == "remove"


# -- install, hit, adopt ------------------------------------------------------------------------
def test_a_miss_installs_in_its_own_sandbox_then_publishes(
    make_cache: Callable[..., EnvCache], backend: CacheBackend
) -> None:
    cache = make_cache()
    outcome = cache.get_or_install(["pandas"], "img", "run-1")

    assert isinstance(outcome, Ready) and not outcome.hit
    key = cache.key_for(["pandas"], "img", "run-1")
    assert outcome.env.key == key
    assert outcome.env.size_bytes == 4321  # as published, not as staged
    assert outcome.env.packages == [PackageInfo(name="pandas", version="2.2.0")]
    assert outcome.env.install_s > 0 and outcome.env.log_tail == "done"
    cache.close()  # waits for the background compile and the staging volumes' removal
    assert backend.modes() == ["probe", "install", "publish", "compile"]
    assert cache.index.get(key) is not None
    (compile_job,) = backend.jobs("compile")
    assert compile_job["compile"]["key"] == key
    compile_spec = backend.specs[3]
    assert compile_spec.cpu_shares == 128  # in the background: runs come first
    assert compile_spec.mounts == (VolumeMount(CACHE_VOLUME, ENVS_MOUNT, read_only=False),)
    assert compile_spec.network is None

    (install,) = backend.jobs("install")
    assert install["lookup"] == {"envs": ENVS_MOUNT, "key": key}
    assert install["install"]["target"] == f"{STAGE_MOUNT}/env"
    install_spec, publish_spec = backend.specs[1], backend.specs[2]
    stage = install_spec.mounts[0].volume
    assert stage.startswith("ai-data-agent-stage-")
    assert install_spec.network is not None  # the only sandbox with a network
    assert install_spec.mounts == (
        VolumeMount(stage, STAGE_MOUNT, read_only=False),
        VolumeMount(UV_CACHE_VOLUME, "/opt/ai-data-agent/uv-cache", read_only=False),
        VolumeMount(CACHE_VOLUME, ENVS_MOUNT, read_only=True),
    )
    assert publish_spec.network is None
    assert publish_spec.mounts == (
        VolumeMount(stage, STAGE_MOUNT, read_only=True),
        VolumeMount(CACHE_VOLUME, ENVS_MOUNT, read_only=False),
    )
    (publish,) = backend.jobs("publish")
    assert publish["publish"]["key"] == key
    assert publish["publish"]["manifest"]["packages"] == PANDAS
    # The staging volume is labelled for the sweep, made ahead and removed after use; the
    # one made ahead for the next install goes at close.
    names = [name for name, _ in backend.ensured]
    assert names[:2] == [CACHE_VOLUME, UV_CACHE_VOLUME] and stage in names
    staged = [name for name in names if name.startswith("ai-data-agent-stage-")]
    assert sorted(backend.removed_volumes) == sorted(staged) and stage in staged


def test_a_new_environment_compiles_first_what_the_run_that_follows_imported(
    make_cache: Callable[..., EnvCache], backend: CacheBackend
) -> None:
    cache = make_cache()
    outcome = cache.get_or_install(["pandas"], "img", "run-1", imports_follow=True)
    assert isinstance(outcome, Ready) and not outcome.env.compiled
    assert backend.jobs("compile") == []  # it waits for the run's imports

    first = ["pandas/__init__.py", "numpy/__init__.py"]
    cache.imported(outcome.env.key, first)
    # Compiled before the reporting run goes on, at a run's weight: a run that starts
    # right after it finds their bytecode.
    early = backend.jobs("compile")[0]["compile"]
    assert (early["first"], early["rest"]) == (first, False)
    cache.imported(outcome.env.key, ["late.py"])  # already under way: ignored
    cache.close()

    (_, rest) = backend.jobs("compile")
    assert (rest["compile"]["first"], rest["compile"]["rest"]) == ([], True)
    started = zip(backend.specs, backend.started, strict=True)
    shares = [spec.cpu_shares for spec, s in started if s.jobs[0]["mode"] == "compile"]
    assert shares[0] != 128 and shares[1] == 128  # only the rest waits for the runs
    entry = cache.index.get(outcome.env.key)
    assert entry is not None and entry.compiled  # recorded: the next hit compiles nothing
    again = cache.get_or_install(["pandas"], "img", "run-2")
    cache.close()
    assert isinstance(again, Ready) and again.hit and again.env.compiled
    assert len(backend.jobs("compile")) == 2


def test_the_rest_of_a_new_environments_compile_waits_for_a_lull_in_runs(
    make_cache: Callable[..., EnvCache], backend: CacheBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "REST_QUIET_S", 1.5)
    cache = make_cache()
    outcome = cache.get_or_install(["pandas"], "img", "run-1", imports_follow=True)
    assert isinstance(outcome, Ready)
    cache.imported(outcome.env.key, ["pandas/__init__.py"])
    asked = time.monotonic()
    again = cache.get_or_install(["pandas"], "img", "run-2")  # the next run, at once
    assert isinstance(again, Ready) and again.hit
    assert len(backend.jobs("compile")) == 1  # its imports only: the rest waits

    poll(lambda: len(backend.jobs("compile")) == 2, timeout_s=10, what="the rest's compile")
    assert time.monotonic() - asked >= 1.5  # not before a lull of REST_QUIET_S
    cache.close()
    entry = cache.index.get(outcome.env.key)
    assert entry is not None and entry.compiled


def test_a_compile_waiting_for_imports_starts_anyway_after_a_while(
    make_cache: Callable[..., EnvCache], backend: CacheBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "HINT_WAIT_S", 0.05)  # the run never reports
    monkeypatch.setattr(cache_module, "REST_QUIET_S", 0.05)
    cache = make_cache()
    outcome = cache.get_or_install(["pandas"], "img", "run-1", imports_follow=True)

    poll(lambda: backend.jobs("compile"), timeout_s=10, what="the compile without a hint")
    cache.close()
    (compile_job,) = backend.jobs("compile")
    assert isinstance(outcome, Ready) and compile_job["compile"]["first"] == []


@pytest.mark.parametrize(
    ("complete", "compiles"),
    [(False, 2), (True, 1)],
    ids=["cut-short-compiles-again", "went-through-with-bad-files-is-done"],
)
def test_only_a_compile_that_went_through_is_recorded(
    make_cache: Callable[..., EnvCache], backend: CacheBackend, complete: bool, compiles: int
) -> None:
    backend.handlers["compile"] = lambda job: [result(compiled=False, complete=complete)]
    cache = make_cache()
    cache.get_or_install(["pandas"], "img", "run-1")
    cache.close()
    again = cache.get_or_install(["pandas"], "img", "run-2")
    cache.close()

    assert isinstance(again, Ready) and again.hit and again.env.compiled is complete
    assert len(backend.jobs("compile")) == compiles


def test_a_second_request_is_a_hit_without_a_sandbox(
    make_cache: Callable[..., EnvCache], backend: CacheBackend
) -> None:
    cache = make_cache()
    first = cache.get_or_install(["pandas"], "img", "run-1")
    second = cache.get_or_install(["Pandas"], "img", "run-2")

    assert isinstance(first, Ready) and isinstance(second, Ready)
    assert second.hit and second.env.key == first.env.key
    cache.close()
    assert backend.modes() == ["probe", "install", "publish", "compile"]
    assert second.env.last_used_at >= first.env.last_used_at


def test_close_can_stop_a_running_compile_and_keeps_the_environment(
    make_cache: Callable[..., EnvCache], backend: CacheBackend
) -> None:
    backend.handlers["compile"] = lambda job: []  # no result: the sandbox goes quiet
    backend.quiet_compiles = True
    cache = make_cache()
    outcome = cache.get_or_install(["pandas"], "img", "run-1")
    assert isinstance(outcome, Ready)
    poll(lambda: backend.jobs("compile"), timeout_s=10, what="the compile's sandbox")

    started = time.monotonic()
    cache.close(stop_compiles=True)

    assert time.monotonic() - started < 5  # not the compile's deadline
    (compiled,) = [s for s in backend.started if s.jobs[0]["mode"] == "compile"]
    assert "kill" in compiled.calls and compiled.calls[-1] == "remove"
    again = cache.get_or_install(["pandas"], "img", "run-2")  # the cache stays usable
    assert isinstance(again, Ready) and again.hit  # bytecode is optional: the env is kept
    assert not again.env.compiled  # so the hit compiles it again, in the background
    poll(lambda: len(backend.jobs("compile")) == 2, timeout_s=10, what="the compile resumed")
    cache.close(stop_compiles=True)


def test_the_uv_binary_is_shipped_to_uv_installs_only(
    make_cache: Callable[..., EnvCache], backend: CacheBackend, tmp_path: Path
) -> None:
    uv = tmp_path / "uv"
    uv.write_bytes(b"#!/bin/sh\n" + b"x" * 100)
    cache = make_cache(installer="uv", uv_binary=uv)
    cache.get_or_install(["six"], "img", "run-1")
    cache.close()

    probe, install, publish, compiled = backend.started
    assert backend.jobs("install")[0]["install"]["uv_size"] == 110
    assert any(call.startswith("send:#!/bin/sh") for call in install.calls)
    others = probe.calls + publish.calls + compiled.calls
    assert not any(call.startswith("send:#!/bin/sh") for call in others)


def test_an_environment_another_controller_published_is_adopted(
    make_cache: Callable[..., EnvCache], backend: CacheBackend
) -> None:
    manifest = {
        "requirements": ["pandas"],
        "packages": PANDAS,
        "installer": "uv",
        "fallback_triggered": False,
        "created_at": 1000.0,
        "install_s": 12.5,
        "size": 999,
        "compiled": True,
    }
    backend.handlers["install"] = lambda job: [result(manifest=manifest, oom_kills=0)]
    cache = make_cache()
    outcome = cache.get_or_install(["pandas"], "img", "run-1")

    assert isinstance(outcome, Ready) and outcome.hit
    assert outcome.env.installer == "uv" and outcome.env.size_bytes == 999
    assert outcome.env.compiled
    assert backend.modes() == ["probe", "install"]  # nothing to publish, nothing to compile
    assert cache.index.get(outcome.env.key) is not None
    assert len(backend.removed_volumes) == 1


def test_a_malformed_manifest_is_not_adopted(
    make_cache: Callable[..., EnvCache], backend: CacheBackend, log_lines: list[LogLine]
) -> None:
    backend.handlers["install"] = lambda job: [result(manifest={"installer": "uv"})]
    outcome = make_cache().get_or_install(["pandas"], "img", "run-1")

    assert isinstance(outcome, InstallFailure)
    assert any("ignoring environment" in line.message for line in log_lines)
    assert backend.modes() == ["probe", "install"]


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (
            [
                result(
                    install={
                        "ok": False,
                        "installer": "pip",
                        "log_tail": "Collecting nope\nERROR: the build backend crashed",
                    }
                )
            ],
            "pip install failed: ERROR: the build backend crashed",
        ),
        (
            [result(install={"ok": True}, verify={"ok": False, "missing": ["nope"]})],
            "installed but not found: nope",
        ),
        ([result(install={"ok": True})], "installed but not found: ?"),
        ([result(error="ValueError: bad job")], "ValueError: bad job"),
        ([], "the sandbox ended without a result (container exit code 0)"),
    ],
    ids=["installer failed", "not found", "no verify", "runner error", "no result"],
)
def test_an_install_failure_says_why_and_publishes_nothing(
    make_cache: Callable[..., EnvCache],
    backend: CacheBackend,
    answer: list[ScriptItem],
    error: str,
) -> None:
    backend.handlers["install"] = lambda job: answer
    cache = make_cache()
    outcome = cache.get_or_install(["nope"], "img", "run-1")

    assert isinstance(outcome, InstallFailure)
    assert outcome.error.startswith(error), outcome.error
    sent_install = answer[0].get("install") if answer else None
    if sent_install is not None:  # the installer's report comes along
        assert outcome.install is not None
        assert outcome.install.installer == sent_install.get("installer")
    assert backend.modes() == ["probe", "install"]
    assert cache.index.all() == []
    cache.close()  # the used staging volume goes in the background, the one made ahead at close
    staged = [name for name, _ in backend.ensured if name.startswith("ai-data-agent-stage-")]
    assert sorted(backend.removed_volumes) == sorted(staged)  # whatever happened


def test_a_staging_volume_that_cannot_be_removed_is_left_to_the_sweep(
    make_cache: Callable[..., EnvCache], backend: CacheBackend, log_lines: list[LogLine]
) -> None:
    def refuse(name: str) -> None:
        raise ExecutorError("volume in use", step="remove")

    backend.remove_volume = refuse  # type: ignore[method-assign]
    outcome = make_cache().get_or_install(["pandas"], "img", "run-1")

    assert isinstance(outcome, Ready)
    poll(  # the removal runs in the background, after the answer
        lambda: any("stays for the sweep" in line.message for line in log_lines),
        timeout_s=5,
        what="the staging volume left to the sweep",
    )


def test_one_set_asked_for_twice_at_once_is_installed_once(
    make_cache: Callable[..., EnvCache], backend: CacheBackend
) -> None:
    cache = make_cache()
    cache.image_info("img", "warm-up")  # both threads then go straight for the lock
    second_waits = threading.Event()
    lock = cache.index.install_lock
    entered: list[str] = []

    @contextmanager
    def counting_lock(key: str) -> Iterator[None]:
        entered.append(threading.current_thread().name)
        if len(entered) == 2:
            second_waits.set()
        with lock(key):
            yield

    cache.index.install_lock = counting_lock  # type: ignore[method-assign]

    def slow_install(job: dict[str, Any]) -> list[ScriptItem]:
        assert second_waits.wait(5), "the second request never reached the lock"
        time.sleep(0.05)  # it is blocked on the lock now, not merely about to take it
        return installed()

    backend.handlers["install"] = slow_install
    outcomes: dict[str, Ready | InstallFailure] = {}

    def ask(name: str) -> None:
        outcomes[name] = cache.get_or_install(["pandas"], "img", name)

    threads = [threading.Thread(target=ask, args=(f"run-{i}",), name=f"t{i}") for i in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert backend.modes().count("install") == 1
    hits = sorted(o.hit for o in outcomes.values() if isinstance(o, Ready))
    assert hits == [False, True]


def test_forget_drops_the_key_and_checks_the_volumes_again(
    make_cache: Callable[..., EnvCache], backend: CacheBackend
) -> None:
    cache = make_cache()
    first = cache.get_or_install(["pandas"], "img", "run-1")
    assert isinstance(first, Ready)
    ensured = len(backend.ensured)

    cache.forget(first.env.key)
    assert cache.index.get(first.env.key) is None
    again = cache.get_or_install(["pandas"], "img", "run-2")

    assert isinstance(again, Ready) and not again.hit
    assert backend.modes().count("install") == 2
    volumes = [name for name, _ in backend.ensured[ensured:]]
    assert volumes[:2] == [CACHE_VOLUME, UV_CACHE_VOLUME]


def test_a_lost_environment_is_forgotten_and_installed_again_by_the_executor(
    tmp_path: Path, backend: CacheBackend, log_lines: list[LogLine]
) -> None:
    runs = []

    def run(job: dict[str, Any]) -> list[ScriptItem]:
        runs.append(job)
        if len(runs) == 1:  # the first run finds its environment gone from the volume
            return [{"k": "phase", "phase": "ready"}, result(env_missing=job["env_paths"])]
        return [
            {"k": "phase", "phase": "ready"},
            {"k": "phase", "phase": "running"},
            {"k": "out", "s": "stdout", "d": "ok\n"},
            result(install={"ok": True}, execute={"exit_code": 0}, oom_kills=0),
        ]

    backend.handlers["run"] = run
    settings = Settings(installer="pip", env_cache_index=tmp_path / "index.db")
    with Executor(settings, backend=backend) as executor:
        outcome = executor.run(RunRequest(code="print('ok')", requirements=["pandas"]))

    assert outcome.status == "succeeded", outcome.error
    assert outcome.install.mode == "cache" and not outcome.install.cache_hit
    # The compiles run in the background, whenever they get their turn.
    modes = [m for m in backend.modes() if m != "compile"]
    assert modes == ["probe", "install", "publish", "run", "install", "publish", "run"]
    assert any("gone from the volume" in line.message for line in log_lines)


def test_an_environment_lost_twice_is_an_executor_error(
    tmp_path: Path, backend: CacheBackend
) -> None:
    backend.handlers["run"] = lambda job: [
        {"k": "phase", "phase": "ready"},
        result(env_missing=job["env_paths"]),
    ]
    settings = Settings(installer="pip", env_cache_index=tmp_path / "index.db")
    with Executor(settings, backend=backend) as executor, pytest.raises(ExecutorError) as caught:
        executor.run(RunRequest(code="print('ok')", requirements=["pandas"]))
    assert "vanished twice" in str(caught.value)


# -- pruning ---------------------------------------------------------------------------------
@pytest.fixture
def stocked(make_cache: Callable[..., EnvCache]) -> EnvCache:
    """An index with a (newest, 60 bytes), b (40) and c (oldest, 30)."""
    cache = make_cache()
    now = time.time()
    for item in (env("a", 60, now), env("b", 40, now - 100), env("c", 30, now - 200)):
        cache.index.put(item)
    return cache


def test_prune_by_size_evicts_the_least_recently_used(
    stocked: EnvCache, backend: CacheBackend
) -> None:
    assert stocked.prune(max_bytes=100) == ["c"]
    (job,) = backend.jobs("prune")
    assert job["prune"] == {"envs": ENVS_MOUNT, "keys": ["c"]}
    assert backend.specs[0].mounts == (VolumeMount(CACHE_VOLUME, ENVS_MOUNT, read_only=False),)
    assert backend.specs[0].network is None
    assert [e.key for e in stocked.index.all()] == ["a", "b"]


def test_prune_by_age(stocked: EnvCache, backend: CacheBackend) -> None:
    assert stocked.prune(max_age_s=150) == ["c"]
    assert stocked.prune(max_age_s=50) == ["b"]
    assert [e.key for e in stocked.index.all()] == ["a"]


def test_prune_by_key_and_nothing_to_do(stocked: EnvCache, backend: CacheBackend) -> None:
    assert stocked.prune(max_bytes=10**9, max_age_s=10**9) == []
    assert backend.started == []  # nothing doomed, no sandbox
    assert stocked.prune(keys=["b", "a"]) == ["a", "b"]
    assert [e.key for e in stocked.index.all()] == ["c"]


def test_prune_never_evicts_a_key_in_use(stocked: EnvCache, backend: CacheBackend) -> None:
    with stocked.using("c"), stocked.using("c"):
        assert stocked.prune(max_bytes=0) == ["a", "b"]
    with stocked.using("c"):
        assert stocked.prune(keys=["c"]) == []
    assert stocked.prune(keys=["c"]) == ["c"]


def test_a_failed_prune_is_an_error_and_keeps_the_index(
    stocked: EnvCache, backend: CacheBackend
) -> None:
    backend.handlers["prune"] = lambda job: [result(error="OSError: read-only")]
    with pytest.raises(ExecutorError, match="prune job failed: OSError: read-only"):
        stocked.prune(keys=["a"])
    assert [e.key for e in stocked.index.all()] == ["a", "b", "c"]


def test_an_install_evicts_beyond_the_bounds_but_never_itself(
    make_cache: Callable[..., EnvCache], backend: CacheBackend
) -> None:
    cache = make_cache(env_cache_max_bytes=1000)
    cache.index.put(env("old", 500, time.time() - 1000))
    outcome = cache.get_or_install(["pandas"], "img", "run-1")  # published at 4321 bytes

    assert isinstance(outcome, Ready)
    assert [e.key for e in cache.index.all()] == [outcome.env.key]
    assert backend.jobs("prune")[0]["prune"]["keys"] == ["old"]


def test_a_failed_eviction_after_an_install_is_logged_not_raised(
    make_cache: Callable[..., EnvCache], backend: CacheBackend, log_lines: list[LogLine]
) -> None:
    backend.handlers["prune"] = lambda job: [result(error="OSError: busy")]
    cache = make_cache(env_cache_max_bytes=1000)
    cache.index.put(env("old", 500, time.time() - 1000))

    assert isinstance(cache.get_or_install(["pandas"], "img", "run-1"), Ready)
    assert any("cache eviction failed" in line.message for line in log_lines)


def test_a_set_that_does_not_install_is_the_runs_result_and_no_code_runs(
    tmp_path: Path, backend: CacheBackend
) -> None:
    backend.handlers["install"] = lambda job: [
        result(install={"ok": False, "installer": "pip", "log_tail": "ERROR: boom"})
    ]
    events: list[str] = []
    settings = Settings(installer="pip", env_cache_index=tmp_path / "index.db")
    with Executor(settings, backend=backend) as executor:
        outcome = executor.run(
            RunRequest(code="print(1)", requirements=["nope"]),
            on_event=lambda event: events.append(event.data),
        )

    assert outcome.status == "install_failed"
    assert outcome.error == "pip install failed: ERROR: boom"
    assert outcome.install.mode == "cache" and outcome.install.log_tail == "ERROR: boom"
    assert events[0] == "installing"
    assert "run" not in backend.modes()


def test_the_pool_starts_once_with_the_cache_mounted(tmp_path: Path, backend: CacheBackend) -> None:
    settings = Settings(installer="pip", env_cache_index=tmp_path / "index.db", pool_size=1)
    with Executor(settings, backend=backend) as executor:
        executor.start_pool()
        executor.start_pool()
        pool = executor.pool
        assert pool is not None
        poll(lambda: pool.idle_count() == 1, timeout_s=5, what="a pooled sandbox")
        (pooled,) = backend.specs
        assert pooled.mounts == (VolumeMount(CACHE_VOLUME, ENVS_MOUNT, read_only=True),)
        assert pooled.network is None
        names = [name for name, _ in backend.ensured]
        assert names[:2] == [CACHE_VOLUME, UV_CACHE_VOLUME]
        assert all(n.startswith("ai-data-agent-stage-") for n in names[2:])  # made ahead
    assert backend.started[0].calls == ["send:bundle", "send:warm", "remove"]  # drained at close
