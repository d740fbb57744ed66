"""`make deploy` and its steps: the stack through a change set (botocore Stubber, checked
against CloudFormation's real service model), the outputs into .chalice/, and what is set
after `chalice deploy` (moto)."""

from __future__ import annotations

import io
import json
import shlex
import shutil
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from chalicelib.adapters.aws import AwsClients
from chalicelib.settings import Settings
from fleetpulse import cfn
from fleetpulse.cli import build_parser, main
from fleetpulse.commands import deploy as deploy_command
from fleetpulse.deploy import (
    DeployError,
    StackDeploy,
    configure_from_stack,
    finish,
    stage_environment,
)
from fleetpulse.resources import create_all

ROOT = Path(__file__).resolve().parents[2]
REGION, ACCOUNT = "eu-west-1", "123456789012"
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/fleetpulse-prod/1f2e3d4c"
CREATED = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def cloudformation() -> tuple[Any, Stubber]:
    client = boto3.client("cloudformation", region_name=REGION)
    return client, Stubber(client)


def described(status: str, outputs: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """A DescribeStacks reply for the stack, as CloudFormation shapes it."""
    stack: dict[str, Any] = {
        "StackId": STACK_ID,
        "StackName": "fleetpulse-prod",
        "CreationTime": CREATED,
        "StackStatus": status,
        **extra,
    }
    if outputs is not None:
        stack["Outputs"] = [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()]
    return {"Stacks": [stack]}


def stack_outputs(stage: str = "prod", **env: str) -> dict[str, str]:
    """What the stack outputs for a stage: the template created on moto in REGION."""
    settings = Settings.from_env({"FLEETPULSE_STAGE": stage, **env})
    return create_all(settings, AwsClients(region=REGION))


# -- make deploy ---------------------------------------------------------------------------


def make(*args: str) -> subprocess.CompletedProcess[str]:
    make_bin = shutil.which("make")
    assert make_bin is not None
    return subprocess.run(
        [make_bin, "-s", "--no-print-directory", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_make_deploy_dry_run_prints_the_four_steps_in_order():
    out = make(
        "deploy", "STAGE=prod", "DRY_RUN=1", "PARAMS=AlertEmail=ops@example.com Store=timestream"
    )
    assert out.returncode == 0, out.stderr
    commands = [line for line in out.stdout.splitlines() if not line.startswith("#")]
    assert commands == [
        ".venv/bin/fleetpulse --stage prod deploy stack"
        " --parameter AlertEmail=ops@example.com --parameter Store=timestream",
        ".venv/bin/fleetpulse --stage prod deploy config",
        ".venv/bin/chalice deploy --stage prod",
        ".venv/bin/fleetpulse --stage prod deploy finish",
    ]
    steps = [line for line in out.stdout.splitlines() if line.startswith("#")]
    assert [s.split()[1] for s in steps] == ["1/4", "2/4", "3/4", "4/4"]
    # Each printed fleetpulse command is one the command line accepts.
    for command in commands:
        argv = shlex.split(command)
        if argv[0].endswith("/fleetpulse"):
            parsed = build_parser().parse_args(argv[1:])
            assert parsed.stage == "prod"


def test_make_deploy_without_a_stage_says_how_to_call_it():
    out = make("deploy", "DRY_RUN=1")
    assert out.returncode != 0
    assert "usage: make deploy STAGE=prod" in out.stderr


# -- deploy stack ---------------------------------------------------------------------------


def test_a_new_stack_is_created_through_a_change_set_and_its_outputs_returned():
    client, stub = cloudformation()
    body = cfn.TEMPLATE.read_text()
    outputs = {"TokensTable": "fleetpulse-prod-tokens"}
    stub.add_client_error(
        "describe_stacks",
        service_error_code="ValidationError",
        service_message="Stack with id fleetpulse-prod does not exist",
        http_status_code=400,
        expected_params={"StackName": "fleetpulse-prod"},
    )
    stub.add_response(
        "create_change_set",
        {"Id": f"{STACK_ID}:changeSet/fleetpulse-1795251600/abc", "StackId": STACK_ID},
        {
            "StackName": "fleetpulse-prod",
            "ChangeSetName": "fleetpulse-1795251600",
            "ChangeSetType": "CREATE",
            "TemplateBody": body,
            "Parameters": [
                {"ParameterKey": "Stage", "ParameterValue": "prod"},
                {"ParameterKey": "AlertEmail", "ParameterValue": "ops@example.com"},
            ],
            "Tags": [{"Key": "fleetpulse:stack", "Value": "fleetpulse-prod"}],
            "Description": ANY,
        },
    )
    stub.add_response(
        "describe_change_set",
        {
            "ChangeSetName": "fleetpulse-1795251600",
            "StackName": "fleetpulse-prod",
            "Status": "CREATE_COMPLETE",
            "ExecutionStatus": "AVAILABLE",
            "Changes": [
                {
                    "Type": "Resource",
                    "ResourceChange": {
                        "Action": "Add",
                        "LogicalResourceId": "TokensTable",
                        "ResourceType": "AWS::DynamoDB::Table",
                    },
                }
            ],
        },
        {"StackName": "fleetpulse-prod", "ChangeSetName": "fleetpulse-1795251600"},
    )
    stub.add_response(
        "execute_change_set",
        {},
        {"StackName": "fleetpulse-prod", "ChangeSetName": "fleetpulse-1795251600"},
    )
    stub.add_response(
        "describe_stacks", described("CREATE_COMPLETE"), {"StackName": "fleetpulse-prod"}
    )
    stub.add_response(
        "describe_stacks", described("CREATE_COMPLETE", outputs), {"StackName": "fleetpulse-prod"}
    )
    said: list[str] = []
    with stub:
        result = StackDeploy(
            client,
            "fleetpulse-prod",
            body,
            {"Stage": "prod", "AlertEmail": "ops@example.com"},
            echo=said.append,
            delay=0,
            clock=lambda: 1795251600.0,
        ).run()
        stub.assert_no_pending_responses()
    assert result == outputs
    assert said == [
        "stack fleetpulse-prod: create, 1 changes",
        "  Add     TokensTable AWS::DynamoDB::Table",
        "stack fleetpulse-prod: create complete",
    ]


def test_an_update_with_nothing_to_change_keeps_the_previous_parameters_and_succeeds():
    client, stub = cloudformation()
    body = cfn.TEMPLATE.read_text()
    previous = [
        {"ParameterKey": "Stage", "ParameterValue": "prod"},
        {"ParameterKey": "AlertEmail", "ParameterValue": "ops@example.com"},
        {"ParameterKey": "MemoryStoreRetentionHours", "ParameterValue": "12"},
    ]
    stub.add_response("describe_stacks", described("UPDATE_COMPLETE", {}, Parameters=previous))
    stub.add_response(
        "create_change_set",
        {"Id": f"{STACK_ID}:changeSet/x/1", "StackId": STACK_ID},
        {
            "StackName": "fleetpulse-prod",
            "ChangeSetName": ANY,
            "ChangeSetType": "UPDATE",
            "TemplateBody": body,
            # Given values, then every earlier value the operator did not give again.
            "Parameters": [
                {"ParameterKey": "Stage", "ParameterValue": "prod"},
                {"ParameterKey": "MemoryStoreRetentionHours", "UsePreviousValue": True},
                {"ParameterKey": "AlertEmail", "UsePreviousValue": True},
            ],
            "Tags": ANY,
            "Description": ANY,
        },
    )
    stub.add_response(
        "describe_change_set",
        {
            "Status": "FAILED",
            "StatusReason": "The submitted information didn't contain changes. Submit different"
            " information to create a change set.",
            "ExecutionStatus": "UNAVAILABLE",
        },
    )
    stub.add_response(
        "delete_change_set", {}, {"StackName": "fleetpulse-prod", "ChangeSetName": ANY}
    )
    stub.add_response("describe_stacks", described("UPDATE_COMPLETE", {"Stage": "prod"}))
    said: list[str] = []
    with stub:
        result = StackDeploy(
            client, "fleetpulse-prod", body, {"Stage": "prod"}, echo=said.append, delay=0
        ).run()
        stub.assert_no_pending_responses()
    assert result == {"Stage": "prod"}
    assert said == ["stack fleetpulse-prod: no changes"]


def test_a_stack_that_failed_to_create_must_be_deleted_first():
    client, stub = cloudformation()
    stub.add_response("describe_stacks", described("ROLLBACK_COMPLETE"))
    with stub, pytest.raises(DeployError, match="delete-stack --stack-name fleetpulse-prod"):
        StackDeploy(client, "fleetpulse-prod", cfn.TEMPLATE.read_text(), {"Stage": "prod"}).run()


def test_the_stack_command_refuses_a_bad_parameter_before_calling_aws(capsys, monkeypatch):
    def no_aws(args: Any, service: str) -> Any:
        raise AssertionError("no call may be made")

    monkeypatch.setattr(deploy_command, "client", no_aws)
    status = main(["--stage", "prod", "deploy", "stack", "--parameter", "AlertEmail=a@b, c@d"])
    assert status == 1
    assert "parameter AlertEmail" in capsys.readouterr().err
    assert main(["--stage", "prod", "deploy", "stack", "--parameter", "Regoin=x"]) == 1
    assert "unknown parameter Regoin" in capsys.readouterr().err


# -- deploy config --------------------------------------------------------------------------


@pytest.fixture
def chalice_dir(tmp_path: Path) -> Path:
    target = tmp_path / ".chalice"
    target.mkdir()
    for name in ("config.json", "policy-dev.json", "policy-prod.json"):
        shutil.copy(ROOT / ".chalice" / name, target / name)
    return target


def stubbed_describe(monkeypatch: Any, outputs: dict[str, str], times: int) -> Stubber:
    client, stub = cloudformation()
    for _ in range(times):
        stub.add_response(
            "describe_stacks",
            described("CREATE_COMPLETE", outputs),
            {"StackName": "fleetpulse-prod"},
        )
    stub.activate()
    monkeypatch.setattr(deploy_command, "client", lambda args, service: client)
    return stub


def test_config_writes_the_stacks_outputs_and_is_idempotent(aws, chalice_dir, capsys, monkeypatch):
    outputs = stack_outputs("prod", FLEETPULSE_ALERT_EMAILS="ops@example.com")
    before = json.loads((chalice_dir / "config.json").read_text())
    stub = stubbed_describe(monkeypatch, outputs, times=2)
    args = ["--stage", "prod", "deploy", "config", "--chalice-dir", str(chalice_dir)]

    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    second = capsys.readouterr().out
    stub.assert_no_pending_responses()

    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:fleetpulse-prod-alerts"
    assert first.splitlines() == [
        "config.json, stage prod: changed 2",
        f"  ~ FLEETPULSE_ALERTS_TOPIC_ARN: arn:aws:sns:REGION:ACCOUNT_ID:fleetpulse-prod-alerts -> {topic}",
        "  + FLEETPULSE_ALERT_EMAILS=ops@example.com",
        "policy-prod.json: changed 25 ARNs to the stack's region and account",
    ]
    assert second.splitlines() == [
        "config.json, stage prod: up to date",
        "policy-prod.json: up to date",
    ]
    after = json.loads((chalice_dir / "config.json").read_text())
    env = after["stages"]["prod"]["environment_variables"]
    assert env["FLEETPULSE_ALERTS_TOPIC_ARN"] == topic
    # Everything else stays as it was: the other stage, the functions, the top level.
    before["stages"]["prod"]["environment_variables"].update(
        FLEETPULSE_ALERTS_TOPIC_ARN=topic, FLEETPULSE_ALERT_EMAILS="ops@example.com"
    )
    assert after == before
    policy = (chalice_dir / "policy-prod.json").read_text()
    assert f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/fleetpulse-prod-tokens" in policy
    assert ":*:*:" not in policy
    assert '"Resource": "*"' in policy  # DescribeEndpoints cannot be scoped
    assert (chalice_dir / "policy-dev.json").read_text() == (
        ROOT / ".chalice" / "policy-dev.json"
    ).read_text()
    # What chalice reads: the stage's variables, settings the app accepts.
    settings = Settings.from_env(stage_environment(after, "prod"))
    assert settings.alerts_topic_arn == topic
    assert settings.notify.alert_emails == ("ops@example.com",)


def test_config_dry_run_writes_nothing(aws, chalice_dir, capsys, monkeypatch):
    stubbed_describe(monkeypatch, stack_outputs(), times=1)
    before = {p.name: p.read_text() for p in chalice_dir.iterdir()}
    args = ["--stage", "prod", "deploy", "config", "--dry-run", "--chalice-dir", str(chalice_dir)]
    assert main(args) == 0
    assert "would change 1" in capsys.readouterr().out
    assert {p.name: p.read_text() for p in chalice_dir.iterdir()} == before


def test_config_refuses_a_policy_already_written_for_another_account(aws, chalice_dir):
    outputs = stack_outputs()
    configure_from_stack(outputs, "prod", chalice_dir)
    other = {k: v.replace(ACCOUNT, "210987654321") for k, v in outputs.items()}
    with pytest.raises(DeployError, match=r"policy-prod\.json grants nothing on arn:aws:sns"):
        configure_from_stack(other, "prod", chalice_dir)


def test_an_influxdb_stack_sets_the_influx_variables_and_clears_them_when_it_goes_back(
    aws, chalice_dir
):
    influx = stack_outputs(
        "prod",
        FLEETPULSE_STORE="influxdb",
        FLEETPULSE_INFLUX_URL="https://db.example:8086",
        FLEETPULSE_INFLUX_ORG="fleet",
        FLEETPULSE_INFLUX_BUCKET="metrics",
        FLEETPULSE_INFLUX_TOKEN_PARAM="/fleetpulse/prod/influxdb/token",
    )
    result = configure_from_stack(influx, "prod", chalice_dir)
    assert {c.variable for c in result.changes} >= {
        "FLEETPULSE_STORE",
        "FLEETPULSE_INFLUX_URL",
        "FLEETPULSE_INFLUX_ORG",
        "FLEETPULSE_INFLUX_BUCKET",
        "FLEETPULSE_INFLUX_TOKEN_PARAM",
    }
    config = json.loads((chalice_dir / "config.json").read_text())
    settings = Settings.from_env(stage_environment(config, "prod"))
    assert (settings.store, settings.influx_url) == ("influxdb", "https://db.example:8086")

    back = configure_from_stack(stack_outputs("prod"), "prod", chalice_dir)
    config = json.loads((chalice_dir / "config.json").read_text())
    env = stage_environment(config, "prod")
    assert env["FLEETPULSE_STORE"] == "timestream"
    assert env["FLEETPULSE_INFLUX_URL"] == env["FLEETPULSE_INFLUX_TOKEN_PARAM"] == ""
    assert {c.variable for c in back.changes} >= {"FLEETPULSE_INFLUX_URL", "FLEETPULSE_STORE"}


# -- deploy finish ----------------------------------------------------------------------------


def chalice_deployed(stage: str, topic: str) -> None:
    """What `chalice deploy` leaves on moto: the notifier functions, subscribed, no filter."""
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(
        RoleName=f"fleetpulse-{stage}",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("app.py", "def handler(event, context):\n    return None\n")
    lam, sns = boto3.client("lambda", region_name=REGION), boto3.client("sns", region_name=REGION)
    lam.create_function(
        FunctionName=f"fleetpulse-{stage}",
        Runtime="python3.11",
        Role=role,
        Handler="app.app",
        Code={"ZipFile": code.getvalue()},
    )
    for handler in ("notify_slack", "notify_pagerduty"):
        arn = lam.create_function(
            FunctionName=f"fleetpulse-{stage}-{handler}",
            Runtime="python3.11",
            Role=role,
            Handler=f"app.{handler}",
            Code={"ZipFile": code.getvalue()},
        )["FunctionArn"]
        sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=arn)


def test_finish_sets_retries_failure_queue_and_filter_policies(aws, chalice_dir):
    outputs = stack_outputs("prod", FLEETPULSE_ALERT_EMAILS="ops@example.com")
    configure_from_stack(outputs, "prod", chalice_dir)
    topic = outputs["AlertsTopicArn"]
    chalice_deployed("prod", topic)
    client, stub = cloudformation()
    stub.add_response("describe_stacks", described("UPDATE_COMPLETE", outputs))
    lam, sns = boto3.client("lambda", region_name=REGION), boto3.client("sns", region_name=REGION)
    said: list[str] = []
    with stub:
        status = finish(
            client,
            lam,
            sns,
            stage="prod",
            stack="fleetpulse-prod",
            chalice_dir=chalice_dir,
            echo=said.append,
        )
    assert status == 0, said

    for handler in ("notify_slack", "notify_pagerduty"):
        config = lam.get_function_event_invoke_config(FunctionName=f"fleetpulse-prod-{handler}")
        assert config["MaximumRetryAttempts"] == 2
        assert (
            config["DestinationConfig"]["OnFailure"]["Destination"]
            == outputs["NotifyFailureQueueArn"]
        )
    policies = {}
    for sub in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]:
        attributes = sns.get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])[
            "Attributes"
        ]
        policies[sub["Endpoint"].rsplit(":", 1)[-1]] = json.loads(attributes["FilterPolicy"])
    assert policies == {
        "fleetpulse-prod-notify_slack": {"severity": ["critical", "warning", "info"]},
        "fleetpulse-prod-notify_pagerduty": {"severity": ["critical"]},
        "ops@example.com": {"severity": ["critical", "warning"]},  # the stack's
    }
    assert "email ops@example.com: confirmed, filter policy from the stack" in said

    # The API function gets a public function URL (the app checks the bearer token),
    # granted both ways a URL invocation is authorised; a second run keeps it.
    url = lam.get_function_url_config(FunctionName="fleetpulse-prod")
    assert url["AuthType"] == "NONE"
    assert f"function URL: {url['FunctionUrl']} (the agents' url; API Gateway stays too)" in said
    statements = json.loads(lam.get_policy(FunctionName="fleetpulse-prod")["Policy"])["Statement"]
    actions = sorted(s["Action"] for s in statements if s["Principal"] in ("*", {"AWS": "*"}))
    assert actions == ["lambda:InvokeFunction", "lambda:InvokeFunctionUrl"]
    client, stub = cloudformation()
    stub.add_response("describe_stacks", described("UPDATE_COMPLETE", outputs))
    with stub:
        assert (
            finish(
                client,
                lam,
                sns,
                stage="prod",
                stack="fleetpulse-prod",
                chalice_dir=chalice_dir,
                echo=said.append,
            )
            == 0
        )
    assert (
        lam.get_function_url_config(FunctionName="fleetpulse-prod")["FunctionUrl"]
        == (url["FunctionUrl"])
    )


