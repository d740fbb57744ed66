"""What the subcommands share: settings, services, errors and table printing."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator, Sequence
from datetime import datetime

from chalicelib.settings import Settings, SettingsError
from chalicelib.wiring import Services
from fleetpulse.cli import CommandError

__all__ = ["CommandError", "backend_errors", "print_table", "services", "settings", "short_time"]


def settings(args: argparse.Namespace) -> Settings:
    env = dict(os.environ)
    if getattr(args, "stage", None):
        env["FLEETPULSE_STAGE"] = args.stage
    try:
        return Settings.from_env(env)
    except SettingsError as exc:
        raise CommandError(str(exc)) from None


def services(args: argparse.Namespace) -> Services:
    cached: Services | None = getattr(args, "_services", None)
    if cached is None:
        cached = Services(settings(args))
        args._services = cached
    return cached


@contextlib.contextmanager
def backend_errors(what: str) -> Iterator[None]:
    """Turn AWS failures into one readable line instead of a traceback."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    from chalicelib.core.ports import BackendUnavailable

    try:
        yield
    except NoCredentialsError:
        raise CommandError(
            "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID)"
        ) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise CommandError(f"{what}: {error.get('Code')}: {error.get('Message')}") from None
    except (BotoCoreError, BackendUnavailable) as exc:
        text = str(exc)  # the DynamoDB stores already name their table
        raise CommandError(text if text.startswith(what) else f"{what}: {text}") from None


def short_time(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M") if at else "-"


def print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
