"""fleetpulse: the collector API and the scheduled and notification Lambdas.

Handlers stay a few lines each: the work is in chalicelib (pure core,
adapters, use-cases). Nothing here creates an AWS client at import.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from chalice import (  # type: ignore[attr-defined]
    ConvertToMiddleware,
    Rate,
    Response,
)
from chalice.app import CloudWatchEvent, Request, SNSEvent

from chalicelib.core.lifecycle import EVENT_PATTERN as EC2_LIFECYCLE_PATTERN
from chalicelib.core.models import InfluxApi
from chalicelib.core.notify import Channel, Outcome
from chalicelib.core.tokens import Principal
from chalicelib.function_url import UrlAwareChalice
from chalicelib.names import alerts_topic_name
from chalicelib.services.auth import require_admin
from chalicelib.web import (
    basic_auth_challenge,
    body_bytes,
    current_request,
    handle_errors,
    handle_influx_errors,
    handle_remote_write_errors,
    header,
    influx_authorization,
    influx_reply,
    json_body,
    json_response,
    query_param,
    sender_authorization,
    text_response,
)
from chalicelib.wiring import Services, services

if TYPE_CHECKING:
    from chalicelib.services.ingest import IngestResult

# Also served by a Lambda function URL when the stage has one (docs/DEPLOY.md).
app = UrlAwareChalice(app_name="fleetpulse")
# Prometheus remote_write bodies are snappy bytes: API Gateway must pass them through
# as binary (base64 to the Lambda), not as text.
app.api.binary_types.append("application/x-protobuf")
# A topic name (same account and region as the function) or an ARN; read at
# import, which `chalice deploy` does with the stage's environment variables set.
ALERTS_TOPIC = alerts_topic_name(os.environ)
logger = Logger(service="fleetpulse")
metrics = Metrics(namespace="fleetpulse", service="fleetpulse")


# An HTTP function's metrics go out at most once a minute per container (one EMF line
# carrying every post's values), not once a post: at one post a minute per host, a line a
# post was CloudWatch Logs' bill. Scheduled and event functions publish each run.
METRICS_FLUSH_SECONDS = float(os.environ.get("FLEETPULSE_METRICS_FLUSH_SECONDS", "60"))
_last_flush = [time.monotonic()]


def metrics_due(http: bool, now: float) -> bool:
    """Whether this invocation publishes what the container's metrics hold."""
    if not http or now - _last_flush[0] >= METRICS_FLUSH_SECONDS:
        _last_flush[0] = now
        return True
    return False


def publish_metrics(event: Any, get_response: Any) -> Any:
    """Publish the metrics after the handler (powertools also publishes a metric's values
    by itself once it holds 100, so a busy container's memory stays bounded). What a
    container holds when Lambda retires it is lost: at most a minute of its counts."""
    try:
        return get_response(event)
    finally:
        if metrics_due(isinstance(event, Request), time.monotonic()) and metrics.metric_set:
            metrics.flush_metrics()


def drop_unpublished_metrics(event: Any, get_response: Any) -> Any:
    # With POWERTOOLS_METRICS_DISABLED (tests, the local stack) log_metrics does
    # not flush, and values would pile up in this long-lived object. Registered
    # first, so it runs outermost: after log_metrics has had its chance.
    try:
        return get_response(event)
    finally:
        if os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() == "true":
            metrics.clear_metrics()


app.register_middleware(drop_unpublished_metrics, "all")
# log_event stays off whatever POWERTOOLS_LOGGER_LOG_EVENT says: a job's ping URL
# (/ping/<uuid>) is its credential, and the event carries the path.
app.register_middleware(
    ConvertToMiddleware(logger.inject_lambda_context(clear_state=True, log_event=False))
)
app.register_middleware(publish_metrics, "all")


@app.middleware("http")
def count_requests(event: Any, get_response: Any) -> Any:
    response = get_response(event)
    metrics.add_metric(name=f"Status{response.status_code}", unit=MetricUnit.Count, value=1)
    return response


@app.route("/v1/health", methods=["GET"])
def health() -> Response:
    return json_response(200, {"status": "ok"})


