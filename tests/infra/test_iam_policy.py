"""The Lambda functions' IAM policy (.chalice/policy-<stage>.json) allows every AWS call the
code makes, and nothing it does not make.

Every boto3 client the app creates records each call it sends (a botocore event hook), while
one scenario walks every path: ingest as JSON and as line protocol (with the token's
last-used touch), an EC2 lifecycle event, history read back (`GET /v1/series`), the evaluation
with transitions, reminders, pruning, forgetting and silences, the admin API, both notifiers
with their SSM secrets and ledger, and the InfluxDB
store reading its token from SSM. Each call is mapped to the IAM action and resource ARN it
is authorised as, then checked against each stage's policy file. The operator's command
(`fleetpulse ...`, the setup below) runs with the operator's credentials, not this policy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice.test import Client

from chalicelib.adapters.aws import AwsClients
from chalicelib.settings import Settings
from chalicelib.wiring import Services, use
from fleetpulse.deploy import iam_pattern_matches
from fleetpulse.resources import create_all
from tests.support.alerting import T0
from tests.support.alerting_aws import AlertingStack, Clock, subscribed_queue
from tests.support.alerts import alert, resolved, sns_event
from tests.support.http import add_token
from tests.support.notify import put_secrets

ROOT = Path(__file__).resolve().parents[2]
REGION, ACCOUNT = "us-east-1", "123456789012"
STAGES = ("dev", "prod")


@dataclass(frozen=True)
class Call:
    action: str  # "dynamodb:UpdateItem"
    resource: str  # an ARN, or "*"
    why: str = ""  # for calls the code does not make itself


@dataclass
class Recorder:
    sent: list[tuple[Any, str, dict[str, Any]]] = field(default_factory=list)

    def record(self, client: Any, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.sent.append(
            (client.meta.service_model, model.name, json.loads(json.dumps(params, default=str)))
        )

    def calls(self) -> set[Call]:
        return {c for model, op, params in self.sent for c in iam_calls(model, op, params)}


class RecordingClients(AwsClients):
    """The app's clients, each recording what it sends."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__(region=REGION)
        self.recorder = recorder

    def _make(self, service: str) -> Any:
        client = super()._make(service)
        client.meta.events.register(
            "provide-client-params.*.*", partial(self.recorder.record, client)
        )
        return client


# DynamoDB authorises a transaction as the item operations in it.
TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def iam_calls(model: Any, operation: str, params: dict[str, Any]) -> list[Call]:
    """(IAM action, resource) pairs one API call is authorised as."""
    # The IAM prefix is the service's signing name: timestream-write signs as "timestream".
    prefix = model.signing_name
    arn = f"arn:aws:{prefix}:{REGION}:{ACCOUNT}:"
    if prefix == "dynamodb":
        if operation in ("TransactWriteItems", "TransactGetItems"):
            return [
                Call(f"dynamodb:{TRANSACT_ACTIONS[kind]}", arn + f"table/{body['TableName']}")
                for item in params["TransactItems"]
                for kind, body in item.items()
            ]
        table = f"table/{params['TableName']}"
        if params.get("IndexName"):  # a Query on an index is authorised on the index's ARN
            table += f"/index/{params['IndexName']}"
        return [Call(f"dynamodb:{operation}", arn + table)]
    if prefix == "sns" and operation == "Publish":
        return [Call("sns:Publish", params["TopicArn"])]
    if prefix == "timestream":
        if operation == "DescribeEndpoints":
            return [Call("timestream:DescribeEndpoints", "*")]
        if operation == "Query":  # authorised as Select on each table the SQL reads
            tables = re.findall(r'FROM "([^"]+)"\."([^"]+)"', params["QueryString"])
            assert tables, params["QueryString"]
            return [Call("timestream:Select", arn + f"database/{d}/table/{t}") for d, t in tables]
        table = f"database/{params['DatabaseName']}/table/{params['TableName']}"
        return [Call(f"timestream:{operation}", arn + table)]
    if prefix == "ssm" and operation == "GetParameter":
        name = params["Name"]
        return [
            Call(
                "ssm:GetParameter", arn + "parameter" + ("" if name.startswith("/") else "/") + name
            )
        ]
    if prefix == "lambda" and operation == "Invoke":
        return [Call("lambda:InvokeFunction", arn + f"function:{params['FunctionName']}")]
    raise AssertionError(f"no IAM mapping for {prefix}:{operation}: add one here")


