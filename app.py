"""fleetpulse: the collector API and the scheduled and notification Lambdas.

Handlers stay a few lines each: the work is in chalicelib (pure core,
adapters, use-cases). Nothing here creates an AWS client at import.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from chalice import Chalice, ConvertToMiddleware, Response  # type: ignore[attr-defined]
from chalice.app import SNSEvent

from chalicelib.core.line_protocol import InfluxApi
from chalicelib.core.notify import Channel, Outcome
from chalicelib.settings import alerts_topic_name
from chalicelib.web import (
    body_bytes,
    current_request,
    handle_errors,
    handle_influx_errors,
    header,
    influx_authorization,
    influx_reply,
    json_response,
    query_param,
)
from chalicelib.wiring import services

app = Chalice(app_name="fleetpulse")
# A topic name (same account and region as the function) or an ARN; read at
# import, which `chalice deploy` does with the stage's environment variables set.
ALERTS_TOPIC = alerts_topic_name(os.environ)
logger = Logger(service="fleetpulse")
metrics = Metrics(namespace="fleetpulse", service="fleetpulse")


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
app.register_middleware(ConvertToMiddleware(logger.inject_lambda_context(clear_state=True)))
app.register_middleware(ConvertToMiddleware(metrics.log_metrics))


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
    metrics.add_metric(name="PointsAccepted", unit=MetricUnit.Count, value=result.accepted)
    metrics.add_metric(name="PointsRejected", unit=MetricUnit.Count, value=len(result.rejected))
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
    metrics.add_metric(name="PointsAccepted", unit=MetricUnit.Count, value=result.accepted)
    metrics.add_metric(name="PointsRejected", unit=MetricUnit.Count, value=len(result.rejected))
    return influx_reply(result, api)
