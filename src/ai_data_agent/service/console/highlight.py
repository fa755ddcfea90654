"""Python source as HTML with its tokens marked, by the standard library's tokenizer.

    highlight("print('hi')  # greet")
    # Markup('<span class="nb">print</span><span class="p">(</span><span class="s">...')

Every piece of the source is escaped; the only markup added is ``<span class>``
around tokens (keywords ``k``, builtins ``nb``, names defined ``nf``, strings
``s``, numbers ``m``, comments ``c``, operators ``p``). Source the tokenizer
cannot read (a syntax error, say) comes back escaped and unmarked.
"""

from __future__ import annotations

import builtins
import io
import keyword
import token
import tokenize
from collections.abc import Iterator

from markupsafe import Markup, escape

__all__ = ["highlight"]

BUILTINS = frozenset(dir(builtins))
STRINGS = {token.STRING}
# f-strings arrive in pieces from Python 3.12 on.
STRINGS |= {
    getattr(token, name)
    for name in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END")
    if hasattr(token, name)
}
SPAN = Markup('<span class="{}">{}</span>')  # format() escapes what it is given
MAX_CHARS = 512 * 1024  # past this, plain text: a page must stay fast


def _kind(tok: tokenize.TokenInfo, previous: str) -> str | None:
    if tok.type in STRINGS:
        return "s"
    if tok.type == token.NUMBER:
        return "m"
    if tok.type == token.COMMENT:
        return "c"
    if tok.type == token.OP:
        return "p"
    if tok.type == token.NAME:
        if keyword.iskeyword(tok.string):
            return "k"
        if previous in ("def", "class"):
            return "nf"
        if tok.string in BUILTINS:
            return "nb"
    return None


def _offsets(source: str) -> list[int]:
    """Where each line starts in ``source`` (line numbers from 1, as the tokenizer's)."""
    starts = [0, 0]
    for line in io.StringIO(source):
        starts.append(starts[-1] + len(line))
    return starts


def _pieces(source: str) -> Iterator[Markup]:
    starts = _offsets(source)
    position = 0
    previous = ""
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        begin = starts[tok.start[0]] + tok.start[1]
        end = starts[tok.end[0]] + tok.end[1]
        kind = _kind(tok, previous)
        if kind is None or end <= begin:
            continue
        yield escape(source[position:begin])
        yield SPAN.format(kind, source[begin:end])
        position = end
        if tok.type == token.NAME:
            previous = tok.string
    yield escape(source[position:])


def highlight(source: str) -> Markup:
    if len(source) > MAX_CHARS:
        return escape(source)
    try:
        return Markup("").join(_pieces(source))
    except (tokenize.TokenError, SyntaxError):
        return escape(source)
