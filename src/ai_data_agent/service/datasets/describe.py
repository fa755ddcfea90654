"""Describing a dataset version: computed once, inside a sandbox, by a run of our own program.

    description = await describe(node, "admin", "sales", 3)     # cached with the version

The host never reads a dataset's contents. A version without a cached
description gets a run like any other (admitted, queued, recorded under the
tenant, on one node or on any worker of a cluster): the version mounted
read-only at `MOUNT`, the stdlib program `sandbox.describe` (and
`sandbox.parquet`) as its input files, no network. A version with parquet
files asks for pyarrow (through the environment cache, like any
requirement) for their first rows; where it does not install, the run is made
again without it and the description says so. The program's one line of JSON
is parsed as hostile input (a model, size-capped), then kept with the
manifest: every version with the same files shares it.
"""

from __future__ import annotations

import json

from anyio.to_thread import run_sync
from loguru import logger
from pydantic import BaseModel, Field, ValidationError

from ai_data_agent.dataset_models import DatasetDescription, DatasetMount, FileDescription
from ai_data_agent.errors import ServerError
from ai_data_agent.models import InputFile, RunRequest, RunResult, RunStatus
from ai_data_agent.sandbox.bootstrap import source_of
from ai_data_agent.service import runs
from ai_data_agent.service.node import ServiceNode
from ai_data_agent.tenant_models import Principal, Role

__all__ = ["MOUNT", "describe", "describe_request"]

MOUNT = "/data/dataset"
PARQUET = (".parquet", ".pq")
TIMEOUT_S = 300.0
MAX_DESCRIPTION = 512 * 1024
MAX_OUTPUT = 200 * 1024


class _Described(BaseModel):
    """What the program prints; name and version are the host's to add."""

    files: list[FileDescription] = Field(default_factory=list)
    other_files: int = 0
    truncated: bool = False


def describe_request(
    name: str, version: int, digest: str, *, pyarrow: bool, max_output: int
) -> RunRequest:
    """The run that describes version ``digest`` of ``name``, printing at most ``max_output``."""
    code = f"from ai_data_agent.sandbox.describe import main\nmain({MOUNT!r}, {max_output})\n"
    files = [
        InputFile.from_bytes("ai_data_agent/__init__.py", b""),
        InputFile.from_bytes("ai_data_agent/sandbox/__init__.py", b""),
        *(
            InputFile.from_bytes(f"ai_data_agent/sandbox/{module}.py", source_of(module).encode())
            for module in ("describe", "parquet")
        ),
    ]
    mount = DatasetMount(name=name, version=version, digest=digest, path=MOUNT)
    return RunRequest(
        code=code,
        files=files,
        datasets=[mount],
        requirements=["pyarrow"] if pyarrow else [],
    )


async def describe(node: ServiceNode, tenant: str, name: str, version: int) -> DatasetDescription:
    """The description of a version: the cached one, else computed now (seconds).

    Raises:
        NotFound: no such dataset or version for ``tenant``.
        ServerError: the describe run failed.
        QueueFull, NotReady: as any run.
    """
    datasets = node.datasets
    found = await run_sync(lambda: datasets.version(tenant, name, version, files=False))
    cached = await run_sync(datasets.records.description, found.digest)
    if cached is None:
        manifest = await run_sync(datasets.manifest, found.digest) or []
        parquet = any(f.path.lower().endswith(PARQUET) for f in manifest)
        body = await _compute(node, tenant, found.name, found.version, found.digest, parquet)
        cached = body.model_dump_json()
        await run_sync(datasets.records.set_description, found.digest, cached)
    body = _Described.model_validate_json(cached)
    return DatasetDescription(
        name=found.name, version=found.version, digest=found.digest, **dict(body)
    )


async def _compute(
    node: ServiceNode, tenant: str, name: str, version: int, digest: str, parquet: bool
) -> _Described:
    most = min(MAX_OUTPUT, node.settings.stdout_limit_bytes - 512)
    request = describe_request(name, version, digest, pyarrow=parquet, max_output=most)
    result = await _run(node, tenant, request)
    note = None
    if parquet and result.status == RunStatus.INSTALL_FAILED:
        logger.warning("describe of {}@{}: pyarrow did not install; without it", name, version)
        note = "first rows of parquet files need pyarrow, which did not install here"
        request = request.model_copy(update={"requirements": []})
        result = await _run(node, tenant, request)
    if result.status != RunStatus.SUCCEEDED:
        raise ServerError(
            f"describing {name}@{version} failed: {result.status}: "
            f"{result.error or result.stderr[-500:]}"
        )
    described = _parse(result.stdout, name, version)
    if note is not None:
        for item in described.files:
            if item.format == "parquet":
                item.notes = [n for n in item.notes if "pyarrow" not in n] + [note]
    return described


async def _run(node: ServiceNode, tenant: str, request: RunRequest) -> RunResult:
    request = request.model_copy(update={"timeout_s": min(TIMEOUT_S, node.settings.max_timeout_s)})
    # The tenant's own run (its quotas, its record), whoever asked: an admin may describe
    # another tenant's dataset, which only that tenant's run may mount.
    handle = await runs.admit(node, Principal(tenant=tenant, role=Role.AGENT), request)
    return await runs.final_result(node, handle)


def _parse(stdout: str, name: str, version: int) -> _Described:
    line = stdout.strip().rsplit("\n", 1)[-1]
    if len(line) > MAX_DESCRIPTION:
        raise ServerError(f"the description of {name}@{version} is larger than its cap")
    try:
        return _Described.model_validate(json.loads(line))
    except (ValueError, ValidationError) as exc:
        raise ServerError(f"the description of {name}@{version} is not readable: {exc}") from exc