@app.route("/v1/ingest", methods=["POST"], content_types=["*/*"])
@handle_errors
def ingest() -> Response:
    request = current_request(app)
    svc = services()
    principal = svc.authenticator.authenticate(header(request, "authorization"))
    result = svc.ingest.ingest(
        principal,
        body_bytes(request),
        header(request, "content-type"),
        header(request, "content-encoding"),
        svc.clock(),
    )
    count_points(result)
    return json_response(202, result.as_json())


@app.on_sns_message(topic=ALERTS_TOPIC)
def notify_slack(event: SNSEvent) -> None:
    notify(event, Channel.SLACK)


@app.on_sns_message(topic=ALERTS_TOPIC)
def notify_pagerduty(event: SNSEvent) -> None:
    notify(event, Channel.PAGERDUTY)


def notify(event: SNSEvent, channel: Channel) -> None:
    """Deliver the event's alert to `channel`; raising makes Lambda retry the event."""
    metrics.add_dimension(name="channel", value=channel.value)
    try:
        outcomes = services().notifications.handle_sns_event(event.to_dict(), channel)
    except Exception:
        metrics.add_metric(name="NotificationsRetried", unit=MetricUnit.Count, value=1)
        raise
    for outcome in outcomes:
        metrics.add_metric(name=OUTCOME_METRICS[outcome], unit=MetricUnit.Count, value=1)


OUTCOME_METRICS = {
    o: "Notifications" + "".join(w.capitalize() for w in o.value.split("-")) for o in Outcome
}


# InfluxDB-compatible writes: a Telegraf or InfluxDB client fleet points here unchanged.
@app.route("/api/v2/write", methods=["POST"], content_types=["*/*"])
@handle_influx_errors(InfluxApi.V2)
def influx_v2_write() -> Response:
    return _influx_write(InfluxApi.V2)


@app.route("/write", methods=["POST"], content_types=["*/*"])
@handle_influx_errors(InfluxApi.V1)
def influx_v1_write() -> Response:
    return _influx_write(InfluxApi.V1)


def _influx_write(api: InfluxApi) -> Response:
    request = current_request(app)
    svc = services()
    principal = svc.authenticator.authenticate(influx_authorization(request, api))
    result = svc.line_protocol.write(
        principal,
        body_bytes(request),
        header(request, "content-encoding"),
        precision=query_param(request, "precision"),
        api=api,
        now=svc.clock(),
    )
    count_points(result)
    return influx_reply(result, api)


# Other senders: Prometheus remote_write and collectd write_http (docs/INGEST.md).
@app.route("/api/v1/write", methods=["POST"], content_types=["*/*"])
@handle_remote_write_errors
def prometheus_remote_write() -> Response:
    request = current_request(app)
    svc = services()
    principal = svc.authenticator.authenticate(sender_authorization(request))
    written = svc.remote_write.write(
        principal,
        body_bytes(request),
        header(request, "content-type"),
        header(request, "content-encoding"),
        user_agent=header(request, "user-agent"),
        now=svc.clock(),
    )
    count_points(written.result)
    return remote_write_reply(written.result)


@app.route("/v1/collectd", methods=["POST"], content_types=["*/*"])
@basic_auth_challenge
@handle_errors
def collectd_write() -> Response:
    request = current_request(app)
    svc = services()
    principal = svc.authenticator.authenticate(sender_authorization(request))
    result = svc.collectd.write(
        principal,
        body_bytes(request),
        header(request, "content-type"),
        header(request, "content-encoding"),
        user_agent=header(request, "user-agent"),
        now=svc.clock(),
    )
    count_points(result)
    return json_response(202, result.as_json())


def count_points(result: IngestResult) -> None:
    """What every ingest route counts; a sender past the tracking caps shows as untracked."""
    metrics.add_metric(name="PointsAccepted", unit=MetricUnit.Count, value=result.accepted)
    metrics.add_metric(name="PointsRejected", unit=MetricUnit.Count, value=len(result.rejected))
    metrics.add_metric(name="SeriesUntracked", unit=MetricUnit.Count, value=result.untracked_series)


def remote_write_reply(result: IngestResult) -> Response:
    """204 when all was stored; 400 naming what was refused otherwise (Prometheus drops the
    batch instead of retrying: the rest is stored, and the refused would be refused again)."""
    if not result.rejected:
        return Response(body="", status_code=204, headers={})
    from chalicelib.services.remote_write import rejection_message

    return text_response(400, rejection_message(result))


