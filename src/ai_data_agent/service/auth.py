"""Bearer tokens to principals: who a request of ``/v1``, ``/mcp`` or ``/metrics`` comes from.

    auth = TokenAuth(settings, tenants)         # tenants: a records.TenantRecords (a worker: None)
    principal = auth.principal("Bearer ada_...")   # Unauthorized (401) unless accepted
    auth.principal_of_digest(token_digest(secret))  # the same, from what the console keeps
    secret, digest = new_secret()                # a new token: show the secret once, keep the digest

Two kinds of token are accepted. The operator's configured tokens
(``AI_DATA_AGENT_API_TOKENS``, ``AI_DATA_AGENT_API_TOKEN_FILE``, read on every
check so that rotation needs no restart) belong to the built-in ``admin``
tenant, named ``config-<8 hex digits of their digest>``. Tokens made with
``ai-data-agent token new`` or ``POST /v1/tokens`` are found in the tenant
store by the digest of the secret; a revoked or expired one is refused at its
next request, on every node. Auth is on when tokens are configured or the
store holds any token (revoked and expired ones count, so revoking the last
token never opens the daemon); with neither it is off (loopback dev mode) and
every request is the built-in admin. Configured tokens are compared in
constant time and never logged; a token's use is written at most once a
minute. Every method blocks (it may read a file or the store): call it from
a worker thread.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from datetime import UTC, datetime

from loguru import logger

from ai_data_agent.errors import NotReady, Unauthorized
from ai_data_agent.service.records import TenantRecords
from ai_data_agent.settings import Settings
from ai_data_agent.tenant_models import TOKEN_PREFIX, Principal

__all__ = ["TOUCH_EVERY_S", "TokenAuth", "configured_name", "new_secret", "token_digest"]

TOUCH_EVERY_S = 60.0  # a token's last use is written at most this often
RECHECK_OFF_S = 1.0  # with auth off, how often the store is asked whether tokens appeared


def token_digest(secret: str) -> str:
    """What is stored of a token: the sha256 of its secret, in hex.

    A plain hash is enough here: the secrets are 256-bit random strings, so
    there is nothing to guess and a slow password hash (bcrypt, argon2) would
    only slow every request. The digest lets the store find a token by index
    without ever holding the secret.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> tuple[str, str]:
    """A new token's secret (``ada_`` and 43 URL-safe characters) and its digest."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return secret, token_digest(secret)


def configured_name(token: str) -> str:
    """The name a configured token goes by in the audit log: stable, and no secret."""
    return "config-" + token_digest(token)[:8]


class TokenAuth:
    """See the module docstring. Thread-safe."""

    def __init__(self, settings: Settings, tenants: TenantRecords | None) -> None:
        self._settings = settings
        self._tenants = tenants
        self.configured = bool(settings.api_tokens) or settings.api_token_file is not None
        self._stored = False  # once the store holds a token, auth stays on
        self._stored_checked = -RECHECK_OFF_S
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether requests need a token (configured ones, or any in the store)."""
        if self.configured or self._stored:
            return True
        if self._tenants is None:
            return False
        now = time.monotonic()
        if now - self._stored_checked >= RECHECK_OFF_S:
            self._stored_checked = now
            try:
                self._stored = self._tenants.has_tokens()
            except Exception as exc:  # a store that cannot answer: fail closed
                logger.error("cannot read the tenant store: {}", exc)
                return True
        return self._stored

    def principal(self, authorization: str | None) -> Principal:
        """The principal of one request's ``Authorization`` header.

        Raises:
            Unauthorized: a missing, malformed, wrong, revoked or expired token.
            NotReady: the token file or the tenant store cannot be read.
        """
        if not self.enabled:
            return Principal.builtin_admin()
        scheme, _, presented = (authorization or "").partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not presented:
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        return self.principal_of_digest(token_digest(presented))

    def principal_of_digest(self, digest: str) -> Principal:
        """The principal of the token whose `token_digest` is ``digest``: what the console
        keeps of a token, checked again on each of its requests.

        Raises:
            Unauthorized: no token has this digest now (removed, revoked or expired).
            NotReady: the token file or the tenant store cannot be read.
        """
        if not self.enabled:
            return Principal.builtin_admin()
        configured = self._configured(digest)
        if configured is not None:
            return Principal.builtin_admin(configured)
        return self._stored_principal(digest)

    def _configured(self, digest: str) -> str | None:
        """The name of the configured token whose digest is ``digest``, or None."""
        if not self.configured:
            return None
        try:
            accepted = self._settings.accepted_tokens()
        except (OSError, UnicodeDecodeError) as exc:
            logger.error("cannot read the API token file: {}", exc)
            raise NotReady("the daemon cannot read its token file") from exc
        candidate = digest.encode()
        # No early exit: the time taken says nothing about which token came close.
        matched = None
        for token in accepted:
            if hmac.compare_digest(candidate, token_digest(token).encode()):
                matched = token
        return None if matched is None else configured_name(matched)

    def _stored_principal(self, digest: str) -> Principal:
        if self._tenants is None:
            raise Unauthorized("wrong bearer token")
        try:
            found = self._tenants.token(digest)
        except Exception as exc:
            logger.error("cannot read the tenant store: {}", exc)
            raise NotReady("the daemon cannot read its tenant store") from exc
        if found is None:
            raise Unauthorized("wrong bearer token")
        info, tenant = found
        now = datetime.now(UTC)
        if info.revoked_at is not None:
            raise Unauthorized("this token was revoked")
        if info.expires_at is not None and info.expires_at <= now:
            raise Unauthorized("this token expired")
        self._touch(info.name, now.timestamp())
        return Principal(tenant=tenant.name, role=tenant.role, token=info.name)

    def holder(self, authorization: str | None) -> tuple[str, str] | None:
        """The tenant and name of the stored token ``authorization`` presents, whatever its
        state: what the audit entry of a refusal names (a revoked or expired token)."""
        presented = (authorization or "").partition(" ")[2].strip()
        if self._tenants is None or not presented:
            return None
        try:
            found = self._tenants.token(token_digest(presented))
        except Exception:  # the refusal is answered all the same
            return None
        return None if found is None else (found[1].name, found[0].name)

    def _touch(self, name: str, now: float) -> None:
        """Write the token's last use, at most once a minute per token per process."""
        with self._lock:
            if now - self._touched.get(name, 0.0) < TOUCH_EVERY_S:
                return
            self._touched[name] = now
        try:
            if self._tenants is not None:
                self._tenants.touch_token(name, now=now)
        except Exception as exc:  # its last use is a hint; the request goes on
            logger.warning("cannot record the use of token {}: {}", name, exc)
