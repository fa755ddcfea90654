"""`sandbox.wirejson`: the runner's JSON, from `json`'s C accelerator alone, reads and
writes what `json` does, and refuses what it refuses."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import pytest

from ai_data_agent.sandbox import wirejson
from ai_data_agent.sandbox.bootstrap import source_of

VALUES: list[Any] = [
    {"k": "result", "execute": {"exit_code": 0, "duration_s": 0.0123, "signal": None}},
    {"k": "out", "s": "stdout", "d": 'caf\u00e9 \u2603 \U0001f600 "quoted" \\ \n\t\x00'},
    [1, -2, 2**70, 1.5, -0.0, 1e300, True, False, None, [], {}],
    "just a string",
    {"1": {"2": [{"3": []}]}},
]


@pytest.mark.parametrize("value", VALUES)
def test_it_writes_what_json_writes_and_reads_it_back(value: Any) -> None:
    text = wirejson.dumps(value)
    assert text == json.dumps(value, ensure_ascii=True)
    assert text.isascii()
    assert wirejson.loads(text.encode()) == value == wirejson.loads(text)


def test_non_finite_numbers_round_trip_as_json_writes_them() -> None:
    text = wirejson.dumps([math.inf, -math.inf])
    assert text == "[Infinity, -Infinity]"
    assert wirejson.loads(text) == [math.inf, -math.inf]
    assert math.isnan(wirejson.loads("NaN"))


def test_surrounding_whitespace_is_allowed() -> None:
    assert wirejson.loads(b' \n\t{"a": [1, 2]}\r\n ') == {"a": [1, 2]}


@pytest.mark.parametrize(
    "data",
    [b"", b"   ", b"{", b"{}x", b'{"a": 1} {}', b"[1,]", b"{'a': 1}", b'"\\x"', b"\xff", b"nul"],
)
def test_anything_but_one_document_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(data)  # the reference refuses it too
    with pytest.raises(ValueError):
        wirejson.loads(data)


def test_a_document_nested_too_deep_is_a_value_error_too() -> None:
    with pytest.raises(ValueError, match="too deep"):
        wirejson.loads("[" * 100_000 + "]" * 100_000)


def test_what_json_cannot_write_is_refused() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        wirejson.dumps({"a": object()})
    with pytest.raises(TypeError):
        wirejson.dumps({(1, 2): 3})
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(ValueError, match="Circular"):
        wirejson.dumps(looped)
    assert wirejson.dumps([looped[:0], {"a": 1}]) == '[[], {"a": 1}]'  # no state kept


def test_it_imports_neither_json_nor_re() -> None:
    script = (
        f"namespace = {{}}\nexec({source_of('wirejson')!r}, namespace)\nimport sys\n"
        "namespace['loads'](namespace['dumps']({'a': [1.5, None]}))\n"
        "print(sorted({'json', 're', 'enum'} & set(sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script], capture_output=True, timeout=30, check=False
    )
    assert (proc.returncode, proc.stdout) == (0, b"[]\n"), proc.stderr.decode()