def test_finish_before_chalice_deploy_says_so(aws, chalice_dir):
    outputs = stack_outputs()
    configure_from_stack(outputs, "prod", chalice_dir)
    client, stub = cloudformation()
    stub.add_response("describe_stacks", described("CREATE_COMPLETE", outputs))
    lam, sns = boto3.client("lambda", region_name=REGION), boto3.client("sns", region_name=REGION)
    with stub, pytest.raises(DeployError, match="run `chalice deploy --stage prod` first"):
        finish(client, lam, sns, stage="prod", stack="fleetpulse-prod", chalice_dir=chalice_dir)


def test_finish_before_deploy_config_says_so(aws, chalice_dir):
    client, stub = cloudformation()
    stub.add_response("describe_stacks", described("CREATE_COMPLETE", stack_outputs()))
    with stub, pytest.raises(DeployError, match="deploy config"):
        finish(client, None, None, stage="prod", stack="fleetpulse-prod", chalice_dir=chalice_dir)


def lambda_stub() -> tuple[Any, Stubber]:
    """A Lambda client whose requests and replies are checked against the service model."""
    client = boto3.client("lambda", region_name=REGION)
    return client, Stubber(client)


def function_configuration(name: str, logging: dict[str, str]) -> dict[str, Any]:
    return {
        "FunctionName": name,
        "FunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
        "Runtime": "python3.11",
        "Handler": "app.app",
        "LoggingConfig": {**logging, "LogGroup": f"/aws/lambda/{name}"},
    }


