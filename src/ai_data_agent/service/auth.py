"""Bearer-token authentication for ``/v1`` and ``/metrics``.

    auth = TokenAuth(settings)
    auth.verify("Bearer s3cret")       # raises ApiError(401) unless accepted

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

from ai_data_agent.service.http_errors import ApiError
from ai_data_agent.settings import Settings

__all__ = ["TokenAuth"]

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ai-data-agent"'}


class TokenAuth:
    """Checks ``Authorization`` headers against the settings' accepted tokens."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.enabled = bool(settings.api_tokens) or settings.api_token_file is not None

    def verify(self, authorization: str | None) -> None:
        """Accept or refuse one request's ``Authorization`` header.

        Raises:
            ApiError: 401 ``unauthorized`` (missing, malformed or wrong token), or
                503 ``not_ready`` when the token file cannot be read.
        """
        if not self.enabled:
            return
        scheme, _, presented = (authorization or "").partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not presented:
            raise ApiError(
                401, "unauthorized", "missing bearer token (Authorization: Bearer <token>)",
                headers=CHALLENGE,
            )  # fmt: skip
        try:
            accepted = self._settings.accepted_tokens()
        except (OSError, UnicodeDecodeError) as exc:
            logger.error("cannot read the API token file: {}", exc)
            raise ApiError(503, "not_ready", "the daemon cannot read its token file") from exc
        candidate = presented.encode()
        # No early exit: the time taken says nothing about which token came close.
        matched = False
        for token in accepted:
            matched |= hmac.compare_digest(candidate, token.encode())
        if not matched:
            raise ApiError(401, "unauthorized", "wrong bearer token", headers=CHALLENGE)
