"""Why an install failed, in words an agent can act on, read from the installer's own output.

    install_error(section, timeout_s=300)
    # -> "no matching distribution: nonexistent-pkg was not found in the package index
    #     (check the requirement's name and version)"

The installer's message is quoted (its last error lines), with a hint where the
cause is known: a certificate the sandbox does not trust points at the CA
setting, an unknown package at its name, an unreachable index at the network.
Paths of the sandbox's own making in the quote are named as the user knows
them: the sandbox dir is the code's home (``~``), and the environment being
built in an install sandbox is ``<environment>``.
"""

from __future__ import annotations

import re

from ai_data_agent.executor.frames import InstallSection
from ai_data_agent.executor.spec import STAGE_MOUNT

__all__ = ["install_error"]

MAX_QUOTE = 600
_CAUSES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (
        re.compile(r"certificate|CERTIFICATE_VERIFY_FAILED|UnknownIssuer|SSLError", re.I),
        "the package index's TLS certificate is not trusted in the sandbox",
        "the sandbox trusts the host's CA bundle by default; behind a TLS-intercepting proxy, "
        "add the proxy's CA to it or set AI_DATA_AGENT_CA_BUNDLE to a bundle that has it",
    ),
    (
        re.compile(
            r"not found in the package registry|No matching distribution found"
            r"|Could not find a version that satisfies|No solution found",
            re.I,
        ),
        "no matching distribution",
        "check the requirement's name and version",
    ),
    (
        re.compile(r"only_binary|no wheels? (?:for|with)|sdists? (?:are|is) (?:not|dis)", re.I),
        "no wheel for this platform, and source builds are off",
        "pick a version with wheels, or let the operator set AI_DATA_AGENT_ALLOW_SDISTS",
    ),
    (
        re.compile(
            r"Temporary failure in name resolution|Name or service not known|Network is unreachable"
            r"|Connection refused|Failed to fetch|Failed to download|Could not connect|timed out",
            re.I,
        ),
        "the package index cannot be reached",
        "check the index URL and the host's network (AI_DATA_AGENT_PIP_INDEX_URL)",
    ),
)
_OUR_PATHS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"/tmp/ai_data_agent_\w+"), "~"),  # noqa: S108 (a sandbox dir: the code's HOME)
    (re.compile(re.escape(STAGE_MOUNT) + r"/env\b"), "<environment>"),
)
_ERROR_LINE = re.compile(
    r"^\s*(?:error|ERROR|\u00d7|\u2570\u2500\u25b6|cause|Caused by)[:\s]", re.M
)


def _quote(log_tail: str) -> str:
    """The installer's error lines (else its last lines), on one line, capped."""
    lines = [line.strip() for line in log_tail.splitlines() if line.strip()]
    errors = [line for line in lines if _ERROR_LINE.match(line)]
    chosen = errors[-4:] if errors else lines[-3:]
    text = " | ".join(chosen)
    for pattern, name in _OUR_PATHS:
        text = pattern.sub(name, text)
    return text if len(text) <= MAX_QUOTE else text[: MAX_QUOTE - 3] + "..."


def install_error(section: InstallSection, *, timeout_s: float) -> str:
    """The ``error`` of a run whose requirements did not install."""
    installer = section.installer or "the installer"
    if section.timed_out:
        return f"{installer} did not finish within the install timeout ({timeout_s:g} s)"
    quote = _quote(section.log_tail)
    for pattern, cause, hint in _CAUSES:
        if pattern.search(section.log_tail):
            return f"{cause}: {quote} ({hint})"
    return f"{installer} install failed: {quote}" if quote else f"{installer} install failed"