def stub_finish_calls(stub: Stubber, logging: dict[str, str] | None) -> None:
    """What finish asks Lambda up to its logging step: the function URL, then the API
    function's configuration (`logging` its LoggingConfig; None: not asked)."""
    stub.add_response(
        "get_function_url_config",
        {
            "FunctionUrl": "https://abc.lambda-url.eu-west-1.on.aws/",
            "FunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fleetpulse-prod",
            "AuthType": "NONE",
            "CreationTime": "2026-11-21T09:00:00.000+0000",
            "LastModifiedTime": "2026-11-21T09:00:00.000+0000",
        },
        {"FunctionName": "fleetpulse-prod"},
    )
    if logging is not None:
        stub.add_response(
            "get_function_configuration",
            function_configuration("fleetpulse-prod", logging),
            {"FunctionName": "fleetpulse-prod"},
        )


def stub_retries(stub: Stubber) -> None:
    for handler in ("notify_slack", "notify_pagerduty"):
        stub.add_response(
            "put_function_event_invoke_config",
            {},
            {
                "FunctionName": f"fleetpulse-prod-{handler}",
                "MaximumRetryAttempts": ANY,
                "MaximumEventAgeInSeconds": ANY,
                "DestinationConfig": ANY,
            },
        )


QUIET = {"LogFormat": "JSON", "SystemLogLevel": "WARN", "ApplicationLogLevel": "INFO"}
DEFAULT_LOGS = {"LogFormat": "Text"}


