"""HTTP plumbing for the Chalice handlers: errors to status codes, JSON replies."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from chalice import Chalice, Response  # type: ignore[attr-defined]
from chalice.app import Request

from chalicelib.core.errors import IngestError, InvalidPayload, Problem
from chalicelib.core.ports import BackendUnavailable

logger = Logger(child=True)

RETRY_AFTER_SECONDS = 30

F = TypeVar("F", bound=Callable[..., Response])


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=json.dumps(body, separators=(",", ":")),
        status_code=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def handle_errors(view: F) -> F:
    """Map domain errors to replies: 4xx for the caller's mistakes, 503 for ours.

    Anything unexpected is logged and answered 503 with Retry-After, so an
    agent keeps its batch and tries again instead of dropping it.
    """

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return view(*args, **kwargs)
        except IngestError as exc:
            if exc.status >= 500:  # pragma: no cover (no such subclass today)
                logger.error("server-side ingest error", extra={"error": exc.error})
            return json_response(exc.status, exc.as_json())
        except BackendUnavailable as exc:
            logger.warning("backend unavailable", extra={"reason": str(exc)})
            return json_response(
                503,
                {"error": "storage is unavailable; retry later"},
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        except Exception:
            logger.exception("unexpected error")
            return json_response(
                503,
                {"error": "internal error; retry later"},
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            )

    return wrapper  # type: ignore[return-value]


def header(request: Request, name: str) -> str | None:
    value = request.headers.get(name) if request.headers is not None else None
    return value if value else None


def body_bytes(request: Request) -> bytes:
    raw = request.raw_body
    return raw.encode() if isinstance(raw, str) else bytes(raw or b"")


def current_request(app: Chalice) -> Request:
    request = app.current_request
    if request is None:  # pragma: no cover (only outside a request)
        raise RuntimeError("no current request")
    return request


def json_body(request: Request) -> Any:
    """The request body as JSON; 400 when it is not."""
    try:
        return json.loads(body_bytes(request) or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidPayload("body is not valid JSON", [Problem("", str(exc))]) from None
