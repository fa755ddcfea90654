"""Who is looking: a token presented at login becomes a `Principal`, checked again on every request.

    identity = Identity(backend, key)
    found = identity.authenticate("s3cret")     # (Principal, credential) or None; blocking
    identity.resolve(credential)                # the same Principal while the token is accepted

This is the seam where tenants plug in: today every token the API accepts is the
built-in ``admin`` tenant's, and the credential kept in the session cookie is a
keyed hash of the token (never the token), matched against the accepted tokens
on every request, so a token removed from the token file logs its console
sessions out at once. With authentication off (no tokens: loopback dev mode)
everyone is that admin, and every page says so.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

from ai_data_agent.service.console.backend import Backend

__all__ = ["BUILTIN_TENANT", "Identity", "Principal", "Role"]

Role = Literal["admin", "agent"]
BUILTIN_TENANT = "admin"


@dataclass(frozen=True)
class Principal:
    """A tenant acting through one of its tokens."""

    tenant: str
    role: Role
    token_name: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


OPEN_PRINCIPAL = Principal(BUILTIN_TENANT, "admin", "(authentication off)")


class Identity:
    """Tokens to principals, for the console's login and its per-request check."""

    def __init__(self, backend: Backend, key: bytes) -> None:
        self._backend = backend
        self._key = key

    @property
    def open(self) -> bool:
        """Authentication is off: every visitor is the built-in admin."""
        return not self._backend.auth_enabled

    def _credential(self, token: str) -> str:
        return hmac.new(self._key, b"token\0" + token.encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def _principal(credential: str) -> Principal:
        return Principal(BUILTIN_TENANT, "admin", f"token {credential[:8]}")

    def authenticate(self, token: str) -> tuple[Principal, str] | None:
        """The principal of an accepted token and the credential to keep for it, or None.
        Blocking (the token file is read).

        Raises:
            NotReady: the token file cannot be read.
        """
        credential = self._credential(token)
        return (
            None if self.resolve(credential) is None else (self._principal(credential), credential)
        )

    def resolve(self, credential: str) -> Principal | None:
        """The principal while its token is still accepted, else None. Blocking.

        Raises:
            NotReady: the token file cannot be read.
        """
        if self.open:
            return OPEN_PRINCIPAL
        matched = False
        # No early exit: the time taken says nothing about which token matched.
        for token in self._backend.accepted_tokens():
            matched |= hmac.compare_digest(self._credential(token), credential)
        return self._principal(credential) if matched else None
