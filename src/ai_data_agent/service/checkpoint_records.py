"""Checkpoints' records: what the daemon keeps of each, signed, behind one store interface.

    record = CheckpointRecord(session_id=..., tenant="admin", seq=1, namespace=..., files=[...])
    record = signer.sign(record)          # its MAC: HMAC-SHA256 under the daemon's key
    signer.check(record)                  # CheckpointFailed when a field or blob name changed
    store: CheckpointRecords = CheckpointStore(path)        # one node: SQLite
    store: CheckpointRecords = PgCheckpointStore(database)  # a cluster: PostgreSQL

A checkpoint's bytes are blobs (`storage`); its record names them by digest,
with the session, tenant and sequence number, and what a resume needs (the
requirements, image, limits, generation and execution count). The MAC covers
all of that: a record or blob name changed in the database or on disk is
refused at resume, and since blobs are content-addressed and checked while
they stream back, so is a blob whose bytes changed. Both stores keep the same
guarantees, checked by one contract test (tests/cluster/test_checkpoint_store_contract.py):
``(session_id, seq)`` is unique; a tenant reads only its own records (None:
any); ``usage`` counts each blob a tenant's records name once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

from ai_data_agent.checkpoint_models import CheckpointInfo, LostVariable
from ai_data_agent.errors import CheckpointFailed, ConfigurationError
from ai_data_agent.executor.session.checkpoint import Snapshot, StoredFile
from ai_data_agent.models import SkippedArtifact
from ai_data_agent.session_models import SessionRequest
from ai_data_agent.storage import BlobRef

__all__ = [
    "KEY_FILENAME",
    "CheckpointRecord",
    "CheckpointRecords",
    "FileRecord",
    "Signer",
    "load_key",
    "merged_blobs",
]

KEY_FILENAME = "checkpoint.key"


class FileRecord(BaseModel):
    path: str
    digest: str
    size: int


class CheckpointRecord(BaseModel):
    """One checkpoint as stored (see the module docstring)."""

    session_id: str
    tenant: str
    seq: int
    created_at: float = Field(description="Unix seconds.")
    execution_count: int
    generation: int
    namespace_digest: str
    namespace_size: int
    files: list[FileRecord] = Field(default_factory=list)
    kept: list[str] = Field(default_factory=list)
    lost: list[LostVariable] = Field(default_factory=list)
    skipped: list[SkippedArtifact] = Field(default_factory=list)
    requirements: list[str] = Field(default_factory=list)
    image: str = ""
    modules: list[str] = Field(default_factory=list, description="What its values come from.")
    request: SessionRequest = Field(description="The session's request (files left out).")
    mac: str = ""

    @classmethod
    def of(
        cls,
        snap: Snapshot,
        *,
        session_id: str,
        tenant: str,
        seq: int,
        request: SessionRequest,
        requirements: list[str],
        image: str,
        created_at: float,
    ) -> CheckpointRecord:
        return cls(
            session_id=session_id,
            tenant=tenant,
            seq=seq,
            created_at=created_at,
            execution_count=snap.execution_count,
            generation=snap.generation,
            namespace_digest=snap.namespace.digest,
            namespace_size=snap.namespace.size,
            files=[FileRecord(path=f.path, digest=f.digest, size=f.size) for f in snap.files],
            kept=list(snap.kept),
            lost=list(snap.lost),
            skipped=list(snap.skipped),
            requirements=requirements,
            image=image,
            modules=list(snap.modules),
            request=request.model_copy(update={"files": []}),
        )

    @property
    def size(self) -> int:
        return self.namespace_size + sum(f.size for f in self.files)

    def blobs(self) -> dict[str, int]:
        """Every blob it names, with its size."""
        return {self.namespace_digest: self.namespace_size} | {f.digest: f.size for f in self.files}

    def snapshot(self) -> Snapshot:
        """The blobs and names a restore needs."""
        return Snapshot(
            namespace=BlobRef(self.namespace_digest, self.namespace_size),
            files=tuple(StoredFile(f.path, f.digest, f.size) for f in self.files),
            kept=tuple(self.kept),
            lost=tuple(self.lost),
            execution_count=self.execution_count,
            generation=self.generation,
            modules=tuple(self.modules),
        )

    def base(self) -> tuple[int, tuple[StoredFile, ...]]:
        return self.seq, self.snapshot().files

    def info(self) -> CheckpointInfo:
        return CheckpointInfo(
            session_id=self.session_id,
            seq=self.seq,
            created_at=datetime.fromtimestamp(self.created_at, UTC),
            execution_count=self.execution_count,
            generation=self.generation,
            bytes=self.size,
            namespace_bytes=self.namespace_size,
            files=len(self.files),
            kept=self.kept,
            lost=self.lost,
            files_skipped=self.skipped,
            requirements=self.requirements,
            image=self.image,
        )

    def signed_text(self) -> bytes:
        """What the MAC covers: every field but the MAC, in one canonical form."""
        # A record from before ``modules`` was one signs as it did then.
        fields = self.model_dump(
            mode="json", exclude={"mac"} | ({"modules"} - self.model_fields_set)
        )
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def merged_blobs(texts: Iterable[str]) -> dict[str, int]:
    """The blobs of several records (their ``blobs()`` as JSON), each once."""
    sizes: dict[str, int] = {}
    for text in texts:
        sizes.update(json.loads(text))
    return sizes


class Signer:
    """HMAC-SHA256 of records under the daemon's key, loaded at the first use (`load_key`,
    or the cluster's from its database)."""

    def __init__(self, load: Callable[[], bytes]) -> None:
        self._load = load
        self._key: bytes | None = None

    def _secret(self) -> bytes:
        if self._key is None:
            key = self._load()
            if len(key) < 32:
                raise ConfigurationError("the checkpoint key must be at least 32 bytes")
            self._key = key
        return self._key

    def mac(self, record: CheckpointRecord) -> str:
        return hmac.new(self._secret(), record.signed_text(), hashlib.sha256).hexdigest()

    def sign(self, record: CheckpointRecord) -> CheckpointRecord:
        return record.model_copy(update={"mac": self.mac(record)})

    def check(self, record: CheckpointRecord) -> None:
        """Raises:
        CheckpointFailed: the record is not as the daemon signed it.
        """
        if not hmac.compare_digest(self.mac(record), record.mac):
            raise CheckpointFailed(
                f"refused: checkpoint {record.seq} of session {record.session_id} does not "
                "match its signature (its record or blobs were changed)",
                session_id=record.session_id,
            )


