"""Who is looking: a token presented at login becomes a `Principal`, checked again on every request.

    identity = Identity(backend)
    found = identity.authenticate("ada_...")    # (Principal, credential) or None; blocking
    identity.resolve(credential)                # the same Principal while the token is accepted

The tokens and tenants are the API's (`service.auth`): an operator's configured
token is the built-in ``admin``, a stored token its tenant's, with its role.
The credential kept in the (signed) visit cookie is the token's digest, what
the tenant store keeps of it, never the token: it opens nothing of the API.
It is resolved again on every request, so a revoked or expired token, or one
removed from the token file, logs its console visits out at once. With
authentication off (no tokens: loopback dev mode) everyone is the built-in
admin, and every page says so.
"""

from __future__ import annotations

from ai_data_agent.errors import Unauthorized
from ai_data_agent.service.auth import token_digest
from ai_data_agent.service.console.backend import Backend
from ai_data_agent.tenant_models import Principal

__all__ = ["Identity", "Principal"]


class Identity:
    """Tokens to principals, for the console's login and its per-request check."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    @property
    def open(self) -> bool:
        """Authentication is off: every visitor is the built-in admin."""
        return not self._backend.auth.enabled

    def authenticate(self, token: str) -> tuple[Principal, str] | None:
        """The principal of an accepted token and the credential to keep for it, or None.
        Blocking (the token file or the tenant store is read).

        Raises:
            NotReady: the token file or the tenant store cannot be read.
        """
        credential = token_digest(token)
        principal = self.resolve(credential)
        return None if principal is None else (principal, credential)

    def resolve(self, credential: str) -> Principal | None:
        """The principal while its token is still accepted, else None. Blocking.

        Raises:
            NotReady: the token file or the tenant store cannot be read.
        """
        try:
            return self._backend.auth.principal_of_digest(credential)
        except Unauthorized:
            return None
