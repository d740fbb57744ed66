"""The API function invoked by a Lambda function URL (payload format 2.0), as AWS sends it."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime
from typing import Any

from chalicelib.core.instants import ms_of_instant
from tests.support.http import add_token


def url_event(
    method: str,
    path: str,
    *,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    query: str = "",
    cookies: list[str] | None = None,
) -> dict[str, Any]:
    """A function URL's event, shaped as the Lambda documentation shows it."""
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": "abc.lambda-url.us-east-1.on.aws", **(headers or {})},
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abc",
            "domainName": "abc.lambda-url.us-east-1.on.aws",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "fleetpulse-agent",
            },
            "requestId": "r-1",
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": 1763726400000,
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if isinstance(body, bytes):
        event["body"] = base64.b64encode(body).decode()
        event["isBase64Encoded"] = True
    elif body is not None:
        event["body"] = body
    return event


class LambdaContext:
    """What the Lambda runtime hands the handler (the logger reads these)."""

    function_name = "fleetpulse-dev"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fleetpulse-dev"
    aws_request_id = "r-1"

    def get_remaining_time_in_millis(self) -> int:
        return 25_000


def invoke(memory_api: Any, event: dict[str, Any]) -> dict[str, Any]:
    import app

    del memory_api  # the fixture installs the services the app uses
    return app.app(event, LambdaContext())


def agent_post(host: str) -> dict[str, Any]:
    return {
        "host": host,
        "heartbeat": {"interval": 60, "state": "alive"},
        "points": [
            {
                "measurement": "cpu",
                "time": ms_of_instant(datetime.now(UTC)),
                "tags": {"cpu": "total"},
                "fields": {"idle": 97.0},
            }
        ],
    }


def test_an_agent_post_through_a_function_url_is_stored_like_one_through_api_gateway(memory_api):
    token = memory_api.token("fleet")
    raw = gzip.compress(json.dumps(agent_post("web-1")).encode())
    headers = {
        "content-type": "application/json",
        "content-encoding": "gzip",
        "authorization": f"Bearer {token}",
    }
    answer = invoke(memory_api, url_event("POST", "/v1/ingest", body=raw, headers=headers))
    assert answer["statusCode"] == 202, answer
    assert "multiValueHeaders" not in answer
    assert json.loads(answer["body"]) == {"accepted": 1, "rejected": []}
    assert [h.host for h in memory_api.services.host_store.scan()] == ["web-1"]


def test_the_same_bearer_token_check_guards_the_function_url(memory_api):
    body = json.dumps(agent_post("web-1"))
    headers = {"content-type": "application/json"}
    missing = invoke(memory_api, url_event("POST", "/v1/ingest", body=body, headers=headers))
    assert missing["statusCode"] == 401
    wrong = invoke(
        memory_api,
        url_event(
            "POST",
            "/v1/ingest",
            body=body,
            headers={**headers, "authorization": "Bearer fp_nope_nope"},
        ),
    )
    assert wrong["statusCode"] == 401
    scoped = add_token(memory_api.services, "host:db-*")
    refused = invoke(
        memory_api,
        url_event(
            "POST",
            "/v1/ingest",
            body=body,
            headers={**headers, "authorization": f"Bearer {scoped}"},
        ),
    )
    assert refused["statusCode"] == 403
    assert memory_api.services.host_store.scan() == []


def test_path_parameters_and_query_strings_reach_the_routes(memory_api):
    admin = memory_api.token("admin")
    auth = {"authorization": f"Bearer {admin}"}
    fleet = memory_api.token("fleet")
    posted = invoke(
        memory_api,
        url_event(
            "POST",
            "/v1/ingest",
            body=json.dumps(agent_post("web-1")),
            headers={"content-type": "application/json", "authorization": f"Bearer {fleet}"},
        ),
    )
    assert posted["statusCode"] == 202
    paused = invoke(memory_api, url_event("POST", "/v1/hosts/web-1/pause", headers=auth))
    assert paused["statusCode"] == 200, paused
    listed = invoke(memory_api, url_event("GET", "/v1/hosts", headers=auth, query="x=1"))
    assert listed["statusCode"] == 200
    assert "web-1" in listed["body"]
    unknown = invoke(memory_api, url_event("GET", "/v1/nothing-here", headers=auth))
    assert unknown["statusCode"] == 404


