"""The AWS resources fleetpulse needs, created from the deploy template itself.

`infra/cloudformation/fleetpulse.yaml` is the one definition: CloudFormation creates it in
AWS; here `fleetpulse.cfn` evaluates it for a stage's settings and each resource type is
turned into the API calls that create the same thing on the embedded AWS of the local
stack and of the tests (moto). So the tables, keys, TTLs, capacity and its auto scaling,
topic, subscriptions and queue the code runs against locally are the ones it gets in the
cloud.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.core.notify import Channel
from chalicelib.settings import MetricBackend, Settings
from fleetpulse import cfn

StackOutputs = dict[str, str]


def stack_parameters(settings: Settings) -> dict[str, str]:
    """The template's parameters for the stage `settings` describe."""
    from chalicelib.core.alert_message import Severity

    email = settings.notify.routes.get(Channel.EMAIL, frozenset())
    params = {
        "Stage": settings.stage,
        "Store": settings.store.value,
        "MemoryStoreRetentionHours": str(
            int(settings.limits.memory_retention.total_seconds()) // 3600
        ),
        **(
            {"MagneticStoreRetentionDays": str(settings.limits.magnetic_retention.days)}
            if settings.limits.magnetic_retention is not None
            else {}
        ),
        # The template takes one address (a list address reaches several people).
        "AlertEmail": settings.notify.alert_emails[0] if settings.notify.alert_emails else "",
        "EmailSeverities": ",".join(s.value for s in Severity if s in email) or "none",
        "InfluxApi": settings.influx_api.value,
    }
    for name, value in (
        ("InfluxUrl", settings.influx_url),
        ("InfluxOrg", settings.influx_org),
        ("InfluxBucket", settings.influx_bucket),
        ("InfluxDatabase", settings.influx_db),
        ("InfluxUsername", settings.influx_username),
        ("InfluxTokenParameter", settings.influx_token_param),
    ):
        if value:
            params[name] = value
    return params


def stack(
    settings: Settings,
    pseudo: Mapping[str, str | Callable[[], str]] | None = None,
    parameters: Mapping[str, str] | None = None,
) -> cfn.Stack:
    """The template evaluated for `settings`' stage (`parameters`: others given, as to
    `deploy stack`)."""
    return cfn.Stack(
        cfn.load(),
        {**stack_parameters(settings), **(parameters or {})},
        {
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": f"fleetpulse-{settings.stage}",
            **(pseudo or {}),
        },
    )


def table_definitions(settings: Settings) -> list[dict[str, Any]]:
    """CreateTable requests for every DynamoDB table of the template."""
    return [_create_table_request(props) for props in _tables(settings)]


def ledger_table(settings: Settings) -> dict[str, Any]:
    """The notification ledger's CreateTable request."""
    [ledger] = [d for d in table_definitions(settings) if d["TableName"] == settings.ledger_table]
    return ledger


def ttl_definitions(settings: Settings) -> list[dict[str, Any]]:
    """UpdateTimeToLive requests: tables whose items expire on their own."""
    return [
        {
            "TableName": props["TableName"],
            "TimeToLiveSpecification": props["TimeToLiveSpecification"],
        }
        for props in _tables(settings)
        if "TimeToLiveSpecification" in props
    ]


def _tables(settings: Settings) -> list[dict[str, Any]]:
    s = stack(settings)
    return [
        s.resolve(props, {}, name)
        for name, kind, props in s.resources()
        if kind == "AWS::DynamoDB::Table"
    ]


