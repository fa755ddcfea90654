"""The three shapes of an upload, read as streams into an `Ingest`.

    read_file(ingest, "sales.csv", chunks)      # application/octet-stream: one file
    read_tar(ingest, chunks)                     # application/x-tar (gzip, bzip2, xz too)
    read_multipart(ingest, chunks, boundary)     # multipart/form-data: one "files" part a file

``chunks`` is the request body as it arrives (any sizes). A tar is read with
`tarfile` in stream mode (``r|*``), member by member, and each member is
checked before a byte of it is kept: regular files and directories only (no
symlink, hardlink, device, FIFO or sparse file), names by the rule of
`Ingest.check_name` (a leading ``./`` aside, as ``tar -C dir .`` writes it),
and at most twice the file cap of members. Its metadata headers (long names,
pax records) are capped too, since `tarfile` reads each one whole. A multipart
body is parsed as it streams (python-multipart), never spooled: every part is
a ``files`` part whose filename is the file's path. Every refusal names the entry.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Self

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

from ai_data_agent.errors import RequestRejected
from ai_data_agent.service.datasets.ingest import IncomingFile, Ingest

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["FILES_PART", "ChunkFile", "read_file", "read_multipart", "read_tar"]

FILES_PART = "files"
READ_CHUNK = 1024 * 1024
MAX_META_BYTES = 64 * 1024  # a pax header or GNU long name, read whole by tarfile
META_TYPES = frozenset(
    {tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE}
    | {tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK}
)
KINDS = {
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.LNKTYPE: "a hard link",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
    tarfile.GNUTYPE_SPARSE: "a sparse file",
}


class ChunkFile(io.RawIOBase):
    """A read-only, unseekable file over an iterator of chunks (what `tarfile` streams from)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks = iter(chunks)
        self._chunk = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        while not self._chunk:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._chunk = memoryview(chunk)
        size = min(len(target), len(self._chunk))
        target[:size] = self._chunk[:size]
        self._chunk = self._chunk[size:]
        return size


def read_file(ingest: Ingest, path: str, chunks: Iterable[bytes]) -> None:
    ingest.add(path, chunks, what=f"file {path[:200]!r}")


class _CheckedTarInfo(tarfile.TarInfo):
    """Refuses a metadata header larger than `MAX_META_BYTES` before tarfile reads it whole."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        info = super().frombuf(buf, encoding, errors)
        if info.type in META_TYPES and info.size > MAX_META_BYTES:
            raise RequestRejected(
                "tar", f"a metadata header of {info.size} bytes (at most {MAX_META_BYTES})"
            )
        return info


def _read(handle: IO[bytes]) -> Iterator[bytes]:
    while chunk := handle.read(READ_CHUNK):
        yield chunk


def _member_name(member: tarfile.TarInfo) -> str:
    name = member.name
    while name.startswith("./"):
        name = name[2:]
    return name


def _members(archive: tarfile.TarFile, limit: int) -> Iterator[tarfile.TarInfo]:
    count = 0
    try:
        for member in archive:
            count += 1
            if count > limit:
                raise RequestRejected("tar", f"more than {limit} entries")
            yield member
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise RequestRejected("tar", f"not a readable tar stream: {exc}") from exc


def read_tar(ingest: Ingest, chunks: Iterable[bytes]) -> None:
    """Every member of a tar stream into ``ingest``.

    Raises:
        RequestRejected: a member that is not a file or directory, a bad name,
            a stream that is not a tar; `RequestTooLarge` over a cap.
    """
    source = ChunkFile(chunks)
    try:
        archive = tarfile.open(fileobj=source, mode="r|*", tarinfo=_CheckedTarInfo)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise RequestRejected("tar", f"not a readable tar stream: {exc}") from exc
    with archive:
        for member in _members(archive, 2 * ingest.caps.max_files + 16):
            name = _member_name(member)
            what = f"tar entry {member.name[:200]!r}"
            if member.isdir():
                if name not in ("", "."):
                    ingest.add_dir(name, what=what)
                continue
            kind = KINDS.get(member.type)
            if kind is not None or not member.isreg():
                raise RequestRejected(what, f"is {kind or 'not a regular file'}; only files")
            handle = archive.extractfile(member)
            assert handle is not None  # a regular member always has one
            ingest.add(name, _read(handle), what=what)
    # The archive's end is not the body's: read to the end, so that a body cut short
    # (the client gone) fails the upload rather than passing for a shorter archive.
    while source.read(READ_CHUNK):
        pass


class _Parts:
    """python-multipart's callbacks for one upload: each part's bytes into its file's blob."""

    def __init__(self, ingest: Ingest) -> None:
        self.ingest = ingest
        self.headers: dict[bytes, bytes] = {}
        self.field = b""
        self.value = b""
        self.incoming: IncomingFile | None = None

    def on_part_begin(self) -> None:
        self.headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.field.lower()] = self.value
        self.field = self.value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("latin-1")
        filename = options.get(b"filename")
        if name != FILES_PART or filename is None:
            raise RequestRejected(
                f"part {name[:64]!r}",
                f"every part must be a {FILES_PART!r} part with a filename (its path)",
            )
        path = filename.decode("utf-8", errors="replace")
        self.incoming = self.ingest.begin(path, what=f"file {path[:200]!r}")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        assert self.incoming is not None  # the parser calls on_headers_finished first
        self.incoming.write(bytes(data[start:end]))

    def on_part_end(self) -> None:
        assert self.incoming is not None
        with self.incoming:
            self.incoming.commit()
        self.incoming = None

    def close(self) -> None:
        if self.incoming is not None:
            self.incoming.__exit__(None, None, None)
            self.incoming = None


def read_multipart(ingest: Ingest, chunks: Iterable[bytes], boundary: bytes) -> None:
    """Every ``files`` part of a multipart body into ``ingest``, streamed as parsed.

    Raises:
        RequestRejected: a part that is not a file, a bad name, a body that does not
            parse or ends inside a part; `RequestTooLarge` over a cap.
    """
    parts = _Parts(ingest)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": parts.on_part_begin,
            "on_header_field": parts.on_header_field,
            "on_header_value": parts.on_header_value,
            "on_header_end": parts.on_header_end,
            "on_headers_finished": parts.on_headers_finished,
            "on_part_data": parts.on_part_data,
            "on_part_end": parts.on_part_end,
        },
    )
    try:
        for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise RequestRejected("body", f"not a readable multipart body: {exc}") from exc
    finally:
        parts.close()
    if parts.incoming is not None:
        raise RequestRejected("body", "the multipart body ended inside a part")