def load_key(path: Path) -> bytes:
    """The daemon's checkpoint key in ``path`` (mode 0600), made at the first use.

    Raises:
        ConfigurationError: it cannot be read or made.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigurationError(f"cannot make the checkpoint key {path}: {exc.strerror}") from exc
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the checkpoint key {path}: {exc}") from exc


class CheckpointRecords(Protocol):
    """Checkpoints' records, whichever database holds them (see the module docstring).
    ``tenant`` None reads every tenant's; every method blocks."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def add(self, record: CheckpointRecord) -> None:
        """Keep a new record (durable on return)."""

    def get(self, session_id: str, seq: int, *, tenant: str | None) -> CheckpointRecord | None: ...

    def latest(self, session_id: str, *, tenant: str | None) -> CheckpointRecord | None: ...

    def history(self, session_id: str, *, tenant: str | None) -> list[CheckpointRecord]:
        """Newest first."""

    def next_seq(self, session_id: str) -> int:
        """One more than the highest seq of the session (1 for the first)."""

    def prune(self, session_id: str, *, keep: int) -> int:
        """Delete all but the newest ``keep``; return how many went."""

    def delete_session(self, session_id: str) -> int: ...

    def with_checkpoints(self, session_ids: list[str]) -> set[str]:
        """Which of ``session_ids`` have at least one checkpoint."""

    def digests(self) -> set[str]:
        """Every blob a record names (what a blob sweep keeps)."""

    def usage(self, tenant: str) -> int:
        """Bytes of the distinct blobs ``tenant``'s records name (its storage quota's share)."""
