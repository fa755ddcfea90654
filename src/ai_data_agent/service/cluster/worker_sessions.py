"""A worker's side of sessions: the calls routed to it, run on its own `SessionManager`.

    host = SessionHost(worker, blobs)   # its engine, database and metrics; the cluster's blobs
    host.attach(); worker.start(); host.start()
    ...
    host.stop()

The session lives here (container, kernel) exactly as on one node; what
changes is where calls come from: rows of ``session_calls`` for this worker
(or a ``create`` that any worker with room may take), each answered in its
row. A cell's events go out through the worker's `EventPump` under the topic
``<session id>/<n>``, all of them before its row says it is done. A worker
that restarts holds no sessions: the ones it held were declared lost.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable

import psycopg
from loguru import logger
from pydantic import TypeAdapter

from ai_data_agent.api_models import ErrorDetail
from ai_data_agent.checkpoint_models import ForkRequest
from ai_data_agent.errors import AiDataAgentError, NotFound, QuotaExceeded
from ai_data_agent.service.checkpoint_records import Signer
from ai_data_agent.service.checkpoints import Checkpoints
from ai_data_agent.service.cluster.pg_checkpoints import PgCheckpointStore, cluster_key
from ai_data_agent.service.cluster.pg_sessions import (
    ANY_WORKER,
    CHANNEL_SESSION,
    Call,
    PgSessionCalls,
    PgSessionRegistry,
)
from ai_data_agent.service.cluster.worker import Worker
from ai_data_agent.service.handles import CellHandle
from ai_data_agent.service.kept_sessions import KeptSessions
from ai_data_agent.service.sessions import SessionManager
from ai_data_agent.session_models import (
    LIVE_SESSION_STATUSES,
    CellRequest,
    SessionFile,
    SessionRequest,
)
from ai_data_agent.storage import BlobStore

__all__ = ["SessionHost"]

FILES = TypeAdapter(list[SessionFile])


class SessionHost:
    """The session calls a worker answers, on a `SessionManager` of its own engine."""

    def __init__(self, worker: Worker, blobs: BlobStore) -> None:
        self.settings = worker.settings
        self.worker = worker
        self.registry = PgSessionRegistry(worker.db, node=worker.id)
        self.calls = PgSessionCalls(worker.db)
        keeper = Checkpoints(
            worker.settings,
            SessionManager(
                worker.settings,
                worker.executor,
                self.registry,
                worker.metrics,
                worker.datasets,
                cpu=worker.cpu,
            ),
            PgCheckpointStore(worker.db),
            blobs,
            Signer(lambda: cluster_key(worker.db)),
            worker.metrics,
        )
        self.manager = KeptSessions(keeper, keeps_house=False)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._accepting = True
        self._thread: threading.Thread | None = None

    def attach(self) -> None:
        """Listen on the sessions' channel with the worker, and look on its ticks."""
        self.worker.extensions[CHANNEL_SESSION] = self._on_notify
        self.worker.on_tick.append(self._wake.set)
        self.worker.on_lost.append(self._end_all)

    def start(self) -> None:
        self.manager.start()
        self._thread = threading.Thread(target=self._loop, name="session-calls", daemon=True)
        self._thread.start()
        self._wake.set()

    def begin_shutdown(self) -> None:
        self._accepting = False
        self.manager.begin_shutdown()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.manager.stop()

    def _end_all(self) -> None:
        """The cluster counted this worker's sessions lost: end them here too (their
        containers go; the registry keeps them ``lost``)."""
        for info in self.manager.sessions():
            if info.status in LIVE_SESSION_STATUSES:
                logger.bind(run_id=info.id).warning("the session was declared lost; ending it")
                self.manager.close(info.id)

    def _on_notify(self, channel: str, payload: str) -> None:
        if payload in (self.worker.id, ANY_WORKER):
            self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.queue_poll_s)
            self._wake.clear()
            if self._stop.is_set() or not self.worker.lease_ok:
                continue
            room = self._accepting and self.manager.live_count < self.settings.max_sessions
            try:
                claimed = self.calls.claim(self.worker.id, room=room)
            except psycopg.Error as exc:
                logger.warning("cannot take session calls now: {}", exc)
                continue
            for call in claimed:
                threading.Thread(
                    target=self._answer, args=(call,), name=f"call-{call.id}", daemon=True
                ).start()

    def _answer(self, call: Call) -> None:
        try:
            self._dispatch(call)
        except AiDataAgentError as exc:
            self._fail(call, exc.code or "internal", exc.message, _detail(exc))
        except Exception as exc:
            logger.opt(exception=exc).error("session call {} failed: {}", call.kind, exc)
            self._fail(call, "internal", "internal error; see the worker's log")

    def _fail(self, call: Call, code: str, message: str, detail: str | None = None) -> None:
        try:
            self.calls.failed(call.id, code, message, detail)
        except psycopg.Error as exc:
            logger.error("cannot record the failure of session call {}: {}", call.id, exc)

    def _dispatch(self, call: Call) -> None:
        manager, sid, args = self.manager, call.session_id, json.loads(call.args)
        answers: dict[str, Callable[[], tuple[str | None, bytes | None]]] = {
            "create": lambda: (
                manager.create(
                    SessionRequest.model_validate_json(call.args), tenant=call.tenant
                ).model_dump_json(),
                None,
            ),
            "interrupt": lambda: (json.dumps({"interrupted": manager.interrupt(sid)}), None),
            "restart": lambda: (manager.restart(sid).model_dump_json(), None),
            "packages": lambda: (
                manager.install(sid, list(args["requirements"])).model_dump_json(),
                None,
            ),
            "upload": lambda: (
                json.dumps({"path": manager.upload(sid, str(args["path"]), call.payload or b"")}),
                None,
            ),
            "download": lambda: (None, manager.download(sid, str(args["path"]))),
            "files": lambda: (FILES.dump_json(manager.files(sid)).decode(), None),
            "close": lambda: (self._close(sid), None),
            "checkpoint": lambda: (manager.checkpoint(sid).model_dump_json(), None),
            "pause": lambda: (manager.pause(sid).model_dump_json(), None),
            "resume": lambda: (manager.resume(sid).model_dump_json(), None),
            "fork": lambda: (
                manager.fork(
                    sid, ForkRequest.model_validate_json(call.args), tenant=call.tenant
                ).model_dump_json(),
                None,
            ),
            "promote": lambda: (
                manager.promote(
                    sid, str(args["tenant"]), str(args["name"]), list(args["paths"])
                ).model_dump_json(),
                None,
            ),
        }
        if call.kind == "cell":
            self._cell(call)
            return
        if call.kind not in answers:
            raise NotFound(f"unknown session call {call.kind!r}")
        result, data = answers[call.kind]()
        self.calls.done(call.id, result, data)

    def _close(self, session_id: str) -> str:
        info = self.manager.close(session_id)
        if info is None:
            raise NotFound(f"no session with id {session_id[:64]!r}")
        return info.model_dump_json()

    def _cell(self, call: Call) -> None:
        handle = self.manager.submit_cell(
            call.session_id, CellRequest.model_validate_json(call.args)
        )
        topic = f"{call.session_id}/{handle.count}"
        self.calls.started(call.id, n=handle.count)
        asyncio.run(self._relay(handle, topic))
        handle.wait()
        self.worker.pump.flush(topic)  # every event is written before the row says done
        if handle.error is not None:
            raise handle.error
        assert handle.result is not None
        self.calls.done(call.id, handle.result.model_dump_json())

    async def _relay(self, handle: CellHandle, topic: str) -> None:
        async for name, data in handle.events.follow():
            self.worker.pump.publish(topic, name, data)


def _detail(error: AiDataAgentError) -> str | None:
    """What an API node needs beyond the code and message to answer as one node does: a
    quota's name, limit and use (JSON of the error body's fields)."""
    if not isinstance(error, QuotaExceeded):
        return None
    detail = ErrorDetail(
        code=error.default_code, message="", quota=error.quota, limit=error.limit, used=error.used
    )
    return detail.model_dump_json(exclude_none=True)
