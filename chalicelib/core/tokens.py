"""API tokens: random, shown once, stored only as a hash, scoped.

A token reads `fp_<id>_<secret>`. The id is public: it names the token in
`fleetpulse tokens list` and is the storage key, so verification is one lookup
and one constant-time comparison. Only a SHA-256 of the whole token is stored;
the secret has 256 bits of entropy, so a slow password hash would add nothing.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime

TOKEN_PREFIX = "fp"  # noqa: S105 (a format marker, not a secret)
_TOKEN_RE = re.compile(r"fp_([a-z2-7]{12})_([A-Za-z0-9_-]{43})\Z")
SECRET_BYTES = 32
ID_BYTES = 7  # 56 bits, 12 base32 characters once the padding is dropped


class ScopeKind(enum.StrEnum):
    FLEET = "fleet"  # may post for any host: the token baked into user-data
    HOST = "host"  # may post for one host only
    ADMIN = "admin"  # reads and management, and posting for any host
    PING = "ping"  # the ping key of /ping/<key>/<slug> (docs/JOBS.md): pings jobs, nothing else


@dataclass(frozen=True, slots=True)
class Scope:
    kind: ScopeKind
    host: str | None = None

    @classmethod
    def parse(cls, text: str) -> Scope:
        """`fleet`, `admin` or `host:<name>`; ValueError names what is wrong."""
        if text in (ScopeKind.FLEET, ScopeKind.ADMIN, ScopeKind.PING):
            return cls(ScopeKind(text))
        kind, sep, host = text.partition(":")
        if kind == ScopeKind.HOST and sep and host:
            return cls(ScopeKind.HOST, host)
        raise ValueError(f"scope must be fleet, admin, ping or host:<name>, got {text!r}")

    def __str__(self) -> str:
        return f"host:{self.host}" if self.kind is ScopeKind.HOST else self.kind.value

    def may_post_for(self, host: str) -> bool:
        if self.kind is ScopeKind.HOST:
            return self.host == host
        return self.kind is not ScopeKind.PING

    @property
    def is_admin(self) -> bool:
        return self.kind is ScopeKind.ADMIN

    @property
    def may_ping(self) -> bool:
        return self.kind is ScopeKind.PING


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What is stored about a token. Never the token itself."""

    token_id: str
    token_hash: str
    scope: Scope
    name: str
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request speaks for, once its token checked out."""

    token_id: str
    scope: Scope


def mint(entropy: bytes) -> tuple[str, str]:
    """A new token from `ID_BYTES + SECRET_BYTES` random bytes: returns (token_id, token)."""
    if len(entropy) != ID_BYTES + SECRET_BYTES:
        raise ValueError(f"need {ID_BYTES + SECRET_BYTES} random bytes, got {len(entropy)}")
    token_id = base64.b32encode(entropy[:ID_BYTES]).decode().rstrip("=").lower()
    secret = base64.urlsafe_b64encode(entropy[ID_BYTES:]).decode().rstrip("=")
    return token_id, f"{TOKEN_PREFIX}_{token_id}_{secret}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_id_of(token: str) -> str | None:
    """The public id inside a well-formed token; None for anything else."""
    match = _TOKEN_RE.match(token)
    return match.group(1) if match else None


def verify(record: TokenRecord, token: str) -> bool:
    """True when `token` is the one `record` was minted for and it is not revoked."""
    return hmac.compare_digest(record.token_hash, token_hash(token)) and record.active


def bearer_token(authorization: str | None) -> str | None:
    """The credential from `Authorization: Bearer <t>` (or InfluxDB's `Token <t>`)."""
    if not authorization:
        return None
    scheme, _, credential = authorization.strip().partition(" ")
    if scheme.lower() not in ("bearer", "token"):
        return None
    credential = credential.strip()
    return credential or None