def function_names(stage: str) -> list[str]:
    """The app's Lambda functions as chalice names them."""
    import app

    handlers = sorted(
        [s.name for s in app.app.event_sources] + [f.name for f in app.app.pure_lambda_functions]
    )
    return [f"fleetpulse-{stage}", *(f"fleetpulse-{stage}-{h}" for h in handlers)]


def platform_calls(stage: str) -> set[Call]:
    """Calls AWS makes with the functions' role on their behalf, not the code."""
    calls = set()
    for function in function_names(stage):
        stream = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{function}:log-stream:2026/11/22/[$LATEST]0123abcd"
        for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
            calls.add(Call(action, stream, "Lambda writes the function's output to its log group"))
    for handler in ("notify_slack", "notify_pagerduty"):
        calls.add(
            Call(
                "sqs:SendMessage",
                f"arn:aws:sqs:{REGION}:{ACCOUNT}:fleetpulse-{stage}-notify-failures",
                f"Lambda's on-failure destination for {handler} (routing.event_invoke_configs)",
            )
        )
    return calls


@pytest.fixture
def scenario(aws, tmp_path, slack, pagerduty, influx_v2) -> Iterator[Any]:
    def run(stage: str) -> set[Call]:
        return exercise(stage, tmp_path, slack, pagerduty, influx_v2)

    yield run
    use(None)


