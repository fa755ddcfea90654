"""The body caps' lingering close, on scripted ASGI messages (the real daemon: integration)."""

from __future__ import annotations

import json

import anyio
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ai_data_agent.service import body_limit
from ai_data_agent.service.body_limit import BodyCaps, BodyLimitMiddleware, discard_rest

pytestmark = pytest.mark.anyio

PIECE = b"x" * 1000


class Scripted:
    """A receive() giving ``messages``, then ``then_forever`` again and again, else blocking."""

    def __init__(self, messages: list[Message], *, then_forever: Message | None = None) -> None:
        self.pending = iter(messages)
        self.then_forever = then_forever
        self.calls = 0

    async def __call__(self) -> Message:
        self.calls += 1
        for message in self.pending:
            return message
        if self.then_forever is None:
            await anyio.sleep_forever()
        await anyio.sleep(0)
        assert self.then_forever is not None
        return self.then_forever


def more(body: bytes = PIECE) -> Message:
    return {"type": "http.request", "body": body, "more_body": True}


LAST: Message = {"type": "http.request", "body": PIECE, "more_body": False}
GONE: Message = {"type": "http.disconnect"}


async def test_discard_reads_to_the_end_of_the_body() -> None:
    assert await discard_rest(Scripted([more(), more(), LAST]), 10_000, 5) == (3000, "ended")


async def test_discard_stops_when_the_client_goes_away() -> None:
    assert await discard_rest(Scripted([more(), GONE]), 10_000, 5) == (1000, "client gone")


async def test_discard_stops_past_the_byte_bound() -> None:
    receive = Scripted([], then_forever=more())
    assert await discard_rest(receive, 5000, 5) == (6000, "byte bound")


async def test_discard_stops_at_the_time_bound() -> None:
    async def trickle() -> Message:
        await anyio.sleep(0.01)
        return more(b"x")

    with anyio.fail_after(2):
        discarded, ending = await discard_rest(trickle, 10**9, 0.2)
    assert ending == "time bound" and 5 < discarded < 40


async def test_discard_stops_when_nothing_comes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(body_limit, "LINGER_IDLE_S", 0.05)
    with anyio.fail_after(2):
        assert await discard_rest(Scripted([more()]), 10**9, 30) == (1000, "idle")


# -- the middleware's answer ---------------------------------------------------------
JSON = (b"content-type", b"application/json")
MULTIPART = (b"content-type", b"multipart/form-data; boundary=x")
CHUNKED = (b"transfer-encoding", b"chunked")


def middleware(app: ASGIApp, cap: int = 2000, discard_bytes: int = 10_000, discard_s: float = 5):
    caps = BodyCaps(cap, cap, cap, discard_bytes=discard_bytes, discard_s=discard_s)
    return BodyLimitMiddleware(app, caps)


def scope(headers: list[tuple[bytes, bytes]], method: str = "POST") -> Scope:
    return {"type": "http", "method": method, "path": "/v1/runs", "headers": headers}


async def never_called(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("the app must not run for a body over the cap")


async def answer(
    app: BodyLimitMiddleware, headers: list[tuple[bytes, bytes]], receive: Scripted, **kw: str
) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    with anyio.fail_after(5):
        await app(scope(headers, **kw), receive, send)
    return sent


def closes(start: Message) -> bool:
    return (b"connection", b"close") in start["headers"]


async def test_413_goes_out_first_then_the_rest_is_read_then_the_answer_completes() -> None:
    receive = Scripted([more(), more(), more(), more(), LAST])

    sent = await answer(middleware(never_called), [JSON, CHUNKED], receive)

    start, first, last = sent
    assert start["status"] == 413 and closes(start)
    assert first["more_body"] is True
    assert json.loads(first["body"])["error"]["code"] == "payload_too_large"
    assert last == {"type": "http.response.body", "body": b"", "more_body": False}
    assert receive.calls == 5  # the whole body was read


async def test_a_declared_body_within_the_discard_bound_is_read_to_its_end() -> None:
    receive = Scripted([more(), more(), LAST])

    sent = await answer(middleware(never_called), [JSON, (b"content-length", b"3000")], receive)

    assert [m.get("more_body", False) for m in sent[1:]] == [True, False]
    assert receive.calls == 3


@pytest.mark.parametrize(
    ("declared", "discard_bytes", "discard_s"),
    [(b"20000", 10_000, 5.0), (b"3000", 0, 5.0), (b"3000", 10_000, 0.0)],
    ids=["declared-past-the-bound", "no-byte-budget", "no-time-budget"],
)
async def test_no_lingering_when_the_rest_is_out_of_bounds(
    declared: bytes, discard_bytes: int, discard_s: float
) -> None:
    app = middleware(never_called, discard_bytes=discard_bytes, discard_s=discard_s)
    receive = Scripted([], then_forever=more())

    sent = await answer(app, [JSON, (b"content-length", declared)], receive)

    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert closes(sent[0]) and sent[1].get("more_body", False) is False
    assert b"payload_too_large" in sent[1]["body"]
    assert receive.calls == 0


async def test_a_body_that_ends_at_the_cap_overflow_needs_no_lingering() -> None:
    receive = Scripted([more(), more(), LAST])

    sent = await answer(middleware(never_called), [JSON, CHUNKED], receive)

    assert [m.get("more_body", False) for m in sent[1:]] == [False]
    assert receive.calls == 3


async def early_401(scope: Scope, receive: Receive, send: Send) -> None:
    """A route that answers after one piece of a streamed body (a 401, a 413 while counting)."""
    await receive()
    await send({"type": "http.response.start", "status": 401, "headers": []})
    await send({"type": "http.response.body", "body": b"no", "more_body": False})


async def test_a_routes_early_answer_to_a_streamed_body_also_waits_for_the_body() -> None:
    receive = Scripted([more(), more(), more(), LAST])

    sent = await answer(middleware(early_401, cap=10**6), [MULTIPART, CHUNKED], receive)

    start, first, last = sent
    assert start["status"] == 401 and closes(start)
    assert first == {"type": "http.response.body", "body": b"no", "more_body": True}
    assert last["more_body"] is False
    assert receive.calls == 4


async def test_benign_twin_a_streamed_body_read_whole_keeps_the_connection() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sent = await answer(middleware(app, cap=10**6), [MULTIPART, CHUNKED], Scripted([more(), LAST]))

    assert sent[0] == {"type": "http.response.start", "status": 200, "headers": []}
    assert sent[1:] == [{"type": "http.response.body", "body": b"ok"}]


async def test_benign_twin_a_request_without_a_body_is_answered_as_is() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sent = await answer(middleware(app), [], Scripted([LAST]), method="GET")

    assert not closes(sent[0]) and sent[1:] == [{"type": "http.response.body", "body": b"ok"}]


async def test_benign_twin_a_body_within_the_cap_reaches_the_app_whole() -> None:
    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(await receive())

    await answer(middleware(app, cap=5000), [JSON, CHUNKED], Scripted([more(), more(), LAST]))

    assert seen == [{"type": "http.request", "body": PIECE * 3, "more_body": False}]
