"""The live API nodes and the URLs workers reach them at; the cluster's node secret.

    nodes = ApiNodes(db, lease_s=30)
    nodes.advertise(node_id, "http://10.0.0.5:8000")    # an API node: at start, then each beat
    nodes.urls()                                         # the live ones', shuffled (`Peers`)
    nodes.secret()                                       # made once by migration 3
    nodes.leave(node_id)                                 # a clean exit
    nodes.prune()                                        # any API node, now and then

An API node is live while its heartbeat is younger than ``lease_s``, in the
database's own clock (as workers' leases). Workers read this table (and the
secret) to reach the cluster's blobs (`storage.remote.HttpBlobStore`); the
worker role may only read it.
"""

from __future__ import annotations

import random

import psycopg

from ai_data_agent.errors import ConfigurationError, NotReady
from ai_data_agent.service.cluster.db import Database

__all__ = ["META_KEY", "ApiNodes"]

META_KEY = "node_secret"  # its row in `meta`


class ApiNodes:
    """The ``api_nodes`` table; `urls` and `secret` make it the `Peers` of a worker's store."""

    def __init__(self, db: Database, *, lease_s: float) -> None:
        self.db = db
        self.lease_s = lease_s
        self._secret: str | None = None

    def advertise(self, node_id: str, url: str) -> None:
        """Say (again) that ``node_id`` is live at ``url``."""
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO api_nodes (id, url) VALUES (%s, %s) "
                "ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, heartbeat_at = now()",
                (node_id, url),
            )

    def leave(self, node_id: str) -> None:
        with self.db.connection() as conn:
            conn.execute("DELETE FROM api_nodes WHERE id = %s", (node_id,))

    def prune(self) -> int:
        """Forget API nodes silent for longer than the lease."""
        with self.db.connection() as conn:
            cursor = conn.execute(
                "DELETE FROM api_nodes WHERE heartbeat_at < now() - make_interval(secs => %s)",
                (self.lease_s,),
            )
        return cursor.rowcount

    def urls(self) -> list[str]:
        """The live API nodes' URLs, shuffled so that workers spread over them.

        Raises:
            NotReady: the database cannot be reached.
        """
        try:
            with self.db.connection() as conn:
                rows = conn.execute(
                    "SELECT DISTINCT url FROM api_nodes "
                    "WHERE heartbeat_at >= now() - make_interval(secs => %s)",
                    (self.lease_s,),
                ).fetchall()
        except psycopg.Error as exc:
            raise NotReady(f"cannot read the API nodes from the database: {exc}") from exc
        urls = [row[0] for row in rows]
        random.shuffle(urls)
        return urls

    def secret(self) -> str:
        """The cluster's node secret (read once; it never changes).

        Raises:
            NotReady: the database cannot be reached.
            ConfigurationError: the schema has none (older than this node).
        """
        if self._secret is None:
            try:
                with self.db.connection() as conn:
                    row = conn.execute(
                        "SELECT value FROM meta WHERE key = %s", (META_KEY,)
                    ).fetchone()
            except psycopg.Error as exc:
                raise NotReady(f"cannot read the node secret from the database: {exc}") from exc
            if row is None:
                raise ConfigurationError(
                    "the database holds no node secret: start an API node of this version first"
                )
            self._secret = str(row[0])
        return self._secret
