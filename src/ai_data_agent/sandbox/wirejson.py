"""JSON for the runner's wire from `json`'s C accelerator alone, without the `json` package.

    loads(b'{"k": "go"}')      # {'k': 'go'}; ValueError when it is not one JSON document
    dumps({"k": "result"})     # '{"k": "result"}', ASCII only, as json.dumps writes it

`json` imports `re` and `enum`: about 15 ms of CPU in a fresh interpreter in a
container, which every run's runner would pay. `_json`, the C module that
`json` itself uses, parses and writes the same documents without them. An
interpreter built without `_json` uses `json`. Only malformed input makes the
C parser import `json.decoder`, for its error type (a ValueError).
Standard library only, Python >= 3.9.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: every start counts
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it
    _json = None  # type: ignore[assignment]

WHITESPACE = " \t\n\r"
CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class _Context:
    """What `_json.make_scanner` reads off a `json.JSONDecoder`: its defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = CONSTANTS.__getitem__


_scan = _json.make_scanner(_Context()) if _json is not None else None  # type: ignore[arg-type]


def loads(data: bytes | bytearray | str) -> Any:
    """The JSON document in ``data`` (UTF-8 when bytes), as `json.loads` reads it.

    Raises:
        ValueError: not exactly one JSON document (or one nested too deep to read).
    """
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    if _scan is None:  # pragma: no cover
        import json

        return json.loads(text)
    start = len(text) - len(text.lstrip(WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as exc:
        raise ValueError(f"expecting a JSON value at char {exc.value}") from None
    except RecursionError:  # what the code writes may nest without end
        raise ValueError("JSON nested too deep") from None
    if text[end:].strip(WHITESPACE):
        raise ValueError(f"extra data after the JSON value at char {end}")
    return value


def _refuse(value: object) -> None:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=True)``, byte for byte.

    Raises:
        TypeError: ``value`` holds something JSON has no form for.
        ValueError: ``value`` contains itself.
    """
    if _json is None:  # pragma: no cover
        import json

        return json.dumps(value, ensure_ascii=True)
    # A new encoder per call: its record of the containers being written is its own.
    encoder = _json.make_encoder(
        {}, _refuse, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
    return "".join(encoder(value, 0))