def create_all(
    settings: Settings, clients: Any, parameters: Mapping[str, str] | None = None
) -> StackOutputs:
    """Create every resource of the template for `settings`' stage (idempotent); return the
    stack's outputs, as CloudFormation would report them. `parameters`: template
    parameters beside those the settings give (HostsTableBillingMode, say).

    Raises `cfn.TemplateError` when a name the settings use is not the one the template
    gives (a FLEETPULSE_*_TABLE override, say): the app would look for what was not made.
    """
    region = clients.region or settings.region or "us-east-1"
    s = stack(
        settings,
        {
            "AWS::Region": region,
            "AWS::AccountId": lambda: str(clients.get("sts").get_caller_identity()["Account"]),
        },
        parameters,
    )
    created: dict[str, cfn.Created] = {}
    for name, kind, props in s.resources():
        creator = CREATORS.get(kind)
        if creator is None:
            raise cfn.TemplateError(f"{name}: the local stack cannot create {kind}")
        created[name] = creator(clients, s.resolve(props, created, name))
    outputs = s.outputs(created)
    _check_settings(settings, outputs)
    return outputs


def _check_settings(settings: Settings, outputs: StackOutputs) -> None:
    from fleetpulse.deploy import OUTPUT_VARIABLES

    mine = {
        "FLEETPULSE_TOKENS_TABLE": settings.tokens_table,
        "FLEETPULSE_HOSTS_TABLE": settings.hosts_table,
        "FLEETPULSE_SERIES_TABLE": settings.series_table,
        "FLEETPULSE_ALERTS_TABLE": settings.alerts_table,
        "FLEETPULSE_SILENCES_TABLE": settings.silences_table,
        "FLEETPULSE_LEDGER_TABLE": settings.ledger_table,
        "FLEETPULSE_CHECKS_TABLE": settings.checks_table,
        "FLEETPULSE_JOBS_TABLE": settings.jobs_table,
        "FLEETPULSE_ALERTS_TOPIC": settings.notify.alerts_topic,
        "FLEETPULSE_NOTIFY_FAILURE_QUEUE": settings.notify.failure_queue,
    }
    if settings.alerts_topic_arn:
        mine["FLEETPULSE_ALERTS_TOPIC_ARN"] = settings.alerts_topic_arn
    if settings.store is MetricBackend.TIMESTREAM:
        mine["FLEETPULSE_TIMESTREAM_DATABASE"] = settings.timestream_database
        mine["FLEETPULSE_TIMESTREAM_TABLE"] = settings.timestream_table
    for output, variable in OUTPUT_VARIABLES.items():
        if variable in mine and output in outputs and outputs[output] != mine[variable]:
            raise cfn.TemplateError(
                f"{variable} is {mine[variable]!r} but the template makes {outputs[output]!r};"
                " unset it, or change infra/cloudformation/fleetpulse.yaml"
            )


# -- one function per resource type: the API calls CloudFormation would make ---------


def _create_table_request(props: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "TableName",
        "KeySchema",
        "AttributeDefinitions",
        "BillingMode",
        "GlobalSecondaryIndexes",
        "LocalSecondaryIndexes",
        "ProvisionedThroughput",
        "StreamSpecification",
        "SSESpecification",
        "TableClass",
    )
    request = {k: props[k] for k in keys if k in props}
    # CloudFormation takes numbers from parameters as strings; the API takes numbers.
    if "ProvisionedThroughput" in request:
        request["ProvisionedThroughput"] = _units(request["ProvisionedThroughput"])
    if "GlobalSecondaryIndexes" in request:
        request["GlobalSecondaryIndexes"] = [
            {**index, "ProvisionedThroughput": _units(index["ProvisionedThroughput"])}
            if "ProvisionedThroughput" in index
            else index
            for index in request["GlobalSecondaryIndexes"]
        ]
    return request


def _units(throughput: Mapping[str, Any]) -> dict[str, int]:
    return {k: int(v) for k, v in throughput.items()}


def _dynamodb_table(clients: Any, props: Mapping[str, Any]) -> cfn.Created:
    dynamodb = clients.get("dynamodb")
    name = props["TableName"]
    request = _create_table_request(props)
    try:
        dynamodb.create_table(**request)
    except dynamodb.exceptions.ResourceInUseException:
        _update_billing(dynamodb, request)
    ttl = props.get("TimeToLiveSpecification")
    if ttl is not None:
        status = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        on = status.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
        if (
            on != bool(ttl["Enabled"])
            or status.get("AttributeName", ttl["AttributeName"]) != ttl["AttributeName"]
        ):
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    pitr = props.get("PointInTimeRecoverySpecification")
    if pitr is not None:
        dynamodb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification=pitr)
    table = dynamodb.describe_table(TableName=name)["Table"]
    attributes = {"Arn": table["TableArn"]}
    if "LatestStreamArn" in table:
        attributes["StreamArn"] = table["LatestStreamArn"]
    return cfn.Created(name, attributes)


