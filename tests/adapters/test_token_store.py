"""The TokenStore contract, held by the in-memory fake and by DynamoDB (moto)."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from chalicelib.core.tokens import ID_BYTES, SECRET_BYTES, Scope, TokenRecord, mint, token_hash

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def token_record(scope: str = "fleet", name: str = "", at: datetime = NOW) -> TokenRecord:
    token_id, token = mint(os.urandom(ID_BYTES + SECRET_BYTES))
    return TokenRecord(token_id, token_hash(token), Scope.parse(scope), name, at)


def test_a_token_reads_back_as_it_was_stored(stores):
    tokens = stores.tokens
    record = token_record("host:web-1", "user-data")
    assert tokens.put(record)
    assert tokens.get(record.token_id) == record
    assert tokens.get(record.token_id).scope == Scope.parse("host:web-1")
    assert tokens.get("nosuchtoken12") is None


def test_tokens_are_listed_oldest_first(stores):
    tokens = stores.tokens
    later = token_record("admin", at=NOW + timedelta(minutes=1))
    first = token_record("fleet", at=NOW)
    assert tokens.put(later)
    assert tokens.put(first)
    assert tokens.list() == [first, later]


def test_a_taken_id_is_refused_and_the_first_token_kept(stores):
    tokens = stores.tokens
    record = token_record("fleet", "first")
    assert tokens.put(record)
    assert not tokens.put(replace(record, scope=Scope.parse("admin"), name="second"))
    assert tokens.get(record.token_id) == record


def test_revoking_keeps_the_first_time_and_an_unknown_token_is_false(stores):
    tokens = stores.tokens
    record = token_record()
    tokens.put(record)
    assert tokens.revoke(record.token_id, NOW + timedelta(hours=1))
    assert tokens.revoke(record.token_id, NOW + timedelta(hours=2))
    assert tokens.get(record.token_id).revoked_at == NOW + timedelta(hours=1)
    assert not tokens.revoke("nosuchtoken12", NOW)
    assert tokens.get("nosuchtoken12") is None  # a failed revoke creates nothing


def test_touch_records_the_last_use_and_ignores_an_unknown_token(stores):
    tokens = stores.tokens
    record = token_record()
    tokens.put(record)
    tokens.touch(record.token_id, NOW + timedelta(minutes=5))
    tokens.touch(record.token_id, NOW + timedelta(minutes=7))
    assert tokens.get(record.token_id).last_used_at == NOW + timedelta(minutes=7)
    tokens.touch("nosuchtoken12", NOW)
    assert tokens.get("nosuchtoken12") is None
    assert tokens.list() == [replace(record, last_used_at=NOW + timedelta(minutes=7))]
