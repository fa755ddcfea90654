"""Events (for SSE from any API node) and artifacts (in chunks) in the shared database.

    append(conn, run_id, [("stdout", '{"data": "hi\\n"}')])     # then NOTIFY ada_run, run_id
    for seq, name, data in after(db, run_id, last_seq): ...
    store_artifacts(conn, run_id, folder, result.artifacts)     # in the terminal write
    chunks = artifact_chunks(db, run_id, "chart.png")           # None: no such artifact

An event's topic is a run id, or ``<session id>/<n>`` for a cell. Artifact
bytes go in chunks of `CHUNK_BYTES`, so no single value nears PostgreSQL's
1 GB field limit and a download streams chunk by chunk; they are bounded by
the run's artifact caps (``max_artifacts``, ``max_artifact_total_bytes``),
which the executor enforced before anything was written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg

from ai_data_agent.models import Artifact
from ai_data_agent.service.cluster.db import Database

__all__ = ["CHUNK_BYTES", "after", "append", "artifact_chunks", "store_artifacts"]

CHUNK_BYTES = 1024 * 1024
EVENTS_PAGE = 1000


def append(conn: psycopg.Connection, topic: str, items: list[tuple[str, str]]) -> None:
    """Add events to ``topic`` (inside the caller's transaction; it sends the NOTIFY)."""
    if items:
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO events (topic, name, data) VALUES (%s, %s, %s)",
                [(topic, name, data) for name, data in items],
            )


def after(db: Database, topic: str, seq: int) -> list[tuple[int, str, str]]:
    """Events of ``topic`` after ``seq``, oldest first (at most a page)."""
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT seq, name, data FROM events WHERE topic = %s AND seq > %s "
            "ORDER BY seq LIMIT %s",
            (topic, seq, EVENTS_PAGE),
        ).fetchall()
    return [(int(s), str(n), str(d)) for s, n, d in rows]


def store_artifacts(
    conn: psycopg.Connection, run_id: str, folder: Path, artifacts: list[Artifact]
) -> None:
    """Copy the run's checked artifact files from ``folder`` into the database."""
    with conn.cursor() as cursor:
        for artifact in artifacts:
            path = folder / artifact.path
            with path.open("rb") as handle:
                number = 0
                while chunk := handle.read(CHUNK_BYTES):
                    cursor.execute(
                        "INSERT INTO artifacts (run_id, path, chunk, data) VALUES (%s, %s, %s, %s)",
                        (run_id, artifact.path, number, chunk),
                    )
                    number += 1
                if number == 0:  # an empty file is one empty chunk, so it exists
                    cursor.execute(
                        "INSERT INTO artifacts (run_id, path, chunk, data) VALUES (%s, %s, 0, '')",
                        (run_id, artifact.path),
                    )


def artifact_chunks(db: Database, run_id: str, path: str) -> Iterator[bytes] | None:
    """The artifact's bytes, one chunk per query (no connection is held between chunks);
    None when it is not stored."""
    with db.connection() as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM artifacts WHERE run_id = %s AND path = %s", (run_id, path)
        ).fetchone()
    count = int(row[0]) if row else 0
    if count == 0:
        return None

    def chunks() -> Iterator[bytes]:
        for number in range(count):
            with db.connection() as conn:
                found = conn.execute(
                    "SELECT data FROM artifacts WHERE run_id = %s AND path = %s AND chunk = %s",
                    (run_id, path, number),
                ).fetchone()
            if found is None:  # deleted meanwhile (retention): end the body early
                return
            yield bytes(found[0])

    return chunks()
