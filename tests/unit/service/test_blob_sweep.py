"""One sweep of a node's blob store spares what datasets and checkpoints name alike."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from service_fakes import make_settings, running_service

from ai_data_agent.service.checkpoint_records import CheckpointRecord
from ai_data_agent.session_models import SessionRequest

pytestmark = pytest.mark.anyio

HOUR_AND_MORE = 2 * 3600


def _blob(store: object, data: bytes) -> str:
    writer = store.writer()  # type: ignore[attr-defined]
    writer.write(data)
    digest: str = writer.commit().digest
    path = store.path(digest)  # type: ignore[attr-defined]
    old = time.time() - HOUR_AND_MORE  # past every grace period
    os.utime(path, (old, old))
    return digest


async def test_the_reapers_sweep_keeps_a_checkpoints_blobs_and_takes_orphans(
    tmp_path: Path,
) -> None:
    async with running_service(make_settings(tmp_path)) as svc:
        daemon = svc.app.state.daemon
        kept = _blob(daemon.blobs, b"a checkpoint's namespace")
        orphan = _blob(daemon.blobs, b"named by nothing")
        daemon.sessions.keeper.records.add(
            CheckpointRecord(
                session_id="s1",
                tenant="admin",
                seq=1,
                created_at=time.time(),
                execution_count=1,
                generation=1,
                namespace_digest=kept,
                namespace_size=24,
                files=[],
                request=SessionRequest(),
            )
        )
        daemon.reaper.tick()
        assert daemon.blobs.exists(kept)
        assert not daemon.blobs.exists(orphan)
