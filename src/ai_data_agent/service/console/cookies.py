"""The console's session cookie: signed by the daemon, carrying no secret, and its CSRF token.

    signer = Signer(load_key(settings))
    value = signer.dump(Visit.fresh())            # "<payload>.<signature>", base64url
    visit = signer.load(value)                     # None when forged, malformed or expired
    signer.csrf(visit)                             # the token every form sends back

A visit holds a random nonce and, once logged in, the credential `identity`
made of the token. The cookie is HttpOnly, SameSite=Strict, Secure over TLS and
scoped to the console's path; it expires after `MAX_AGE_S`. The CSRF token is a
keyed hash of the nonce, so it changes with every login and logout. The key is
``console_secret`` when set, else made once in the data dir (``console.key``,
mode 0600) and kept across restarts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ai_data_agent.errors import ConfigurationError
from ai_data_agent.settings import Settings

__all__ = ["COOKIE", "KEY_FILENAME", "MAX_AGE_S", "Signer", "Visit", "load_key"]

COOKIE = "ai_data_agent_console"
KEY_FILENAME = "console.key"
MAX_AGE_S = 12 * 3600


@dataclass(frozen=True)
class Visit:
    """One browser's session with the console."""

    nonce: str
    credential: str | None = None  # None: not logged in
    issued_at: float = 0.0

    @classmethod
    def fresh(cls, credential: str | None = None) -> Visit:
        return cls(secrets.token_urlsafe(18), credential, time.time())

    def logged_in(self, credential: str) -> Visit:
        """A new visit for ``credential``: a new nonce, so a CSRF token seen before is void."""
        return replace(Visit.fresh(), credential=credential)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs and checks visits and their CSRF tokens with the daemon's key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, purpose: bytes, data: bytes) -> bytes:
        return hmac.new(self._key, purpose + b"\0" + data, hashlib.sha256).digest()

    def dump(self, visit: Visit) -> str:
        payload = json.dumps(
            {"n": visit.nonce, "c": visit.credential, "t": visit.issued_at}, separators=(",", ":")
        ).encode()
        return f"{_b64(payload)}.{_b64(self._mac(b'cookie', payload))}"

    def load(self, value: str | None, *, now: float | None = None) -> Visit | None:
        """The visit a cookie holds, or None when it is missing, forged, malformed or expired."""
        if not value or value.count(".") != 1:
            return None
        payload_text, signature_text = value.split(".")
        try:
            payload, signature = _unb64(payload_text), _unb64(signature_text)
            if not hmac.compare_digest(signature, self._mac(b"cookie", payload)):
                return None
            fields = json.loads(payload)
            visit = Visit(str(fields["n"]), fields["c"], float(fields["t"]))
        except (binascii.Error, ValueError, KeyError, TypeError):
            return None
        if visit.credential is not None and not isinstance(visit.credential, str):
            return None
        age = (time.time() if now is None else now) - visit.issued_at
        return visit if 0 <= age < MAX_AGE_S else None

    def csrf(self, visit: Visit) -> str:
        return _b64(self._mac(b"csrf", visit.nonce.encode()))

    def csrf_ok(self, visit: Visit, presented: str) -> bool:
        return hmac.compare_digest(self.csrf(visit).encode(), presented.encode())


def load_key(settings: Settings) -> bytes:
    """``console_secret``, else the data dir's key file (made now when missing). Blocking.

    Raises:
        ConfigurationError: the key file cannot be read or made.
    """
    if settings.console_secret is not None:
        return settings.console_secret.get_secret_value().encode()
    path = settings.data_dir / KEY_FILENAME
    try:
        return _read_or_make(path)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read or make the console's key {path}: {exc}; check "
            "AI_DATA_AGENT_DATA_DIR, or set AI_DATA_AGENT_CONSOLE_SECRET"
        ) from exc


def _read_or_make(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_bytes(32).hex())
        try:
            # A link appears whole and never replaces a key another process made first.
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise OSError(f"{path} holds no key (delete it to make a new one)")
    return key