# Alerting: one scheduled evaluation a minute; the name is the Lambda's
# (fleetpulse-<stage>-evaluate), and the local stack invokes this handler on its tick.
@app.schedule(Rate(1, unit=Rate.MINUTES), name="evaluate")
def evaluate(event: CloudWatchEvent) -> dict[str, Any]:
    svc = services()
    report = svc.alerting.evaluate(svc.clock())
    for name, value in report.metrics().items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    return report.as_json()


# EC2 lifecycle: a terminated instance is retired, a stopped one paused, without a page.
@app.on_cw_event(EC2_LIFECYCLE_PATTERN, name="ec2_lifecycle")
def ec2_lifecycle(event: CloudWatchEvent) -> dict[str, Any]:
    svc = services()
    report = svc.lifecycle.handle(event.to_dict(), svc.clock())
    metrics.add_metric(name="HostsEndedByEC2", unit=MetricUnit.Count, value=len(report.ended))
    return report.as_json()


def admin() -> tuple[Request, Services, Principal]:
    """The request, once its token proved to be an admin's (401/403 otherwise)."""
    request = current_request(app)
    svc = services()
    principal = svc.authenticator.authenticate(header(request, "authorization"))
    require_admin(principal)
    return request, svc, principal


@app.route("/v1/hosts", methods=["GET"])
@handle_errors
def list_hosts() -> Response:
    request, svc, _ = admin()
    hosts = svc.alerting.host_views(svc.clock(), request.query_params or {})
    return json_response(200, {"hosts": hosts})


@app.route("/v1/hosts/{host}/pause", methods=["POST", "DELETE"])
@handle_errors
def pause_host(host: str) -> Response:
    request, svc, _ = admin()
    paused = request.method == "POST"
    svc.alerting.set_paused(host, paused)
    return json_response(200, {"host": host, "paused": paused})


@app.route("/v1/alerts", methods=["GET"])
@handle_errors
def list_alerts() -> Response:
    request, svc, _ = admin()
    alerts = svc.alerting.alert_views(svc.clock(), request.query_params or {})
    return json_response(200, {"alerts": alerts})


@app.route("/v1/silences", methods=["GET"])
@handle_errors
def list_silences() -> Response:
    request, svc, _ = admin()
    state = request.query_params.get("state") if request.query_params else None
    return json_response(200, {"silences": svc.silences.list(svc.clock(), state)})


@app.route("/v1/silences", methods=["POST"], content_types=["*/*"])
@handle_errors
def add_silence() -> Response:
    request, svc, principal = admin()
    now = svc.clock()
    silence = svc.silences.add(json_body(request), now, created_by=principal.token_id)
    return json_response(201, silence.as_json(now))


@app.route("/v1/series", methods=["GET"])
@handle_errors
def read_series() -> Response:
    from chalicelib.host_page import series_authorization

    request, svc = current_request(app), services()
    require_admin(svc.authenticator.authenticate(series_authorization(request)))
    return json_response(200, svc.series.read(request.query_params or {}, svc.clock()))


@app.route("/status/hosts/{host}", methods=["GET"])
@handle_errors
def host_page(host: str) -> Response:
    """One host's history as charts drawn in the browser (chalicelib/host_page.py)."""
    from chalicelib.host_page import host_page_response

    return host_page_response(current_request(app), services(), host)


@app.route("/status", methods=["GET"])
@handle_errors
def status_page() -> Response:
    """The fleet on one HTML page (chalicelib/status_page.py says who may read it)."""
    from chalicelib.status_page import status_response

    return status_response(current_request(app), services())


@app.route("/v1/silences/{silence_id}", methods=["DELETE"])
@handle_errors
def delete_silence(silence_id: str) -> Response:
    _, svc, _ = admin()
    svc.silences.delete(silence_id)
    return json_response(200, {"deleted": silence_id})


# Remote checks (docs/CHECKS.md): the schedule finds the due runs and starts one
# runner invocation per batch; the runner probes them concurrently.
@app.schedule(Rate(1, unit=Rate.MINUTES), name="checks")
def schedule_checks(event: CloudWatchEvent) -> dict[str, Any]:
    svc = services()
    report = svc.checks.schedule(svc.clock())
    metrics.add_metric(name="CheckBatches", unit=MetricUnit.Count, value=report.batches)
    return report.as_json()