def run_finish(lam: Any, outputs: dict[str, str], chalice_dir: Path, said: list[str]) -> int:
    client, stub = cloudformation()
    stub.add_response("describe_stacks", described("UPDATE_COMPLETE", outputs))
    with stub:
        return finish(
            client,
            lam,
            boto3.client("sns", region_name=REGION),
            stage="prod",
            stack="fleetpulse-prod",
            chalice_dir=chalice_dir,
            echo=said.append,
        )


def test_finish_stops_the_api_functions_platform_lines_once(aws, chalice_dir):
    outputs = stack_outputs("prod")
    configure_from_stack(outputs, "prod", chalice_dir)
    chalice_deployed("prod", outputs["AlertsTopicArn"])
    lam, stub = lambda_stub()
    # First finish: Lambda's default (text, START/END/REPORT) becomes JSON with system
    # logs at WARN, the app's at POWERTOOLS_LOG_LEVEL; only the API function is changed.
    stub_finish_calls(stub, DEFAULT_LOGS)
    stub.add_response(
        "update_function_configuration",
        function_configuration("fleetpulse-prod", QUIET),
        {"FunctionName": "fleetpulse-prod", "LoggingConfig": QUIET},
    )
    stub_retries(stub)
    # Second finish: the function already has it, no update.
    stub_finish_calls(stub, QUIET)
    stub_retries(stub)
    said: list[str] = []
    with stub:
        assert run_finish(lam, outputs, chalice_dir, said) == 0
        assert run_finish(lam, outputs, chalice_dir, said) == 0
    stub.assert_no_pending_responses()
    logs = [line for line in said if line.startswith("logs: ")]
    assert logs == [
        "logs: fleetpulse-prod: JSON, system logs at WARN (no START/END/REPORT lines),"
        " app logs at INFO",
        "logs: fleetpulse-prod: JSON, system logs at WARN (no START/END/REPORT lines),"
        " app logs at INFO (already)",
    ]


