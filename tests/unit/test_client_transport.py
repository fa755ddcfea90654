"""`Transport` against a stub daemon (httpx.MockTransport): downloads and streams."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from ai_data_agent.client.transport import Transport
from ai_data_agent.errors import NotFound, ServerError, ServerUnreachable

BODY = b"region,units\nnorth,3\n"


class Dropped(httpx.SyncByteStream):
    """A body that stops halfway: the connection dropped."""

    def __iter__(self) -> Iterator[bytes]:
        yield BODY[:5]
        raise httpx.ReadError("connection reset")


def transport_of(response: httpx.Response) -> Transport:
    return Transport(
        "http://daemon.test",
        "s3cret",
        timeout=5.0,
        transport=httpx.MockTransport(lambda _: response),
    )


def test_a_download_is_renamed_into_place_once_size_and_hash_match(tmp_path: Path) -> None:
    target = tmp_path / "sales.csv"
    with closing(transport_of(httpx.Response(200, content=BODY))) as transport:
        saved = transport.download(
            "/f",
            target,
            what="outputs/sales.csv",
            size=len(BODY),
            sha256=hashlib.sha256(BODY).hexdigest(),
        )
    assert saved == target and target.read_bytes() == BODY
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sales.csv"]


@pytest.mark.parametrize(
    ("size", "sha256"),
    [(len(BODY) - 1, hashlib.sha256(BODY).hexdigest()), (len(BODY), "0" * 64)],
    ids=["longer than announced", "another hash"],
)
def test_a_download_that_differs_from_its_record_leaves_nothing(
    tmp_path: Path, size: int, sha256: str
) -> None:
    with closing(transport_of(httpx.Response(200, content=BODY))) as transport:
        with pytest.raises(ServerError, match=r"outputs/sales\.csv arrived with a different size"):
            transport.download(
                "/f", tmp_path / "sales.csv", what="outputs/sales.csv", size=size, sha256=sha256
            )
    assert list(tmp_path.iterdir()) == []


def test_a_connection_dropped_mid_download_is_unreachable_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    with closing(transport_of(httpx.Response(200, stream=Dropped()))) as transport:
        with pytest.raises(ServerUnreachable, match="ReadError"):
            transport.download("/f", tmp_path / "a", what="a", size=len(BODY), sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_a_stream_refused_raises_the_daemons_error_class() -> None:
    body = {"error": {"code": "not_found", "message": "no run r1"}}
    with closing(transport_of(httpx.Response(404, json=body))) as transport:
        with pytest.raises(NotFound, match="no run r1") as caught:
            with transport.stream("GET", "/v1/runs/r1/events", run_id="r1"):
                pass
    assert caught.value.run_id == "r1"


def test_a_stream_that_drops_while_read_is_unreachable() -> None:
    with closing(transport_of(httpx.Response(200, stream=Dropped()))) as transport:
        with pytest.raises(ServerUnreachable, match=r"cannot reach http://daemon\.test"):
            with transport.stream("GET", "/events") as response:
                b"".join(response.iter_bytes())
