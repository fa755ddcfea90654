"""A parquet file's schema and row count from its footer, read with the standard library.

    columns, rows = read_footer("/data/sales/2024.parquet")   # [("region", "string"), ...], 1200
    first_rows(path, [name for name, _ in columns], 5)         # needs pyarrow; None without it

A parquet file ends with its metadata (a Thrift ``FileMetaData`` in the
compact protocol), its length (4 bytes, little-endian) and ``PAR1``. The
metadata's first fields are the schema (a flattened tree of
``SchemaElement``s) and the number of rows; they are decoded here by a small
generic reader of the compact protocol that stops after them. The first rows
are inside compressed pages (snappy, zstd, ...) that the standard library
cannot read: they come from pyarrow when the sandbox has it. Runs inside a
sandbox (`describe`); standard library only, Python >= 3.9.
"""

from __future__ import annotations

import importlib
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

MAGIC = b"PAR1"
MAX_FOOTER = 64 * 1024 * 1024
MAX_DEPTH = 32
PHYSICAL = ["boolean", "int32", "int64", "int96", "float", "double", "binary", "fixed"]
# ConvertedType values (parquet.thrift) that say more than the physical type.
CONVERTED = {0: "string", 4: "string", 5: "decimal", 6: "date", 7: "time", 8: "time"}
CONVERTED.update({9: "datetime", 10: "datetime", 19: "json"})
CONVERTED.update(dict.fromkeys(range(11, 19), "integer"))
# LogicalType union members (their field ids) by what they mean.
LOGICAL = {1: "string", 4: "string", 5: "decimal", 6: "date", 7: "time", 8: "datetime"}
LOGICAL.update({12: "json", 14: "uuid"})


class ThriftReader:
    """The compact protocol over bytes: structs as {field id: value}."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise ValueError("truncated metadata")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            byte = self.byte()
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise ValueError("bad varint")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise ValueError("truncated metadata")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def value(self, kind: int, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError("metadata nested too deep")
        if kind in (1, 2):
            return kind == 1
        if kind == 3:
            return struct.unpack("<b", self.take(1))[0]
        if kind in (4, 5, 6):
            return self.zigzag()
        if kind == 7:
            return struct.unpack("<d", self.take(8))[0]
        if kind == 8:
            return self.take(self.varint())
        if kind in (9, 10):
            return self.list(depth)
        if kind == 11:
            return self.map(depth)
        if kind == 12:
            return self.struct(depth + 1)
        raise ValueError(f"unknown thrift type {kind}")

    def list(self, depth: int) -> list[Any]:
        header = self.byte()
        size, kind = header >> 4, header & 0x0F
        if size == 15:
            size = self.varint()
        if kind in (1, 2):  # booleans in a list are one byte each
            return [self.byte() == 1 for _ in range(size)]
        return [self.value(kind, depth + 1) for _ in range(size)]

    def map(self, depth: int) -> dict[Any, Any]:
        size = self.varint()
        if not size:
            return {}
        kinds = self.byte()
        return {
            self.value(kinds >> 4, depth + 1): self.value(kinds & 0x0F, depth + 1)
            for _ in range(size)
        }

    def struct(self, depth: int = 0, stop_after: int | None = None) -> dict[int, Any]:
        fields: dict[int, Any] = {}
        last = 0
        while True:
            header = self.byte()
            if header == 0:
                return fields
            delta, kind = header >> 4, header & 0x0F
            last = last + delta if delta else self.zigzag()
            fields[last] = self.value(kind, depth)
            if stop_after is not None and last >= stop_after:
                return fields


def _footer(handle: BinaryIO) -> bytes:
    handle.seek(0, 2)
    size = handle.tell()
    if size < 12:
        raise ValueError("too small to be parquet")
    handle.seek(size - 8)
    length_bytes, magic = handle.read(4), handle.read(4)
    length = struct.unpack("<I", length_bytes)[0]
    if magic != MAGIC or length > min(size - 12, MAX_FOOTER):
        raise ValueError("not a parquet file (no PAR1 footer)")
    handle.seek(size - 8 - length)
    return handle.read(length)


def _type_of(element: dict[int, Any]) -> str:
    logical = element.get(10)
    if isinstance(logical, dict) and logical:
        member = min(logical)
        if member == 10:  # INTEGER
            return "integer"
        if member in LOGICAL:
            return LOGICAL[member]
    converted = element.get(6)
    if converted in CONVERTED:
        return CONVERTED[converted]
    physical = element.get(1)
    if physical in (1, 2):
        return "integer"
    if physical in (4, 5):
        return "number"
    if physical == 3:
        return "datetime"  # INT96: legacy timestamps
    if isinstance(physical, int) and 0 <= physical < len(PHYSICAL):
        return PHYSICAL[physical]
    return "unknown"


def _leaves(schema: list[dict[int, Any]]) -> list[tuple[str, str]]:
    """The leaf columns of the flattened schema tree (its root first), dotted paths."""
    columns: list[tuple[str, str]] = []
    stack: list[tuple[str, int]] = []  # (path of a group, children still to come)
    for element in schema[1:]:
        name = element.get(4, b"?").decode("utf-8", "replace")
        path = ".".join([p for p, _ in stack] + [name])
        children = element.get(5) or 0
        if stack:
            parent, left = stack[-1]
            stack[-1] = (parent, left - 1)
        if children:
            stack.append((name, children))
        else:
            columns.append((path, _type_of(element)))
        while stack and stack[-1][1] == 0:
            stack.pop()
    return columns


def read_footer(path: str) -> tuple[list[tuple[str, str]], int]:
    """(columns as (name, type), number of rows). Raises ValueError for a file that is
    not parquet or whose metadata does not decode."""
    with open(path, "rb") as handle:
        meta = ThriftReader(_footer(handle)).struct(stop_after=3)
    schema = meta.get(2)
    if not isinstance(schema, list) or not schema:
        raise ValueError("parquet metadata without a schema")
    return _leaves(schema), int(meta.get(3) or 0)


def first_rows(path: str, columns: list[str], count: int) -> list[list[Any]] | None:
    """The first ``count`` rows (values in column order), or None without pyarrow."""
    try:  # pyarrow only where the describe run asked for it
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError:
        return None
    handle = pq.ParquetFile(path)
    for batch in handle.iter_batches(batch_size=count):
        table = batch.to_pylist()
        return [[row.get(name.split(".")[0]) for name in columns] for row in table[:count]]
    return []
