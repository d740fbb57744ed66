"""`fleetpulse tokens` against moto: the token is shown once and only its hash is stored."""

from __future__ import annotations

import json

import pytest

from chalicelib.core.tokens import token_hash, token_id_of
from fleetpulse.cli import main
from fleetpulse.resources import create_all


@pytest.fixture
def tables(aws_services):
    create_all(aws_services.settings, aws_services.clients)
    return aws_services


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def test_create_prints_the_token_once_and_stores_its_hash(tables, capsys):
    status, out, err = run(
        capsys, "tokens", "create", "--scope", "host:web-1", "--name", "web-1 only"
    )
    assert status == 0
    token = out.strip()
    token_id = token_id_of(token)
    assert token_id is not None
    assert "shown only once" in err
    stored = tables.token_store.get(token_id)
    assert stored.token_hash == token_hash(token)
    assert str(stored.scope) == "host:web-1"
    raw_item = tables.clients.get("dynamodb").scan(TableName=tables.settings.tokens_table)["Items"]
    assert token not in json.dumps(raw_item)


def test_list_shows_ids_and_never_secrets_and_revoke_hides_them(tables, capsys):
    _, out, _ = run(capsys, "tokens", "create", "--scope", "fleet", "--name", "user-data", "--json")
    created = json.loads(out)
    run(capsys, "tokens", "create", "--scope", "admin")
    status, out, _ = run(capsys, "tokens", "list")
    assert status == 0
    assert created["token_id"] in out
    assert "user-data" in out
    assert "fleet" in out
    assert created["token"] not in out

    status, out, _ = run(capsys, "tokens", "revoke", created["token_id"])
    assert status == 0
    assert "revoked" in out
    _, out, _ = run(capsys, "tokens", "list")
    assert created["token_id"] not in out
    _, out, _ = run(capsys, "tokens", "list", "--all", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert {r["token_id"]: r["revoked_at"] is not None for r in rows}[created["token_id"]] is True


def test_mistakes_are_one_line_errors(tables, capsys):
    status, _, err = run(capsys, "tokens", "create", "--scope", "root")
    assert status == 1
    assert err.strip() == "fleetpulse: scope must be fleet, admin, ping or host:<name>, got 'root'"
    status, _, err = run(capsys, "tokens", "revoke", "nosuchtoken0")
    assert (status, err.strip()) == (1, "fleetpulse: no token with id 'nosuchtoken0'")


def test_a_missing_table_is_reported_not_a_traceback(aws, capsys, monkeypatch):
    monkeypatch.setenv("FLEETPULSE_TOKENS_TABLE", "nope")
    status, _, err = run(capsys, "tokens", "list")
    assert status == 1
    assert err.startswith("fleetpulse: tokens table: ResourceNotFoundException")
