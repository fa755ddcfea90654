"""Dataset versions on the real engine: filled once into a volume, checked, evicted when unused."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import docker
import pytest

from ai_data_agent.dataset_models import DatasetFile
from ai_data_agent.errors import ExecutorError
from ai_data_agent.executor.data import LABEL_DATASET, EngineDatasets
from ai_data_agent.executor.data.volumes import volume_name
from ai_data_agent.executor.docker.backend import DockerBackend
from ai_data_agent.settings import Settings

pytestmark = pytest.mark.integration


class Source:
    """Versions in memory: manifests by digest, blobs by sha256."""

    def __init__(self) -> None:
        self.manifests: dict[str, list[DatasetFile]] = {}
        self.blobs: dict[str, bytes] = {}

    def add(self, tag: str, content: dict[str, bytes]) -> str:
        files = []
        for path, data in content.items():
            digest = hashlib.sha256(data).hexdigest()
            self.blobs[digest] = data
            files.append(DatasetFile(path=path, size=len(data), sha256=digest))
        version = hashlib.sha256(tag.encode()).hexdigest()
        self.manifests[version] = files
        return version

    def manifest(self, digest: str) -> list[DatasetFile] | None:
        return self.manifests.get(digest)

    def open_blob(self, digest: str) -> BinaryIO:
        return io.BytesIO(self.blobs[digest])


@pytest.fixture
def engine(
    make_settings: Callable[..., Settings], tmp_path: Path, docker_client: docker.DockerClient
) -> Iterator[tuple[EngineDatasets, Source]]:
    settings = make_settings(env_cache_index=tmp_path / "envcache.sqlite3")
    backend = DockerBackend(settings)
    made = EngineDatasets(settings, backend)
    source = Source()
    made.connect(source)
    yield made, source
    for digest in source.manifests:
        try:
            docker_client.api.remove_volume(volume_name(digest), force=True)
        except docker.errors.NotFound:
            pass
    backend.close()


def test_a_version_is_filled_once_and_evicted_only_when_unused(
    engine: tuple[EngineDatasets, Source], docker_client: docker.DockerClient
) -> None:
    datasets, source = engine
    kept = source.add("kept", {"a.csv": b"a,b\n1,2\n", "sub/c.txt": b"c"})
    spare = source.add("spare", {"x.bin": bytes(4096)})
    name = datasets.ensure(kept, "test")
    assert docker_client.api.inspect_volume(name)["Labels"][LABEL_DATASET] == kept
    assert datasets.ensure(kept, "test") == name  # found, not filled again
    datasets.ensure(spare, "test")
    assert datasets.usage() == (2, 4096 + 9)
    mount = docker.types.Mount("/data/kept", name, type="volume", read_only=True)
    holder = docker_client.api.create_container(
        datasets.backend.resolve_image(),
        command=["true"],
        host_config=docker_client.api.create_host_config(mounts=[mount], network_mode="none"),
    )["Id"]
    try:
        assert datasets.prune(max_bytes=0) == [spare]  # the one in use stays
    finally:
        docker_client.api.remove_container(holder, force=True)
    assert datasets.prune(max_age_s=0.0) == [kept]
    assert datasets.usage() == (0, 0)


def test_a_blob_that_is_not_its_manifests_leaves_no_volume(
    engine: tuple[EngineDatasets, Source], docker_client: docker.DockerClient
) -> None:
    datasets, source = engine
    bad = source.add("bad", {"ok.csv": b"fine", "bad.csv": b"right bytes"})
    source.blobs[hashlib.sha256(b"right bytes").hexdigest()] = b"wrong bytes"
    with pytest.raises(ExecutorError, match="not the file the manifest names"):
        datasets.ensure(bad, "test")
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_volume(volume_name(bad))
