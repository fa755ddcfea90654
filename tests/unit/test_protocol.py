"""The controller's side of the runner protocol (executor/protocol.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from ai_data_agent.executor.protocol import FrameReader, encode_message, new_token

TOKEN = "a" * 32


def line(frame: object, token: str = TOKEN) -> bytes:
    return token.encode() + b" " + json.dumps(frame).encode() + b"\n"


def test_new_token_is_random_hex() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(len(t) == 32 and int(t, 16) >= 0 for t in tokens)


def test_encode_message_is_length_prefixed_ascii_json() -> None:
    job = {"token": "t", "code": "print('\u00e9\u20ac')"}
    data = encode_message(job)
    header, body = data.split(b"\n", 1)
    assert int(header) == len(body)
    assert body.isascii()
    assert json.loads(body) == job


def test_frames_with_the_token_are_parsed() -> None:
    reader = FrameReader(TOKEN)
    frames = reader.feed(line({"k": "phase", "phase": "ready"}) + line({"k": "out", "d": "x"}))
    assert frames == [{"k": "phase", "phase": "ready"}, {"k": "out", "d": "x"}]
    assert (reader.noise_lines, reader.bad_frames) == (0, 0)


@pytest.mark.parametrize(
    "noise",
    [
        b"hello from user code\n",
        b'{"k": "result"}\n',  # no token at all
        line({"k": "result"}, token="b" * 32),  # another token
        (TOKEN + "x").encode() + b' {"k": "result"}\n',  # the token as a prefix of a word
        TOKEN.encode() + b'{"k": "result"}\n',  # no space after the token
        b"\n",
    ],
)
def test_lines_without_the_token_are_counted_as_noise(noise: bytes) -> None:
    reader = FrameReader(TOKEN)
    assert reader.feed(noise) == []
    assert reader.noise_lines == 1
    assert reader.bad_frames == 0


def test_noise_between_frames_does_not_disturb_them() -> None:
    reader = FrameReader(TOKEN)
    data = b"junk\n" + line({"k": "a"}) + b"more junk\n" + line({"k": "b"})
    assert [f["k"] for f in reader.feed(data)] == ["a", "b"]
    assert reader.noise_lines == 2


def test_frames_split_across_feeds_byte_by_byte() -> None:
    reader = FrameReader(TOKEN)
    data = line({"k": "out", "d": "h\u00e9llo"}) + line({"k": "phase", "phase": "running"})
    frames = []
    for i in range(len(data)):
        frames += reader.feed(data[i : i + 1])
    assert frames == [{"k": "out", "d": "h\u00e9llo"}, {"k": "phase", "phase": "running"}]


def test_a_partial_line_waits_for_its_newline() -> None:
    reader = FrameReader(TOKEN)
    data = line({"k": "result"})
    assert reader.feed(data[:-1]) == []
    assert reader.feed(b"\n") == [{"k": "result"}]


def test_an_over_long_line_is_dropped_up_to_its_end() -> None:
    reader = FrameReader(TOKEN, max_frame_bytes=64)
    long_frame = line({"k": "out", "d": "x" * 200})
    assert reader.feed(long_frame[:100]) == []  # over the cap without a newline
    assert reader.bad_frames == 1
    # The rest of that line is skipped; the next frame is read normally.
    frames = reader.feed(long_frame[100:] + line({"k": "ok"}))
    assert frames == [{"k": "ok"}]
    assert reader.noise_lines == 0


def test_over_long_line_memory_is_bounded() -> None:
    reader = FrameReader(TOKEN, max_frame_bytes=1024)
    for _ in range(100):
        reader.feed(b"y" * 1000)
    assert len(reader._buffer) <= 2 * 1024
    assert reader.feed(b"\n" + line({"k": "ok"})) == [{"k": "ok"}]


def test_an_over_long_line_in_one_chunk_is_dropped_too() -> None:
    reader = FrameReader(TOKEN, max_frame_bytes=64)
    frames = reader.feed(line({"k": "out", "d": "x" * 200}) + line({"k": "ok"}))
    assert frames == [{"k": "ok"}]


@pytest.mark.parametrize(
    "payload",
    [
        b"[1, 2, 3]",
        b'"a string"',
        b"42",
        b"null",
        b'{"no_kind": 1}',
        b'{"k": 1}',
        b'{"k": null}',
        b'{"k": "out", "d": NaN}',
        b'{"k": "out", "d": Infinity}',
        b'{"k": "out", "d": -Infinity}',
        b'{"k": "out", "d": "unterminated}',
        b"{'k': 'python-literal'}",
        b"",
    ],
)
def test_bad_frames_are_rejected_and_counted(payload: bytes) -> None:
    reader = FrameReader(TOKEN)
    assert reader.feed(TOKEN.encode() + b" " + payload + b"\n" + line({"k": "next"})) == [
        {"k": "next"}
    ]
    assert reader.bad_frames == 1
    assert reader.noise_lines == 0


def _fastest(action: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize("line_bytes", [1 << 20, 16 << 20], ids=["1-MiB-lines", "over-long"])
def test_a_flood_of_lines_that_are_not_frames_is_read_at_memory_speed(line_bytes: int) -> None:
    """Lines without the token, or over the cap, are dropped as they arrive: reading
    them costs about what finding their newlines does, never a rescan of a buffer."""
    line = b"x" * (line_bytes - 1) + b"\n"
    data = (line * (64 * 2**20 // line_bytes))[: 64 * 2**20]
    chunks = [data[i : i + 16384] for i in range(0, len(data), 16384)]

    def read() -> None:
        reader = FrameReader(TOKEN)
        for chunk in chunks:
            assert reader.feed(chunk) == []

    scan = _fastest(lambda: [chunk.find(b"\n") for chunk in chunks])

    assert _fastest(read) < 8 * scan + 0.05


@pytest.mark.parametrize("step", [1, 7, 10_000])
def test_raw_bytes_follow_the_frame_that_announces_them(step: int) -> None:
    payload = b"\n\x00" + line({"k": "fake"}) + bytes(range(256)) + b"no newline at the end"
    data = (
        line({"k": "a"})
        + line({"k": "ckpt_data", "raw": len(payload)})
        + payload
        + line({"k": "ckpt_data", "raw": 0})
        + line({"k": "b"})
    )
    reader = FrameReader(TOKEN)
    frames = []
    for i in range(0, len(data), step):
        frames += reader.feed(data[i : i + step])
    assert frames == [
        {"k": "a"},
        {"k": "ckpt_data", "raw": payload},
        {"k": "ckpt_data", "raw": b""},
        {"k": "b"},
    ]
    assert reader.noise_lines == 0 and reader.bad_frames == 0


@pytest.mark.parametrize("size", [-1, "10", 5 * 1024 * 1024, True])
def test_a_raw_size_that_is_not_one_announces_nothing(size: object) -> None:
    reader = FrameReader(TOKEN)
    frames = reader.feed(line({"k": "ckpt_data", "raw": size}) + line({"k": "b"}))
    assert frames == [{"k": "ckpt_data", "raw": None}, {"k": "b"}]
