"""Bearer-token authentication for ``/v1`` and ``/metrics``.

    auth = TokenAuth(settings)
    auth.verify("Bearer s3cret")       # raises Unauthorized (401) unless accepted

Auth is on when the operator configured tokens (``AI_DATA_AGENT_API_TOKENS`` or
``AI_DATA_AGENT_API_TOKEN_FILE``); with neither it is off (loopback dev mode;
`server.serve` refuses other addresses without ``--insecure``). A configured but
empty token file admits nobody: it never turns auth off. The file is read on
every check, so rotating a token needs no restart; `verify` is blocking for
that reason and runs in a worker thread. Tokens are compared in constant time,
against every accepted token, and never logged.
"""

from __future__ import annotations

import hmac

from loguru import logger

from ai_data_agent.errors import NotReady, Unauthorized
from ai_data_agent.settings import Settings

__all__ = ["TokenAuth"]


class TokenAuth:
    """Checks ``Authorization`` headers against the settings' accepted tokens."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.enabled = bool(settings.api_tokens) or settings.api_token_file is not None

    def verify(self, authorization: str | None) -> None:
        """Accept or refuse one request's ``Authorization`` header.

        Raises:
            Unauthorized: a missing, malformed or wrong token.
            NotReady: the token file cannot be read.
        """
        if not self.enabled:
            return
        scheme, _, presented = (authorization or "").partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not presented:
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        try:
            accepted = self._settings.accepted_tokens()
        except (OSError, UnicodeDecodeError) as exc:
            logger.error("cannot read the API token file: {}", exc)
            raise NotReady("the daemon cannot read its token file") from exc
        candidate = presented.encode()
        # No early exit: the time taken says nothing about which token came close.
        matched = False
        for token in accepted:
            matched |= hmac.compare_digest(candidate, token.encode())
        if not matched:
            raise Unauthorized("wrong bearer token")