@app.lambda_function(name="run_checks")
def run_checks(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = services().checks.run_batch(event)
    metrics.add_metric(name="CheckRuns", unit=MetricUnit.Count, value=report.runs)
    metrics.add_metric(name="CheckRunsDown", unit=MetricUnit.Count, value=report.down)
    return report.as_json()


@app.route("/v1/checks", methods=["GET"])
@handle_errors
def list_checks() -> Response:
    request, svc = checks_reader()
    location = request.query_params.get("location") if request.query_params else None
    return json_response(200, {"checks": svc.checks.listing(location)})


def checks_reader() -> tuple[Request, Services]:
    """An admin's request; a fleet token may list one location's checks (a remote probe)."""
    request = current_request(app)
    svc = services()
    principal = svc.authenticator.authenticate(header(request, "authorization"))
    from chalicelib.services.checks import require_probe

    if request.query_params and request.query_params.get("location"):
        require_probe(principal)
    else:
        require_admin(principal)
    return request, svc


@app.route("/v1/checks/{name}", methods=["GET", "PUT", "DELETE"], content_types=["*/*"])
@handle_errors
def one_check(name: str) -> Response:
    request, svc, _ = admin()
    if request.method == "GET":
        return json_response(200, svc.checks.get(name))
    if request.method == "DELETE":
        svc.checks.delete(name)
        return json_response(200, {"deleted": name})
    check, created = svc.checks.put(name, json_body(request), svc.clock())
    return json_response(201 if created else 200, check)


@app.route("/v1/check-results", methods=["POST"], content_types=["*/*"])
@handle_errors
def check_results() -> Response:
    request = current_request(app)
    svc = services()
    principal = svc.authenticator.authenticate(header(request, "authorization"))
    from chalicelib.services.checks import require_probe

    require_probe(principal)
    report = svc.checks.accept(json_body(request), svc.clock())
    return json_response(202, {"accepted": report.runs})


# Jobs (docs/JOBS.md): the admin API, and healthchecks' ping protocol. A ping URL
# is a credential: nothing logs the path of a /ping request.
@app.route("/v1/jobs", methods=["GET"])
@handle_errors
def list_jobs() -> Response:
    request, svc, _ = admin()
    return json_response(200, {"jobs": svc.jobs.list(svc.clock(), _base_url(request, svc))})


@app.route("/v1/jobs/{slug}", methods=["GET", "PUT", "DELETE"], content_types=["*/*"])
@handle_errors
def job(slug: str) -> Response:
    request, svc, _ = admin()
    if request.method == "DELETE":
        svc.jobs.delete(slug)
        return json_response(200, {"deleted": slug})
    base = _base_url(request, svc)
    if request.method == "PUT":
        return json_response(200, svc.jobs.define(slug, json_body(request), svc.clock(), base))
    return json_response(200, svc.jobs.show(slug, svc.clock(), base))


def _base_url(request: Request, svc: Services) -> str:
    from chalicelib.services.jobs import base_url

    return base_url(request.headers or {}, request.context or {}, svc.settings.ping_base_url)


@app.route("/ping/{a}", methods=["GET", "POST", "HEAD"], content_types=["*/*"])
@handle_errors
def ping1(a: str) -> Response:
    return _ping(a)


@app.route("/ping/{a}/{b}", methods=["GET", "POST", "HEAD"], content_types=["*/*"])
@handle_errors
def ping2(a: str, b: str) -> Response:
    return _ping(a, b)


@app.route("/ping/{a}/{b}/{c}", methods=["GET", "POST", "HEAD"], content_types=["*/*"])
@handle_errors
def ping3(a: str, b: str, c: str) -> Response:
    return _ping(a, b, c)


def _ping(*segments: str) -> Response:
    request = current_request(app)
    svc = services()
    from chalicelib.services.jobs import PING_HEADERS

    reply = svc.jobs.ping(segments, request.query_params or {}, body_bytes(request), svc.clock())
    return Response(reply.text, status_code=reply.status, headers=dict(PING_HEADERS))