def exercise(stage: str, tmp_path: Path, slack: Any, pagerduty: Any, influx: Any) -> set[Call]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - name: disk-full\n"
        "    measurement: disk\n"
        "    field: used_percent\n"
        "    warning: 85\n"
        "    critical: 95\n"
        "    for: 2m\n"
        "    repeat_interval: 2m\n"
    )
    checks = tmp_path / "checks.yaml"
    checks.write_text("checks:\n  - {name: db-port, type: tcp, host: 127.0.0.1, port: 9}\n")
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:fleetpulse-{stage}-alerts"
    env = {
        "FLEETPULSE_CHECKS": str(checks),
        "FLEETPULSE_CHECKS_RUNNER": f"fleetpulse-{stage}-run_checks",
        "FLEETPULSE_STAGE": stage,
        "FLEETPULSE_TOKEN_CACHE_SECONDS": "0",
        "FLEETPULSE_ALERTS_TOPIC_ARN": topic,
        "FLEETPULSE_RULES": str(rules),
        "FLEETPULSE_PAGERDUTY_URL": pagerduty.url + "/v2/enqueue",
    }
    settings = Settings.from_env(env)
    # What the operator does before: the stack, the secrets, the tokens.
    setup = Services(settings, AwsClients(region=REGION))
    create_all(settings, setup.clients)
    put_secrets(settings, slack.url, setup.clients.get("ssm"))
    fleet, admin = add_token(setup, "fleet"), add_token(setup, "admin")
    queue = subscribed_queue(setup.clients, topic)

    recorder = Recorder()
    clock = Clock(T0)
    services = Services(settings, RecordingClients(recorder), clock=clock)
    use(services)
    import app

    with Client(app.app, stage_name=stage) as client:
        stack = AlertingStack(client, services, clock, queue, fleet, admin)
        minute = timedelta(minutes=1)
        stack.post("web-1", disk=97.0, events=[{"service": "backup", "status": "ok", "ttl": 60000}])
        stack.post("db-1", heartbeat={"state": "shutdown"})
        stack.post("spot-1", tags={"instance_id": "i-0abc"})
        terminated = client.events.generate_cw_event(
            source="aws.ec2",
            detail_type="EC2 Instance State-change Notification",
            detail={"instance-id": "i-0abc", "state": "terminated"},
            resources=[],
        )
        assert client.lambda_.invoke("ec2_lifecycle", terminated).payload["ended"] == ["spot-1"]
        for _ in range(5):  # pending, firing, a reminder
            clock.advance(minute)
            stack.post("web-1", disk=97.0)
            stack.evaluate()
        stack.post("web-2", disk=97.0)
        stack.evaluate()  # pending
        stack.post("web-2", disk=10.0)
        stack.evaluate()  # cleared before `for`: the record goes
        now_ms = int(clock().timestamp() * 1000)
        written = client.http.post(
            "/api/v2/write?precision=ms",
            headers={"Authorization": f"Token {fleet}"},
            body=f"cpu,host=web-3 user=1.5 {now_ms}\n",
        )
        assert written.status_code == 204, written.body
        silence = stack.request(
            "POST", "/v1/silences", {"matchers": {"host": "*"}, "duration": "1h"}
        )
        assert stack.request("GET", "/v1/silences").status_code == 200
        stack.request("DELETE", f"/v1/silences/{silence.json_body['silence_id']}")
        stack.request("POST", "/v1/hosts/web-1/pause")
        stack.request("DELETE", "/v1/hosts/web-1/pause")
        stack.request("DELETE", "/v1/hosts/web-1/pause")  # not paused: a read says it exists
        assert stack.request("GET", "/v1/hosts").status_code == 200
        assert stack.request("GET", "/v1/alerts").status_code == 200
        series = stack.request("GET", "/v1/series?host=web-1&measurement=disk&field=used_percent")
        assert series.status_code == 200, series.body
        assert stack.request("GET", "/status/hosts/web-1").status_code == 200  # one GetItem
        # Jobs: defined, pinged by id and by slug (created by its ping), listed, deleted.
        ping_key = add_token(setup, "ping")
        job = stack.request("PUT", "/v1/jobs/backup", {"period": "1h", "grace": "5m"})
        uuid = job.json_body["ping_url"].rsplit("/", 1)[1]
        assert client.http.post(f"/ping/{uuid}/fail", body=b"disk full").status_code == 200
        assert client.http.get(f"/ping/{ping_key}/nightly?create=1").status_code == 201
        assert stack.request("GET", "/v1/jobs").status_code == 200
        stack.evaluate()  # the failed job pages
        assert stack.request("DELETE", "/v1/jobs/nightly").status_code == 200
        clock.advance(timedelta(days=8))  # web-1 down, stale values pruned, db-1 forgotten
        stack.evaluate()
        exercise_checks(stack, client, stage)

        for function in ("notify_slack", "notify_pagerduty"):
            client.lambda_.invoke(function, sns_event(alert(), f"{function}-1"))
            client.lambda_.invoke(function, sns_event(alert(), f"{function}-1"))  # duplicate
            client.lambda_.invoke(function, sns_event(resolved(), f"{function}-2"))
        assert slack.received
        assert pagerduty.received

    # The InfluxDB store reads its token from SSM on its first write.
    token_param = f"/fleetpulse/{stage}/influxdb/token"
    setup.clients.get("ssm").put_parameter(
        Name=token_param, Value=influx.token, Type="SecureString"
    )
    influx_settings = Settings.from_env(
        {
            **env,
            "FLEETPULSE_STORE": "influxdb",
            "FLEETPULSE_INFLUX_URL": influx.url,
            "FLEETPULSE_INFLUX_ORG": influx.org,
            "FLEETPULSE_INFLUX_BUCKET": influx.bucket,
            "FLEETPULSE_INFLUX_TOKEN_PARAM": token_param,
        }
    )
    use(Services(influx_settings, RecordingClients(recorder), clock=clock))
    with Client(app.app, stage_name=stage) as client:
        posted = client.http.post(
            "/v1/ingest",
            headers={"Authorization": f"Bearer {fleet}", "Content-Type": "application/json"},
            body=json.dumps(
                {"host": "web-4", "points": [{"measurement": "cpu", "fields": {"user": 2.0}}]}
            ),
        )
        assert posted.status_code == 202, posted.body
    assert influx.requests, "nothing reached InfluxDB"
    return recorder.calls()


def exercise_checks(stack: AlertingStack, client: Client, stage: str) -> None:
    """Remote checks: the admin API, the schedule starting a runner, a runner's batch, and a
    probe elsewhere posting its results."""
    body = {"type": "tcp", "host": "127.0.0.1", "port": 9, "locations": ["us-east-1", "eu-west-1"]}
    assert stack.request("PUT", "/v1/checks/api-port", body).status_code == 201
    assert stack.request("GET", "/v1/checks").status_code == 200
    assert stack.request("GET", "/v1/checks/api-port").status_code == 200
    event = client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
    )
    report = client.lambda_.invoke("checks", event).payload
    assert report["runs"] == 2  # the runner function is not deployed here: the call is what counts
    run = {
        "check": stack.request("GET", "/v1/checks/api-port").json_body,
        "location": "us-east-1",
    }
    run["check"].pop("source")
    done = client.lambda_.invoke("run_checks", {"scheduled_at": 0, "runs": [run]}).payload
    assert (done["runs"], done["down"], done["transitions"]) == (1, 1, 0)  # quorum 2
    result = {
        "check": "api-port",
        "location": "eu-west-1",
        "time": int(stack.clock().timestamp()) * 1000,
        "up": False,
    }
    posted = stack.request(
        "POST", "/v1/check-results", {"results": [result]}, token=stack.fleet_token
    )
    assert posted.status_code == 202, posted.body
    assert stack.request("DELETE", "/v1/checks/api-port").status_code == 200


