"""What the tabular files of a dataset hold: columns, types, row counts and first rows.

    python3 -c "from ai_data_agent.sandbox.describe import main; main('/data/sales', 200_000)"

Run inside a sandbox over a dataset mounted read-only: it walks the mount
(links are not followed), describes each CSV, TSV, JSON lines and parquet
file, and prints one JSON object, kept under `MAX_OUTPUT` bytes
(``{"files": [...], "other_files": n, "truncated": bool}``) of at most
the bytes it is given (the run's stdout cap, less a margin). Columns and
types come from the first `SAMPLE_ROWS` rows (parquet: its footer, see
`parquet`); rows are counted over the whole file at memory speed: line
breaks are counted in large chunks, and a CSV whose quoted fields may hold
line breaks is parsed whole instead. Standard library only, Python >= 3.9.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys

from ai_data_agent.sandbox import parquet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CHUNK = 8 * 1024 * 1024
SAMPLE_BYTES = 1024 * 1024
SAMPLE_ROWS = 1000
FIRST_ROWS = 5
MAX_FILES = 50
MAX_COLUMNS = 200
MAX_VALUE = 200
EXACT_PARSE_BYTES = 64 * 1024 * 1024  # a quoted CSV up to this is parsed whole
FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
FORMATS.update({".parquet": "parquet", ".pq": "parquet"})
INTEGER = re.compile(r"^[+-]?[0-9]+$")
DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
DATETIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?")
# The order types widen in: a column is the first type all its values fit.
WIDENING = ("integer", "number", "string")


def text_type(value: str) -> str | None:
    """The type a text value reads as; None for an empty one (a missing value)."""
    if value == "":
        return None
    if INTEGER.match(value):
        return "integer"
    if value.lower() in ("true", "false"):
        return "boolean"
    if DATE.match(value):
        return "date"
    if DATETIME.match(value):
        return "datetime"
    try:
        float(value)
    except ValueError:
        return "string"
    return "number"


def json_type(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        found = text_type(value)
        return found if found in ("date", "datetime") else "string"
    return "array" if isinstance(value, list) else "object"


def merge(seen: str | None, found: str | None) -> str | None:
    if found is None or seen == found:
        return seen if found is None else found
    if seen is None:
        return found
    if seen in WIDENING and found in WIDENING:
        return WIDENING[max(WIDENING.index(seen), WIDENING.index(found))]
    if {seen, found} == {"date", "datetime"}:
        return "datetime"
    return "string"


def typed(value: str, kind: str | None) -> Any:
    """A CSV value as JSON would carry it, by its column's type; long text cut short."""
    if value == "":
        return None
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
    except ValueError:
        pass
    if kind == "boolean" and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value[:MAX_VALUE]


def count_lines(handle: Any, start: int) -> tuple[int, bool]:
    """(lines from ``start`` on that are not blank; whether a quote was seen)."""
    handle.seek(start)
    lines = blank = 0
    quoted, last = False, b"\n"
    while True:
        chunk = handle.read(CHUNK)
        if not chunk:
            break
        lines += chunk.count(b"\n")
        blank += chunk.count(b"\n\n") + (last == b"\n" and chunk[:1] == b"\n")
        quoted = quoted or b'"' in chunk
        last = chunk[-1:]
    return lines - blank + (0 if last == b"\n" else 1), quoted


def csv_rows(path: str, delimiter: str, start: int, size: int) -> tuple[int, list[str]]:
    """Data rows after the header; exact, or counted as lines (said in the notes)."""
    with open(path, "rb") as handle:
        lines, quoted = count_lines(handle, start)
    if not quoted:
        return lines, []
    if size <= EXACT_PARSE_BYTES:
        with open(path, encoding="utf-8", errors="replace", newline="") as text:
            return sum(1 for _ in csv.reader(text, delimiter=delimiter)) - 1, []
    return lines, ["rows counted as lines: a quoted field holding a line break counts twice"]