def _update_billing(dynamodb: Any, request: Mapping[str, Any]) -> None:
    """An existing table put in the template's capacity mode, as a stack update would."""
    table = dynamodb.describe_table(TableName=request["TableName"])["Table"]
    mode = request.get("BillingMode", "PROVISIONED")
    if table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED") == mode:
        return  # the units are auto scaling's to move, as CloudFormation leaves them
    update: dict[str, Any] = {"TableName": request["TableName"], "BillingMode": mode}
    if mode == "PROVISIONED":
        update["ProvisionedThroughput"] = request["ProvisionedThroughput"]
        indexes = [
            {"Update": {k: index[k] for k in ("IndexName", "ProvisionedThroughput")}}
            for index in request.get("GlobalSecondaryIndexes", [])
        ]
        if indexes:
            update["GlobalSecondaryIndexUpdates"] = indexes
    dynamodb.update_table(**update)


def _scalable_target(clients: Any, props: Mapping[str, Any]) -> cfn.Created:
    """RegisterScalableTarget (it creates or updates). No RoleARN: the service-linked role."""
    scaling = clients.get("application-autoscaling")
    target = _target(props)
    request: dict[str, Any] = {
        **target,
        "MinCapacity": int(props["MinCapacity"]),
        "MaxCapacity": int(props["MaxCapacity"]),
    }
    if "RoleARN" in props:
        request["RoleARN"] = props["RoleARN"]
    scaling.register_scalable_target(**request)
    # Ref: CloudFormation's id of a scalable target, `resource|dimension|namespace`.
    ref = "|".join(target[k] for k in ("ResourceId", "ScalableDimension", "ServiceNamespace"))
    return cfn.Created(ref, {"Id": ref})


def _scaling_policy(clients: Any, props: Mapping[str, Any]) -> cfn.Created:
    """PutScalingPolicy (it creates or updates the policy of that name)."""
    scaling = clients.get("application-autoscaling")
    if "ScalingTargetId" in props:
        resource, dimension, namespace = str(props["ScalingTargetId"]).split("|")
        target = {
            "ServiceNamespace": namespace,
            "ResourceId": resource,
            "ScalableDimension": dimension,
        }
    else:
        target = _target(props)
    request: dict[str, Any] = {
        **target,
        "PolicyName": props["PolicyName"],
        "PolicyType": props["PolicyType"],
    }
    tracking = props.get("TargetTrackingScalingPolicyConfiguration")
    if tracking is not None:
        request["TargetTrackingScalingPolicyConfiguration"] = {
            **tracking,
            "TargetValue": float(tracking["TargetValue"]),
        }
    arn = scaling.put_scaling_policy(**request)["PolicyARN"]
    return cfn.Created(arn, {"Arn": arn})


def _target(props: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(props[k]) for k in ("ServiceNamespace", "ResourceId", "ScalableDimension")}


def _timestream_database(clients: Any, props: Mapping[str, Any]) -> cfn.Created:
    ts = clients.get("timestream-write")
    name = props["DatabaseName"]
    request = {k: props[k] for k in ("DatabaseName", "KmsKeyId") if k in props}
    with contextlib.suppress(ts.exceptions.ConflictException):
        ts.create_database(**request)
    arn = ts.describe_database(DatabaseName=name)["Database"]["Arn"]
    return cfn.Created(name, {"Arn": arn})


