"""The CloudFormation template: it lints clean, the local stack creates from it exactly what
the adapters use, and its outputs are the settings .chalice/config.json gives each stage."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chalicelib.adapters.aws import AwsClients
from chalicelib.adapters.dynamodb.ledger import TTL_ATTRIBUTE
from chalicelib.routing import subscription_attributes, subscriptions
from chalicelib.settings import MetricBackend, Settings
from fleetpulse import cfn
from fleetpulse.deploy import OUTPUT_VARIABLES, STEP_OUTPUTS, configure_stage
from fleetpulse.resources import create_all

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((ROOT / "infra" / "cloudformation").glob("*.yaml"))
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())

# The key each adapter reads and writes (chalicelib/adapters/dynamodb/).
KEYS = {
    "tokens": [("token_id", "HASH", "S")],
    "hosts": [("host", "HASH", "S")],
    "alerts": [("alert_id", "HASH", "S")],
    "silences": [("silence_id", "HASH", "S")],
    "ledger": [("id", "HASH", "S"), ("channel", "RANGE", "S")],
    "checks": [("pk", "HASH", "S")],
    "jobs": [("slug", "HASH", "S")],
    "series": [("host", "HASH", "S")],
}


def cfn_lint() -> str:
    linter = shutil.which("cfn-lint", path=str(Path(sys.executable).parent))
    assert linter is not None, "cfn-lint is in requirements-dev.txt"
    return linter


def test_every_template_lints_clean_informational_checks_included():
    assert TEMPLATES == [ROOT / "infra" / "cloudformation" / "fleetpulse.yaml"]
    out = subprocess.run(
        [cfn_lint(), "--include-checks", "I", "--", *map(str, TEMPLATES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_template_fits_in_a_create_change_set_request():
    # `fleetpulse deploy stack` sends it as TemplateBody, which CloudFormation caps at 51,200
    # bytes (a larger one would need an S3 upload).
    for template in TEMPLATES:
        assert len(template.read_bytes()) < 51_200


def test_local_creation_makes_the_tables_the_adapters_use(aws):
    settings = Settings.from_env({})
    clients = AwsClients(region="us-east-1")
    create_all(settings, clients)
    dynamodb = clients.get("dynamodb")
    assert sorted(dynamodb.list_tables()["TableNames"]) == sorted(
        f"fleetpulse-dev-{t}" for t in KEYS
    )
    for short, key in KEYS.items():
        table = dynamodb.describe_table(TableName=f"fleetpulse-dev-{short}")["Table"]
        types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
        assert [
            (k["AttributeName"], k["KeyType"], types[k["AttributeName"]])
            for k in table["KeySchema"]
        ] == key, short
        # Every host writes its item once a minute: the one table on provisioned capacity.
        billing = "PROVISIONED" if short == "hosts" else "PAY_PER_REQUEST"
        assert table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED") == billing
        backups = dynamodb.describe_continuous_backups(TableName=table["TableName"])
        pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
        assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"
        ttl = dynamodb.describe_time_to_live(TableName=table["TableName"])["TimeToLiveDescription"]
        if short == "ledger":
            assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": TTL_ATTRIBUTE}
        else:  # only the ledger's items carry an expiry attribute
            assert ttl["TimeToLiveStatus"] == "DISABLED"


HOSTS_SCALING = {
    ("table/fleetpulse-dev-hosts", "dynamodb:table:WriteCapacityUnits"): (5, 10_000),
    ("table/fleetpulse-dev-hosts", "dynamodb:table:ReadCapacityUnits"): (5, 10_000),
    ("table/fleetpulse-dev-hosts/index/instance_id", "dynamodb:index:WriteCapacityUnits"): (
        5,
        10_000,
    ),
    ("table/fleetpulse-dev-hosts/index/instance_id", "dynamodb:index:ReadCapacityUnits"): (
        5,
        10_000,
    ),
}


def scaling_of(clients: AwsClients) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """The hosts table's scalable targets ((resource, dimension) -> (min, max)) and their
    target tracking policies ((resource, dimension) -> (metric, target))."""
    scaling = clients.get("application-autoscaling")
    targets = {
        (t["ResourceId"], t["ScalableDimension"]): (t["MinCapacity"], t["MaxCapacity"])
        for t in scaling.describe_scalable_targets(ServiceNamespace="dynamodb")["ScalableTargets"]
    }
    policies = {
        (p["ResourceId"], p["ScalableDimension"]): (
            p["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"][
                "PredefinedMetricType"
            ],
            p["TargetTrackingScalingPolicyConfiguration"]["TargetValue"],
        )
        for p in scaling.describe_scaling_policies(ServiceNamespace="dynamodb")["ScalingPolicies"]
        if p["PolicyType"] == "TargetTrackingScaling"
    }
    return targets, policies


def test_the_hosts_table_is_provisioned_and_auto_scaled_by_default(aws):
    clients = AwsClients(region="us-east-1")
    create_all(Settings.from_env({}), clients)
    table = clients.get("dynamodb").describe_table(TableName="fleetpulse-dev-hosts")["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    units = table["ProvisionedThroughput"]
    assert (units["ReadCapacityUnits"], units["WriteCapacityUnits"]) == (5, 5)
    [index] = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "instance_id"
    index_units = index["ProvisionedThroughput"]
    assert (index_units["ReadCapacityUnits"], index_units["WriteCapacityUnits"]) == (5, 5)

    targets, policies = scaling_of(clients)
    assert targets == HOSTS_SCALING
    # Writes arrive evenly through the minute: 70%. The evaluation reads the table in a
    # few seconds each minute: 20%, so its units read a minute's worth in 12 s.
    assert policies == {
        key: ("DynamoDBWriteCapacityUtilization", 70.0)
        if key[1].endswith("WriteCapacityUnits")
        else ("DynamoDBReadCapacityUtilization", 20.0)
        for key in HOSTS_SCALING
    }

    # Again, with other bounds and target: updated in place, nothing duplicated.
    create_all(
        Settings.from_env({}),
        clients,
        {"HostsWriteCapacityMax": "2000", "HostsWriteTargetUtilization": "50"},
    )
    targets, policies = scaling_of(clients)
    assert targets[("table/fleetpulse-dev-hosts", "dynamodb:table:WriteCapacityUnits")] == (
        5,
        2000,
    )
    assert len(targets) == len(policies) == 4
    assert sorted(target for _, target in policies.values()) == [20.0, 20.0, 50.0, 50.0]


def test_an_on_demand_hosts_table_has_no_auto_scaling(aws):
    clients = AwsClients(region="us-east-1")
    create_all(Settings.from_env({}), clients, {"HostsTableBillingMode": "PAY_PER_REQUEST"})
    table = clients.get("dynamodb").describe_table(TableName="fleetpulse-dev-hosts")["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert scaling_of(clients) == ({}, {})
    # A later stack in the provisioned mode switches the same table over.
    create_all(Settings.from_env({}), clients)
    table = clients.get("dynamodb").describe_table(TableName="fleetpulse-dev-hosts")["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert table["ProvisionedThroughput"]["WriteCapacityUnits"] == 5
    assert scaling_of(clients)[0] == HOSTS_SCALING


def test_capacity_parameters_are_checked_as_cloudformation_checks_them():
    template = cfn.load()
    for name, bad in (
        ("HostsTableBillingMode", "ON_DEMAND"),
        ("HostsWriteTargetUtilization", "95"),
        ("HostsReadTargetUtilization", "10"),
        ("HostsWriteCapacityMin", "0"),
    ):
        with pytest.raises(cfn.TemplateError, match=name):
            cfn.resolve_parameters(template["Parameters"], {name: bad})


def test_local_creation_makes_the_store_topic_email_and_failure_queue(aws):
    env = {
        "FLEETPULSE_STAGE": "prod",
        "FLEETPULSE_MEMORY_RETENTION_HOURS": "12",
        "FLEETPULSE_ALERT_EMAILS": "ops@example.com",
        "FLEETPULSE_ROUTE_EMAIL": "critical",
    }
    settings = Settings.from_env(env)
    clients = AwsClients(region="us-east-1")
    outputs = create_all(settings, clients)
    table = clients.get("timestream-write").describe_table(
        DatabaseName="fleetpulse-prod", TableName="metrics"
    )["Table"]
    assert table["RetentionProperties"]["MemoryStoreRetentionPeriodInHours"] == 12
    # A backlog older than the memory store goes to the magnetic store; the collector
    # accepts points as old as the magnetic store keeps (its setting is the stack's output).
    assert table["MagneticStoreWriteProperties"] == {"EnableMagneticStoreWrites": True}
    assert outputs["MagneticStoreRetentionDays"] == "365"

    sns = clients.get("sns")
    topic = "arn:aws:sns:us-east-1:123456789012:fleetpulse-prod-alerts"
    assert outputs["AlertsTopicArn"] == topic
    [sub] = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert (sub["Protocol"], sub["Endpoint"]) == ("email", "ops@example.com")
    attributes = sns.get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])[
        "Attributes"
    ]
    [email] = [s for s in subscriptions(settings) if s["channel"] == "email"]
    expected = subscription_attributes(email)
    assert json.loads(attributes["FilterPolicy"]) == json.loads(expected["FilterPolicy"])
    assert attributes["FilterPolicyScope"] == expected["FilterPolicyScope"]

    sqs = clients.get("sqs")
    url = sqs.get_queue_url(QueueName="fleetpulse-prod-notify-failures")["QueueUrl"]
    queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert queue["MessageRetentionPeriod"] == str(14 * 24 * 3600)
    assert queue["QueueArn"] == outputs["NotifyFailureQueueArn"]
    assert outputs["NotifyFailureQueueName"] == settings.notify.failure_queue

    # Again: nothing fails, nothing is duplicated, a changed route is applied.
    create_all(Settings.from_env({**env, "FLEETPULSE_ROUTE_EMAIL": "all"}), clients)
    [sub] = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    policy = sns.get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])["Attributes"]
    assert json.loads(policy["FilterPolicy"]) == {"severity": ["critical", "warning", "info"]}


def test_an_influxdb_stage_gets_no_timestream_and_its_influx_settings(aws):
    env = {
        "FLEETPULSE_STAGE": "local",
        "FLEETPULSE_STORE": "influxdb",
        "FLEETPULSE_INFLUX_URL": "https://influx.example:8086",
        "FLEETPULSE_INFLUX_ORG": "fleetpulse",
        "FLEETPULSE_INFLUX_BUCKET": "metrics",
        "FLEETPULSE_INFLUX_TOKEN_PARAM": "/fleetpulse/local/influxdb/token",
    }
    settings = Settings.from_env(env)
    clients = AwsClients(region="us-east-1")
    outputs = create_all(settings, clients)
    assert clients.get("timestream-write").list_databases()["Databases"] == []
    assert "TimestreamDatabase" not in outputs
    assert {k: outputs[k] for k in ("Store", "InfluxUrl", "InfluxOrg", "InfluxBucket")} == {
        "Store": "influxdb",
        "InfluxUrl": "https://influx.example:8086",
        "InfluxOrg": "fleetpulse",
        "InfluxBucket": "metrics",
    }
    assert outputs["InfluxTokenParameter"] == "/fleetpulse/local/influxdb/token"


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"FLEETPULSE_STAGE": "prod", "FLEETPULSE_ALERT_EMAILS": "ops@example.com"},
        {"FLEETPULSE_STAGE": "local", "FLEETPULSE_ROUTE_EMAIL": "none"},
        {
            "FLEETPULSE_STAGE": "staging",
            "FLEETPULSE_STORE": "influxdb",
            "FLEETPULSE_INFLUX_URL": "http://10.0.0.5:8086",
            "FLEETPULSE_INFLUX_API": "v1",
            "FLEETPULSE_INFLUX_DB": "fleet",
            "FLEETPULSE_INFLUX_USERNAME": "collector",
            "FLEETPULSE_INFLUX_TOKEN_PARAM": "/fleetpulse/staging/influxdb/password",
        },
    ],
)
def test_the_stacks_outputs_configure_the_same_settings_back(aws, env):
    """settings -> template parameters -> stack -> outputs -> environment -> the same settings."""
    settings = Settings.from_env(env)
    outputs = create_all(settings, AwsClients(region="us-east-1"))
    config = {"stages": {settings.stage: {}}}
    configure_stage(config, settings.stage, outputs)
    again = Settings.from_env(config["stages"][settings.stage]["environment_variables"])
    # A Timestream table takes magnetic store writes: its retention becomes the window.
    magnetic = {}
    if "MagneticStoreRetentionDays" in outputs:
        magnetic["FLEETPULSE_MAGNETIC_RETENTION_DAYS"] = outputs["MagneticStoreRetentionDays"]
    assert (settings.store is MetricBackend.TIMESTREAM) == bool(magnetic)
    assert again == Settings.from_env(
        {**env, "FLEETPULSE_ALERTS_TOPIC_ARN": outputs["AlertsTopicArn"], **magnetic}
    )


def test_every_output_sets_a_variable_or_feeds_a_deploy_step():
    template = cfn.load()
    assert set(template["Outputs"]) == set(OUTPUT_VARIABLES) | STEP_OUTPUTS
    for name, output in template["Outputs"].items():
        if name in OUTPUT_VARIABLES:
            assert output["Description"].startswith(OUTPUT_VARIABLES[name]), name


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_config_json_already_holds_what_each_stages_stack_outputs(aws, stage):
    """Only the topic ARN's region and account are left for `fleetpulse deploy config`."""
    outputs = create_all(Settings.from_env({"FLEETPULSE_STAGE": stage}), AwsClients("us-east-1"))
    placeholders = {
        k: v.replace("us-east-1", "REGION").replace("123456789012", "ACCOUNT_ID")
        for k, v in outputs.items()
    }
    config = copy.deepcopy(CONFIG)
    assert configure_stage(config, stage, placeholders) == []
    assert config == CONFIG


def test_a_settings_name_the_template_does_not_make_is_refused(aws):
    settings = Settings.from_env({"FLEETPULSE_HOSTS_TABLE": "my-hosts"})
    with pytest.raises(cfn.TemplateError, match="FLEETPULSE_HOSTS_TABLE is 'my-hosts'"):
        create_all(settings, AwsClients(region="us-east-1"))


def test_parameters_are_checked_as_cloudformation_checks_them():
    template = cfn.load()
    with pytest.raises(cfn.TemplateError, match="parameter Stage"):
        cfn.Stack(template, {"Stage": "Prod_1"})
    with pytest.raises(cfn.TemplateError, match="parameter MemoryStoreRetentionHours"):
        cfn.Stack(template, {"MemoryStoreRetentionHours": "0"})
    with pytest.raises(cfn.TemplateError, match="parameter EmailSeverities"):
        cfn.Stack(template, {"EmailSeverities": "critical, warning"})
    with pytest.raises(cfn.TemplateError, match="unknown parameter Region"):
        cfn.Stack(template, {"Region": "eu-west-1"})