def load_policy(stage: str) -> dict[str, Any]:
    return json.loads((ROOT / ".chalice" / f"policy-{stage}.json").read_text())


def grants(policy: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(Sid, action, resource) for every pair the policy allows."""
    out = []
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource"}, statement["Sid"]
        resources = statement["Resource"]
        for action in statement["Action"]:
            for resource in [resources] if isinstance(resources, str) else resources:
                out.append((statement["Sid"], action, resource))
    return out


def allowed(call: Call, action: str, resource: str) -> bool:
    # Actions compare without case, as IAM compares them; ARNs with it.
    return iam_pattern_matches(action, call.action, case_sensitive=False) and iam_pattern_matches(
        resource, call.resource
    )


@pytest.mark.parametrize("stage", STAGES)
def test_the_policy_allows_every_call_and_grants_nothing_unused(scenario, stage):
    calls = scenario(stage) | platform_calls(stage)
    services = {c.action.split(":")[0] for c in calls}
    assert services == {"dynamodb", "sns", "timestream", "ssm", "logs", "sqs", "lambda"}
    assert Call("timestream:DescribeEndpoints", "*") in calls  # the real client's discovery
    granted = grants(load_policy(stage))

    denied = [c for c in calls if not any(allowed(c, a, r) for _, a, r in granted)]
    assert denied == [], "not allowed by the policy:\n" + "\n".join(
        map(str, sorted(denied, key=str))
    )

    unused = [(s, a, r) for s, a, r in granted if not any(allowed(c, a, r) for c in calls)]
    assert unused == [], "granted but never called:\n" + "\n".join(map(str, unused))


@pytest.mark.parametrize("stage", STAGES)
def test_no_wildcard_action_and_no_wildcard_resource_unless_aws_requires_it(stage):
    for sid, action, resource in grants(load_policy(stage)):
        assert "*" not in action, sid
        if resource == "*":
            # DescribeEndpoints (Timestream's endpoint discovery) cannot be scoped to a
            # resource: IAM only accepts "*" for it.
            assert (sid, action) == ("TimestreamEndpointDiscovery", "timestream:DescribeEndpoints")
            continue
        service = action.split(":")[0]
        m = re.fullmatch(rf"arn:aws:{service}:([a-z0-9-]+|\*):(\d{{12}}|\*):(.+)", resource)
        assert m, f"{sid}: {resource}"
        assert f"fleetpulse-{stage}" in resource or f"/fleetpulse/{stage}/" in resource, sid


def test_dev_and_prod_policies_differ_only_in_the_stage_name():
    def normal(stage: str) -> str:
        text = json.dumps(load_policy(stage))
        # `fleetpulse deploy config` may have written a real region and account.
        text = re.sub(r"(arn:aws:[a-z0-9-]+):[a-z0-9-]*:\d{12}:", r"\1:*:*:", text)
        return re.sub(rf"(?<=fleetpulse[-/]){stage}(?=[-/:\"])", "STAGE", text)

    assert normal("dev") == normal("prod")


def test_the_template_makes_a_log_group_for_every_function():
    from fleetpulse import cfn

    template = cfn.load()
    groups = [
        r["Properties"]["LogGroupName"]["Fn::Sub"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Logs::LogGroup"
    ]
    assert sorted(groups) == sorted(f"/aws/lambda/{f}" for f in function_names("${Stage}"))


def test_the_boto3_client_really_discovers_timestream_endpoints():
    """Why DescribeEndpoints is granted: a Lambda's client (no endpoint_url) asks first."""
    client = boto3.client("timestream-write", region_name=REGION)
    operation = client.meta.service_model.operation_model("WriteRecords")
    assert operation.endpoint_discovery.get("required") is True