def describe_csv(path: str, kind: str) -> dict[str, Any]:
    with open(path, "rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    text = sample.decode("utf-8", errors="replace")
    delimiter = "\t" if kind == "tsv" else sniff(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, [])
    rows: list[list[str]] = []
    for row in reader:
        if len(rows) >= SAMPLE_ROWS:
            break
        if row:  # a blank line is no row
            rows.append(row)
    if len(sample) == SAMPLE_BYTES and rows:
        rows.pop()  # the sample may end inside the last row
    kinds: list[str | None] = [None] * len(header)
    for row in rows:
        for i, value in enumerate(row[: len(header)]):
            kinds[i] = merge(kinds[i], text_type(value))
    start = len(header_bytes(sample, delimiter))
    count, notes = csv_rows(path, delimiter, start, os.path.getsize(path))
    return {
        "rows": count,
        "columns": [{"name": n, "type": k or "null"} for n, k in zip(header, kinds)],
        "first_rows": [
            [typed(v, kinds[i] if i < len(kinds) else None) for i, v in enumerate(row)]
            for row in rows[:FIRST_ROWS]
        ],
        "notes": notes,
    }


def sniff(text: str) -> str:
    try:
        return csv.Sniffer().sniff(text[:65536], delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def header_bytes(sample: bytes, delimiter: str) -> bytes:
    """The bytes of the header record (quoted line breaks in it included)."""
    quotes = 0
    for i, byte in enumerate(sample):
        if byte == 34:
            quotes += 1
        elif byte == 10 and quotes % 2 == 0:
            return sample[: i + 1]
    return sample


def describe_jsonl(path: str) -> dict[str, Any]:
    names: list[str] = []
    kinds: dict[str, str | None] = {}
    first: list[dict[str, Any]] = []
    with open(path, "rb") as handle:
        for number, line in enumerate(handle):
            if number >= SAMPLE_ROWS:
                break
            if not line.strip():
                continue
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"line {number + 1} is not a JSON object")
            for key, value in record.items():
                if key not in kinds and len(names) < MAX_COLUMNS:
                    names.append(key)
                    kinds[key] = None
                if key in kinds:
                    kinds[key] = merge(kinds[key], json_type(value))
            if len(first) < FIRST_ROWS:
                first.append(record)
        lines, _ = count_lines(handle, 0)
    return {
        "rows": lines,
        "columns": [{"name": n, "type": kinds[n] or "null"} for n in names],
        "first_rows": [[clip(r.get(n)) for n in names] for r in first],
        "notes": [],
    }


def clip(value: Any) -> Any:
    if isinstance(value, str):
        return value[:MAX_VALUE]
    if isinstance(value, (dict, list)):
        return json.dumps(value)[:MAX_VALUE]
    return value


def describe_parquet(path: str) -> dict[str, Any]:
    columns, rows = parquet.read_footer(path)
    names = [name for name, _ in columns[:MAX_COLUMNS]]
    notes = []
    try:
        first = parquet.first_rows(path, names, FIRST_ROWS)
    except Exception as exc:
        first, notes = [], [f"first rows unreadable: {exc}"]
    if first is None:
        first, notes = [], ["first rows need pyarrow, which this sandbox does not have"]
    return {
        "rows": rows,
        "columns": [{"name": n, "type": k} for n, k in columns[:MAX_COLUMNS]],
        "first_rows": [
            [clip(v) if isinstance(v, (str, dict, list)) else safe(v) for v in row] for row in first
        ],
        "notes": notes,
    }


def safe(value: Any) -> Any:
    """A value JSON can carry as it is, else its text (dates, decimals, bytes)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)[:MAX_VALUE]


READERS = {"csv": lambda p: describe_csv(p, "csv"), "tsv": lambda p: describe_csv(p, "tsv")}
READERS.update({"jsonl": describe_jsonl, "parquet": describe_parquet})


def describe_file(root: str, path: str, kind: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "path": os.path.relpath(path, root).replace(os.sep, "/"),
        "format": kind,
        "size": os.path.getsize(path),
    }
    try:
        entry.update(READERS[kind](path))
    except Exception as exc:  # one bad file is described as bad; the others still are
        entry["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    return entry


def tabular(root: str) -> tuple[list[tuple[str, str]], int]:
    """(path, format) of the tabular files under ``root`` in path order, and how many others."""
    found, others = [], 0
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            lower = name.lower()
            kind = next((k for ext, k in FORMATS.items() if lower.endswith(ext)), None)
            if kind is None:
                others += 1
            else:
                found.append((os.path.join(folder, name), kind))
    return found, others


def fit(result: dict[str, Any], max_output: int) -> str:
    """The result as JSON within ``max_output``: first rows dropped from the last files first."""
    text = json.dumps(result)
    files = result["files"]
    index = len(files) - 1
    while len(text) > max_output and files:
        if index >= 0 and files[index].get("first_rows"):
            files[index]["first_rows"] = []
            index -= 1
        else:
            files.pop()
        result["truncated"] = True
        text = json.dumps(result)
    return text


def main(root: str, max_output: int) -> None:
    found, others = tabular(root)
    result: dict[str, Any] = {
        "files": [describe_file(root, path, kind) for path, kind in found[:MAX_FILES]],
        "other_files": others,
        "truncated": len(found) > MAX_FILES,
    }
    sys.stdout.write(fit(result, max_output) + "\n")
