"""Who is calling: bearer tokens checked against the token store, with a short cache."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from chalicelib.core.errors import Forbidden, Unauthorized
from chalicelib.core.ports import TokenStore
from chalicelib.core.tokens import Principal, TokenRecord, bearer_token, token_id_of, verify

logger = Logger(child=True)

# Recording every use would be one write per request; once an hour is enough
# to tell an operator which tokens are still in use.
TOUCH_EVERY = timedelta(hours=1)


class Authenticator:
    """Turns an Authorization header into a Principal, or refuses with 401.

    Token records are cached per container for `cache_ttl`, so a revocation
    takes effect within that time (60 s by default; 0 disables the cache).
    """

    def __init__(
        self,
        tokens: TokenStore,
        cache_ttl: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self.tokens = tokens
        self.cache_ttl = cache_ttl
        self.clock = clock
        self._cache: dict[str, tuple[datetime, TokenRecord | None]] = {}
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None) -> Principal:
        token = bearer_token(authorization)
        if token is None:
            raise Unauthorized(
                "missing credentials: send 'Authorization: Bearer <token>'",
            )
        token_id = token_id_of(token)
        if token_id is None:
            raise Unauthorized("unknown or revoked token")
        now = self.clock()
        record = self._lookup(token_id, now)
        if record is None or not verify(record, token):
            raise Unauthorized("unknown or revoked token")
        if record.last_used_at is None or now - record.last_used_at > TOUCH_EVERY:
            self._touch(record, now)
        return Principal(record.token_id, record.scope)

    def _lookup(self, token_id: str, now: datetime) -> TokenRecord | None:
        if self.cache_ttl:
            cached = self._cache.get(token_id)
            if cached is not None and now - cached[0] < self.cache_ttl:
                return cached[1]
        record = self.tokens.get(token_id)
        if self.cache_ttl:
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[token_id] = (now, record)
        return record

    def _touch(self, record: TokenRecord, now: datetime) -> None:
        try:
            self.tokens.touch(record.token_id, now)
        except Exception:
            logger.warning("could not record token use", extra={"token_id": record.token_id})
            return
        with self._lock:
            self._cache[record.token_id] = (now, replace(record, last_used_at=now))


def require_admin(principal: Principal) -> None:
    if not principal.scope.is_admin:
        raise Forbidden(
            f"this needs an admin token; token {principal.token_id} is {principal.scope}"
        )
