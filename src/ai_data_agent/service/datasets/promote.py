"""Files a session or a run wrote, kept as a new dataset version.

    version = promote_session(datasets, session, "admin", "clean", ["outputs/clean.parquet"])
    saved = save_outputs(datasets, "admin", run_id, "clean", artifacts_dir, result.artifacts)

A file under ``outputs/`` is stored under its path relative to it (so
``outputs/clean.parquet`` is ``clean.parquet`` in the dataset, and
``/data/clean/clean.parquet`` to the next session that mounts it); any other
path is stored as it is. A session's files are copied out of its container
one at a time (checked: size and sha256), each streamed into the blob store
and its copy removed before the next; a run's are its artifacts, already
checked and on the host. The caps and the tenant's quota are those of an
upload, and a failure leaves no version.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

from ai_data_agent.dataset_models import DatasetVersion, SavedDataset
from ai_data_agent.errors import AiDataAgentError, RequestRejected
from ai_data_agent.executor import Session
from ai_data_agent.models import OUTPUTS_DIR, Artifact
from ai_data_agent.paths import check_relative_path
from ai_data_agent.service.datasets.ingest import Ingest
from ai_data_agent.service.datasets.service import DatasetService

__all__ = ["promote_session", "save_outputs", "stored_name"]

CHUNK = 1024 * 1024


def stored_name(path: str) -> str:
    """A session file's name in the dataset: relative to outputs/ when it lies there.

    Raises:
        RequestRejected: not a safe, normal relative path.
    """
    try:
        check_relative_path(path)
    except ValueError as exc:
        raise RequestRejected("paths", str(exc)) from exc
    prefix = OUTPUTS_DIR + "/"
    return path[len(prefix) :] if path.startswith(prefix) else path


def _chunks(local: Path) -> Iterator[bytes]:
    with local.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def promote_session(
    datasets: DatasetService, session: Session, tenant: str, name: str, paths: list[str]
) -> DatasetVersion:
    """``paths`` of the session's working directory as the next version of ``name``.

    Raises:
        FileNotFound: a path the session does not have.
        RequestRejected, RequestTooLarge: a bad path, a cap, the quota.
    """
    named = [(path, stored_name(path)) for path in paths]
    cap = datasets.settings.dataset_max_file_bytes
    work = datasets.settings.data_dir

    def fill(ingest: Ingest) -> None:
        for path, name_in_dataset in named:
            ingest.check_name(name_in_dataset, what=path)
            work.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="promote-", dir=work) as folder:
                local = session.fetch(path, Path(folder), cap)
                ingest.add(name_in_dataset, _chunks(local), what=path)

    return datasets.ingest(tenant, name, fill, "session", session.id)


def save_outputs(
    datasets: DatasetService,
    tenant: str,
    run_id: str,
    name: str,
    artifacts_dir: Path,
    artifacts: list[Artifact],
) -> SavedDataset:
    """A finished run's artifacts as the next version of ``name``; what happened, never raises
    for a refusal (the run's result says it)."""
    if not artifacts:
        return SavedDataset(name=name, error="the run left no files under outputs/")

    def fill(ingest: Ingest) -> None:
        for artifact in artifacts:
            ingest.add(artifact.path, _chunks(artifacts_dir / artifact.path))

    try:
        version = datasets.ingest(tenant, name, fill, "run", run_id)
    except AiDataAgentError as exc:
        return SavedDataset(name=name, error=str(exc))
    return SavedDataset(name=name, version=version.version, digest=version.digest)
