"""The one rule for requirement lines (requests, sessions, requirements files, prewarm sets).

    check_requirement("pandas>=2")            # -> "pandas>=2"
    check_requirement("-r other.txt")         # ValueError: pip options are not accepted
    parse_requirements_text("six\n# c\nnumpy  # pinned later\n")   # -> ["six", "numpy"]

A requirement is one PEP 508 line for the configured index: no pip options, no
direct URLs or paths, no control characters, and short.
"""

from __future__ import annotations

import re

from packaging.requirements import InvalidRequirement, Requirement

from ai_data_agent.paths import has_control_characters

__all__ = ["MAX_REQUIREMENT_LENGTH", "check_requirement", "parse_requirements_text"]

MAX_REQUIREMENT_LENGTH = 200
INLINE_COMMENT = re.compile(r"\s#")  # as pip reads requirements files


def check_requirement(line: str) -> str:
    """One PEP 508 requirement from the index: no options, URLs or paths."""
    text = line.strip()
    if not text:
        raise ValueError("empty requirement")
    if len(text) > MAX_REQUIREMENT_LENGTH:
        raise ValueError(f"requirement longer than {MAX_REQUIREMENT_LENGTH} characters")
    if has_control_characters(text):
        raise ValueError(f"requirement {text[:40]!r} contains control characters")
    if text.startswith("-"):
        raise ValueError(f"{text!r}: pip options are not accepted, only requirements")
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise ValueError(f"{text!r} is not a PEP 508 requirement: {exc}") from exc
    if req.url:
        raise ValueError(f"{text!r}: direct URL references are not accepted")
    return text


def parse_requirements_text(text: str) -> list[str]:
    """Requirement lines of a requirements.txt text: comments and blank lines dropped.

    Raises:
        ValueError: on any line that is not a plain PEP 508 requirement (options
            such as ``-r`` or ``--index-url`` included), naming the line number.
    """
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = INLINE_COMMENT.split(raw, maxsplit=1)[0].strip()
        if not line or line.startswith("#"):
            continue
        try:
            out.append(check_requirement(line))
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from exc
    return out