def _timestream_table(clients: Any, props: Mapping[str, Any]) -> cfn.Created:
    ts = clients.get("timestream-write")
    request: dict[str, Any] = {
        "DatabaseName": props["DatabaseName"],
        "TableName": props["TableName"],
    }
    retention = props.get("RetentionProperties")
    if retention:
        # CloudFormation takes these as strings; the API takes numbers.
        request["RetentionProperties"] = {k: int(v) for k, v in retention.items()}
    for key in ("MagneticStoreWriteProperties", "Schema"):
        if key in props:
            request[key] = props[key]
    with contextlib.suppress(ts.exceptions.ConflictException):
        ts.create_table(**request)
    table = ts.describe_table(DatabaseName=props["DatabaseName"], TableName=props["TableName"])
    return cfn.Created(
        props["TableName"], {"Arn": table["Table"]["Arn"], "Name": props["TableName"]}
    )


def _sns_topic(clients: Any, props: Mapping[str, Any]) -> cfn.Created:
    name = props["TopicName"]
    attributes = {"DisplayName": props["DisplayName"]} if "DisplayName" in props else {}
    # CreateTopic is idempotent: the same name answers the same ARN.
    arn = clients.get("sns").create_topic(Name=name, Attributes=attributes)["TopicArn"]
    return cfn.Created(arn, {"TopicArn": arn, "TopicName": name})


SUBSCRIPTION_ATTRIBUTES = (
    "FilterPolicy",
    "FilterPolicyScope",
    "RawMessageDelivery",
    "RedrivePolicy",
)


def _sns_subscription(clients: Any, props: Mapping[str, Any]) -> cfn.Created:
    sns = clients.get("sns")
    attributes = {k: _attribute(props[k]) for k in SUBSCRIPTION_ATTRIBUTES if k in props}
    topic, protocol, endpoint = props["TopicArn"], props["Protocol"], props["Endpoint"]
    existing = [
        s["SubscriptionArn"]
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic)
        for s in page.get("Subscriptions", [])
        if s["Protocol"] == protocol and s["Endpoint"] == endpoint
    ]
    if not existing:
        arn = sns.subscribe(
            TopicArn=topic,
            Protocol=protocol,
            Endpoint=endpoint,
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        return cfn.Created(arn, {"Arn": arn})
    for name, value in attributes.items():  # an update, as CloudFormation would make it
        sns.set_subscription_attributes(
            SubscriptionArn=existing[0], AttributeName=name, AttributeValue=value
        )
    return cfn.Created(existing[0], {"Arn": existing[0]})


QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "SqsManagedSseEnabled",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "RedrivePolicy",
)


def _sqs_queue(clients: Any, props: Mapping[str, Any]) -> cfn.Created:
    sqs = clients.get("sqs")
    name = props["QueueName"]
    attributes = {k: _attribute(props[k]) for k in QUEUE_ATTRIBUTES if k in props}
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return cfn.Created(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})


def _log_group(clients: Any, props: Mapping[str, Any]) -> cfn.Created:
    logs = clients.get("logs")
    name = props["LogGroupName"]
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=name)
    if "RetentionInDays" in props:
        logs.put_retention_policy(logGroupName=name, retentionInDays=int(props["RetentionInDays"]))
    [group] = [
        g
        for g in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
        if g["logGroupName"] == name
    ]
    return cfn.Created(name, {"Arn": group["arn"]})


def _attribute(value: Any) -> str:
    """A property as an SNS/SQS attribute string (JSON for documents, `true` for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


CREATORS: dict[str, Callable[[Any, Mapping[str, Any]], cfn.Created]] = {
    "AWS::DynamoDB::Table": _dynamodb_table,
    "AWS::ApplicationAutoScaling::ScalableTarget": _scalable_target,
    "AWS::ApplicationAutoScaling::ScalingPolicy": _scaling_policy,
    "AWS::Timestream::Database": _timestream_database,
    "AWS::Timestream::Table": _timestream_table,
    "AWS::SNS::Topic": _sns_topic,
    "AWS::SNS::Subscription": _sns_subscription,
    "AWS::SQS::Queue": _sqs_queue,
    "AWS::Logs::LogGroup": _log_group,
}