def test_the_status_page_cookie_travels_as_function_url_cookies(memory_api):
    admin = memory_api.token("admin")
    stored = invoke(memory_api, url_event("GET", "/status", query=f"token={admin}"))
    assert stored["statusCode"] in (302, 303), stored
    [cookie] = stored["cookies"]
    assert "HttpOnly" in cookie
    assert not any(k.lower() == "set-cookie" for k in stored["headers"])
    pair = cookie.split(";", 1)[0]
    assert invoke(memory_api, url_event("GET", "/status"))["statusCode"] == 401
    # With the cookie the token is accepted (the page itself needs the alert tables,
    # which these in-memory services do not have).
    page = invoke(memory_api, url_event("GET", "/status", cookies=[pair]))
    assert page["statusCode"] != 401


def test_an_api_gateway_event_still_goes_through_unchanged(memory_api):
    import app

    del memory_api
    event = {
        "resource": "/v1/health",
        "path": "/v1/health",
        "httpMethod": "GET",
        "headers": {},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {"resourcePath": "/v1/health", "httpMethod": "GET", "path": "/api"},
        "body": None,
        "isBase64Encoded": False,
    }
    answer = app.app(event, LambdaContext())
    assert answer["statusCode"] == 200
    assert "multiValueHeaders" in answer  # the REST answer shape, untouched


def test_a_remote_write_body_arrives_as_the_bytes_prometheus_sent(memory_api):
    from chalicelib.core.remote_write import encode_write_request

    token = memory_api.token("fleet")
    now = ms_of_instant(datetime.now(UTC))
    labels = {"__name__": "node_load1", "instance": "web-1:9100", "job": "node"}
    body = encode_write_request([(labels, [(0.5, now)])])  # snappy-framed protobuf
    headers = {
        "content-type": "application/x-protobuf",
        "content-encoding": "snappy",
        "x-prometheus-remote-write-version": "0.1.0",
        "authorization": f"Bearer {token}",
    }
    # A function URL hands a binary body over base64-encoded (isBase64Encoded).
    answer = invoke(memory_api, url_event("POST", "/api/v1/write", body=body, headers=headers))
    assert answer["statusCode"] == 204, answer
    [(measure, _, dimensions)] = memory_api.services.metric_store.records
    assert (measure, dimensions) == ("node_load1", (("host", "web-1"), ("job", "node")))
    assert [h.host for h in memory_api.services.host_store.scan()] == ["web-1"]
    # The same bytes taken as text would not be a WriteRequest: the 400 names the body.
    mangled = url_event("POST", "/api/v1/write", body=body, headers=headers)
    mangled["body"] = base64.b64encode(b"not snappy at all").decode()
    refused = invoke(memory_api, mangled)
    assert refused["statusCode"] == 400, refused


def test_a_ping_path_with_its_suffix_and_log_body_reaches_the_job(alerting_stack):
    import app

    stack = alerting_stack

    def ping(event: dict[str, Any]) -> dict[str, Any]:
        return app.app(event, LambdaContext())

    defined = ping(
        url_event(
            "PUT",
            "/v1/jobs/backup",
            body=json.dumps({"period": "1d"}),
            headers={
                "content-type": "application/json",
                "x-forwarded-proto": "https",
                "authorization": f"Bearer {stack.admin_token}",
            },
        )
    )
    assert defined["statusCode"] == 200, defined
    # The ping URL is the function URL's own: its host, no stage segment.
    url = json.loads(defined["body"])["ping_url"]
    assert url.startswith("https://abc.lambda-url.us-east-1.on.aws/ping/"), url
    path = "/ping/" + url.rsplit("/ping/", 1)[1]
    rid = "7e5b0c1a-3f2d-4c8e-9b1a-2d3c4e5f6a7b"
    started = ping(url_event("GET", path + "/start", query=f"rid={rid}"))
    assert started["statusCode"] == 200, started
    # curl's --data-binary of a log file: the URL passes it base64-encoded.
    log = b"tar: /var/db: No space left on device\n"
    failed = ping(
        url_event(
            "POST",
            path + "/fail",
            body=log,
            headers={"content-type": "application/octet-stream"},
            query=f"rid={rid}",
        )
    )
    assert failed["statusCode"] == 200, failed
    shown = stack.request("GET", "/v1/jobs/backup").json_body
    assert shown["status"] == "failed"
    assert "No space left on device" in shown["log"]
    # A text body arrives as it is.
    done = ping(
        url_event("POST", path + "/0", body="all good\n", headers={"content-type": "text/plain"})
    )
    assert done["statusCode"] == 200, done
    shown = stack.request("GET", "/v1/jobs/backup").json_body
    assert shown["status"] == "up"
    assert shown["log"] == "all good\n"
    assert ping(url_event("GET", "/ping/not-a-uuid"))["statusCode"] == 404