def test_finish_follows_the_stages_log_level_and_keeps_platform_lines_when_asked(aws, chalice_dir):
    outputs = stack_outputs("prod")
    configure_from_stack(outputs, "prod", chalice_dir)
    chalice_deployed("prod", outputs["AlertsTopicArn"])
    config = json.loads((chalice_dir / "config.json").read_text())
    config["stages"]["prod"]["environment_variables"]["POWERTOOLS_LOG_LEVEL"] = "WARNING"
    (chalice_dir / "config.json").write_text(json.dumps(config))
    lam, stub = lambda_stub()
    # A log level of another spelling: Lambda's WARN, which is what powertools then logs at.
    warn = {**QUIET, "ApplicationLogLevel": "WARN"}
    stub_finish_calls(stub, QUIET)
    stub.add_response(
        "update_function_configuration",
        function_configuration("fleetpulse-prod", warn),
        {"FunctionName": "fleetpulse-prod", "LoggingConfig": warn},
    )
    stub_retries(stub)
    said: list[str] = []
    with stub:
        assert run_finish(lam, outputs, chalice_dir, said) == 0
    stub.assert_no_pending_responses()

    # FLEETPULSE_PLATFORM_LOGS=true: Lambda's default is kept, the function not read.
    config["stages"]["prod"]["environment_variables"]["FLEETPULSE_PLATFORM_LOGS"] = "true"
    (chalice_dir / "config.json").write_text(json.dumps(config))
    lam, stub = lambda_stub()
    stub_finish_calls(stub, None)  # the function's configuration is not even read
    stub_retries(stub)
    said = []
    with stub:
        assert run_finish(lam, outputs, chalice_dir, said) == 0
    stub.assert_no_pending_responses()
    assert not [line for line in said if line.startswith("logs: ")]
