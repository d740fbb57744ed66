"""`fleetpulse tokens create|list|revoke`: API tokens, stored only as hashes.

These talk to DynamoDB directly with the operator's AWS credentials: the
first admin token has to come from somewhere that needs no token.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from datetime import UTC, datetime

from chalicelib.core.tokens import ID_BYTES, SECRET_BYTES, Scope, TokenRecord, mint, token_hash
from fleetpulse.commands import common


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("tokens", help="create, list and revoke API tokens")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="mint a token (shown once)")
    create.add_argument(
        "--scope",
        required=True,
        help="fleet (post for any host), host:<name> (post for one host), admin, or ping (the ping key of /ping/<key>/<slug>)",
    )
    create.add_argument("--name", default="", help="what the token is for, shown in `list`")
    create.add_argument("--json", action="store_true", help="print the result as JSON")
    create.set_defaults(handler=create_token)

    listing = actions.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--all", action="store_true", help="include revoked tokens")
    listing.add_argument("--json", action="store_true", help="print JSON lines")
    listing.set_defaults(handler=list_tokens)

    revoke = actions.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id", help="the id shown by `tokens list` (or the token itself)")
    revoke.set_defaults(handler=revoke_token)


def create_token(args: argparse.Namespace) -> int:
    try:
        scope = Scope.parse(args.scope)
    except ValueError as exc:
        raise common.CommandError(str(exc)) from None
    token_id, token = mint(secrets.token_bytes(ID_BYTES + SECRET_BYTES))
    record = TokenRecord(token_id, token_hash(token), scope, args.name, datetime.now(UTC))
    with common.backend_errors("tokens table"):
        stored = common.services(args).token_store.put(record)
    if not stored:  # 56 random bits: all but impossible
        raise common.CommandError(f"token id {token_id} is taken; run the command again")
    if args.json:
        print(
            json.dumps(
                {"token_id": token_id, "token": token, "scope": str(scope), "name": args.name}
            )
        )
    else:
        print(token)
        print(
            f"token {token_id} ({scope}) created. It is shown only once: store it now.",
            file=sys.stderr,
        )
    return 0


def list_tokens(args: argparse.Namespace) -> int:
    with common.backend_errors("tokens table"):
        records = common.services(args).token_store.list()
    if not args.all:
        records = [r for r in records if r.active]
    if args.json:
        for r in records:
            print(
                json.dumps(
                    {
                        "token_id": r.token_id,
                        "scope": str(r.scope),
                        "name": r.name,
                        "created_at": r.created_at.isoformat(),
                        "last_used_at": r.last_used_at.isoformat() if r.last_used_at else None,
                        "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
                    }
                )
            )
        return 0
    rows = [("ID", "SCOPE", "NAME", "CREATED", "LAST USED", "STATUS")]
    for r in records:
        rows.append(
            (
                r.token_id,
                str(r.scope),
                r.name or "-",
                common.short_time(r.created_at),
                common.short_time(r.last_used_at),
                "revoked" if r.revoked_at else "active",
            )
        )
    common.print_table(rows)
    return 0


def revoke_token(args: argparse.Namespace) -> int:
    from chalicelib.core.tokens import token_id_of

    token_id = token_id_of(args.token_id) or args.token_id
    with common.backend_errors("tokens table"):
        found = common.services(args).token_store.revoke(token_id, datetime.now(UTC))
    if not found:
        raise common.CommandError(f"no token with id {token_id!r}")
    print(
        f"token {token_id} revoked (collectors notice within their token cache time, 60 s by default)"
    )
    return 0
