"""HTTP plumbing for the Chalice handlers: errors to status codes, JSON replies."""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger
from chalice import Chalice, Response  # type: ignore[attr-defined]
from chalice.app import Request

from chalicelib.core.errors import IngestError, InvalidPayload, Problem
from chalicelib.core.models import InfluxApi
from chalicelib.core.ports import BackendUnavailable

if TYPE_CHECKING:
    from chalicelib.services.ingest import IngestResult

logger = Logger(child=True)

RETRY_AFTER_SECONDS = 30
_RETRY_LATER = {"Retry-After": str(RETRY_AFTER_SECONDS)}

F = TypeVar("F", bound=Callable[..., Response])


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=json.dumps(body, separators=(",", ":")),
        status_code=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


# How a decorated route words an error: (status, the IngestError or None, a generic
# message, extra headers) -> the reply. Each family of routes has its body shape.
ErrorReply = Callable[[int, IngestError | None, str, dict[str, str] | None], Response]


def errors_as(reply: ErrorReply) -> Callable[[F], F]:
    """Map domain errors to replies worded by `reply`: 4xx for the caller's mistakes,
    503 for ours.

    Anything unexpected is logged and answered 503 with Retry-After, so an
    agent keeps its batch and tries again instead of dropping it.
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            try:
                return view(*args, **kwargs)
            except IngestError as exc:
                if exc.status >= 500:  # pragma: no cover (no such subclass today)
                    logger.error("server-side ingest error", extra={"error": exc.error})
                return reply(exc.status, exc, exc.error, None)
            except BackendUnavailable as exc:
                logger.warning("backend unavailable", extra={"reason": str(exc)})
                return reply(503, None, "storage is unavailable; retry later", _RETRY_LATER)
            except Exception:
                logger.exception("unexpected error")
                return reply(503, None, "internal error; retry later", _RETRY_LATER)

        return wrapper  # type: ignore[return-value]

    return decorate


def _json_error(
    status: int, exc: IngestError | None, message: str, headers: dict[str, str] | None
) -> Response:
    return json_response(status, exc.as_json() if exc else {"error": message}, headers)


handle_errors = errors_as(_json_error)
"""The JSON routes' errors: `{"error", "details"}`."""


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


# ------------------------------------------------- the InfluxDB-compatible routes

# InfluxDB's error codes, which clients (Telegraf, the client libraries) show to people.
_INFLUX_CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    413: "request too large",
    415: "unsupported media type",
    503: "unavailable",
}
_NAMED_DETAILS = 10


def influx_error(
    status: int, message: str, api: InfluxApi, headers: dict[str, str] | None = None
) -> Response:
    """An error in InfluxDB's shape: `{"code", "message"}`; 1.x clients also get `"error"`."""
    body = {"code": _INFLUX_CODES.get(status, "invalid"), "message": message}
    if api is InfluxApi.V1:
        body["error"] = message
    return json_response(status, body, headers)


def influx_reply(result: IngestResult, api: InfluxApi) -> Response:
    """204 when every line was stored; 400 "partial write" naming the refused lines otherwise.

    Telegraf drops a batch answered 400 instead of retrying it: the valid
    lines are stored already, and the refused ones would be refused again.
    """
    if not result.rejected:
        return Response(body="", status_code=204, headers={})
    from chalicelib.services.line_protocol import partial_write_message

    return influx_error(400, partial_write_message(result), api)


def handle_influx_errors(api: InfluxApi) -> Callable[[F], F]:
    """`handle_errors` for the InfluxDB-compatible routes: the same statuses, InfluxDB's bodies."""

    def reply(
        status: int, exc: IngestError | None, message: str, headers: dict[str, str] | None
    ) -> Response:
        return influx_error(status, _influx_message(exc) if exc else message, api, headers)

    return errors_as(reply)


def _influx_message(exc: IngestError) -> str:
    """The error and its details on one line (InfluxDB clients show only `message`)."""
    details = [f"{p.path}: {p.message}" for p in exc.details]
    if exc.error.startswith("unable to parse"):
        details = details[1:]  # the first is in the error already
    if not details:
        return exc.error
    shown = "; ".join(details[:_NAMED_DETAILS])
    if len(details) > _NAMED_DETAILS:
        shown += f"; and {len(details) - _NAMED_DETAILS} more"
    return (
        f"{exc.error}; {shown}"
        if exc.error.startswith("unable to parse")
        else f"{exc.error}: {shown}"
    )


def influx_authorization(request: Request, api: InfluxApi) -> str | None:
    """The token of an InfluxDB client, as an Authorization value the authenticator reads.

    `Token <t>` and `Bearer <t>` pass through; `Basic` carries the token as
    the password (InfluxDB's v1 convention, the user name is ignored), and
    the v1 API also takes it as the `p` query parameter.
    """
    authorization = header(request, "authorization")
    if authorization:
        scheme, _, credential = authorization.strip().partition(" ")
        if scheme.lower() != "basic":
            return authorization
        try:
            decoded = base64.b64decode(credential.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        password = decoded.partition(":")[2]
        return f"Token {password}" if password else None
    if api is InfluxApi.V1:
        param = query_param(request, "p")
        if param:
            return f"Token {param}"
    return None


def query_param(request: Request, name: str) -> str | None:
    params = request.query_params
    value = params.get(name) if params is not None else None
    return value if value else None


def json_body(request: Request) -> Any:
    """The request body as JSON; 400 when it is not."""
    try:
        return json.loads(body_bytes(request) or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidPayload("body is not valid JSON", [Problem("", str(exc))]) from None


# ------------------------------------------------- other senders (remote_write, collectd)


def sender_authorization(request: Request) -> str | None:
    """A bearer token, or HTTP basic auth with the token as the password (the user name is
    ignored): what Prometheus' `authorization`/`basic_auth` and collectd's write_http send."""
    return influx_authorization(request, InfluxApi.V2)


def text_response(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=text + "\n",
        status_code=status,
        headers={"Content-Type": "text/plain; charset=utf-8", **(headers or {})},
    )


def _remote_write_error(
    status: int, exc: IngestError | None, message: str, headers: dict[str, str] | None
) -> Response:
    if exc is None:
        return text_response(status, message, headers)
    details = "; ".join(f"{p.path}: {p.message}" for p in exc.details[:_NAMED_DETAILS])
    more = len(exc.details) - _NAMED_DETAILS
    if more > 0:
        details += f"; and {more} more"
    return text_response(status, f"{exc.error}: {details}" if details else exc.error, headers)


handle_remote_write_errors = errors_as(_remote_write_error)
"""`handle_errors` for remote_write: the same statuses, as text Prometheus logs.

Prometheus drops a batch answered 4xx and retries one answered 5xx or 429,
so only backend trouble may get a 5xx."""


def basic_auth_challenge(view: F) -> F:
    """Add `WWW-Authenticate: Basic` to a 401: collectd's write_http (libcurl with any auth
    method allowed) sends its User/Password only once challenged."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        response = view(*args, **kwargs)
        if response.status_code == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="fleetpulse", charset="UTF-8"'
        return response

    return wrapper  # type: ignore[return-value]
