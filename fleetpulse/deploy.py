"""Deploying a stage: the CloudFormation stack, its outputs into .chalice/, the steps after
`chalice deploy`. The commands are in `fleetpulse.commands.deploy`; this is what they do,
each step taking its boto3 client so it can be tested against the real service models.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHALICE_DIR = ROOT / ".chalice"

# Stack output -> the environment variable of the chalice stage it sets.
OUTPUT_VARIABLES: dict[str, str] = {
    "Stage": "FLEETPULSE_STAGE",
    "Store": "FLEETPULSE_STORE",
    "TokensTable": "FLEETPULSE_TOKENS_TABLE",
    "HostsTable": "FLEETPULSE_HOSTS_TABLE",
    "SeriesTable": "FLEETPULSE_SERIES_TABLE",
    "AlertsTable": "FLEETPULSE_ALERTS_TABLE",
    "SilencesTable": "FLEETPULSE_SILENCES_TABLE",
    "LedgerTable": "FLEETPULSE_LEDGER_TABLE",
    "ChecksTable": "FLEETPULSE_CHECKS_TABLE",
    "JobsTable": "FLEETPULSE_JOBS_TABLE",
    "AlertsTopicArn": "FLEETPULSE_ALERTS_TOPIC_ARN",
    "AlertsTopicName": "FLEETPULSE_ALERTS_TOPIC",
    "TimestreamDatabase": "FLEETPULSE_TIMESTREAM_DATABASE",
    "TimestreamTable": "FLEETPULSE_TIMESTREAM_TABLE",
    "MemoryStoreRetentionHours": "FLEETPULSE_MEMORY_RETENTION_HOURS",
    "MagneticStoreRetentionDays": "FLEETPULSE_MAGNETIC_RETENTION_DAYS",
    "NotifyFailureQueueName": "FLEETPULSE_NOTIFY_FAILURE_QUEUE",
    "SlackWebhookParameter": "FLEETPULSE_SLACK_WEBHOOK_PARAM",
    "PagerDutyRoutingKeyParameter": "FLEETPULSE_PAGERDUTY_ROUTING_KEY_PARAM",
    "AlertEmail": "FLEETPULSE_ALERT_EMAILS",
    "EmailSeverities": "FLEETPULSE_ROUTE_EMAIL",
    "InfluxUrl": "FLEETPULSE_INFLUX_URL",
    "InfluxApi": "FLEETPULSE_INFLUX_API",
    "InfluxOrg": "FLEETPULSE_INFLUX_ORG",
    "InfluxBucket": "FLEETPULSE_INFLUX_BUCKET",
    "InfluxDatabase": "FLEETPULSE_INFLUX_DB",
    "InfluxUsername": "FLEETPULSE_INFLUX_USERNAME",
    "InfluxTokenParameter": "FLEETPULSE_INFLUX_TOKEN_PARAM",
}
# Outputs that only exist under a condition, and whose variable must then be emptied (an
# email address or InfluxDB URL left over from an earlier setting would be used). The
# Timestream names are left alone when the store is InfluxDB: nothing reads them.
CLEARED_WHEN_ABSENT = frozenset(
    {
        "AlertEmail",
        "InfluxUrl",
        "InfluxOrg",
        "InfluxBucket",
        "InfluxDatabase",
        "InfluxUsername",
        "InfluxTokenParameter",
    }
)
# Outputs the deploy steps read themselves.
STEP_OUTPUTS = frozenset({"NotifyFailureQueueArn"})


class DeployError(Exception):
    """A deploy step cannot go on; the message says why and what to do."""


def stack_name(stage: str) -> str:
    return f"fleetpulse-{stage}"


# -- JSON files written back as people wrote them ----------------------------------------


def dump_json(value: Any, width: int = 100) -> str:
    """JSON indented by two, with a list of plain values on one line when it fits in
    `width` (how .chalice/*.json are written by hand), and a final newline."""

    def render(v: Any, indent: int, prefix: int) -> str:
        pad = " " * (indent + 2)
        if isinstance(v, dict) and v:
            items = [
                f"{pad}{json.dumps(k)}: {render(x, indent + 2, len(pad) + len(json.dumps(k)) + 2)}"
                for k, x in v.items()
            ]
            return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
        if isinstance(v, list) and v:
            if all(not isinstance(x, dict | list) for x in v):
                inline = "[" + ", ".join(json.dumps(x) for x in v) + "]"
                if prefix + len(inline) + 1 <= width:
                    return inline
            return (
                "[\n"
                + ",\n".join(pad + render(x, indent + 2, len(pad)) for x in v)
                + "\n"
                + " " * indent
                + "]"
            )
        return json.dumps(v)

    return render(value, 0, 0) + "\n"


# -- stack outputs -> .chalice/config.json --------------------------------------------------


@dataclass(frozen=True)
class Change:
    variable: str
    before: str | None  # None: was not set for the stage
    after: str

    def __str__(self) -> str:
        if self.before is None:
            return f"+ {self.variable}={self.after}"
        return f"~ {self.variable}: {self.before} -> {self.after}"


def stage_environment(config: Mapping[str, Any], stage: str) -> dict[str, str]:
    """The environment chalice gives the stage's functions: the top level, then the stage's."""
    stages = config.get("stages", {})
    if stage not in stages:
        raise DeployError(f".chalice/config.json has no stage {stage!r}")
    return {
        **config.get("environment_variables", {}),
        **stages[stage].get("environment_variables", {}),
    }


def configure_stage(config: dict[str, Any], stage: str, outputs: Mapping[str, str]) -> list[Change]:
    """Set the stage's environment variables from the stack's outputs, in place; return what
    changed. A value the stage already gets (from its own or the top-level variables) is
    not repeated; everything else in the file stays as it is."""
    unmapped = sorted(set(outputs) - set(OUTPUT_VARIABLES) - STEP_OUTPUTS)
    if unmapped:
        raise DeployError(f"the stack has outputs no setting takes: {', '.join(unmapped)}")
    if outputs.get("Stage", stage) != stage:
        raise DeployError(f"the stack is for stage {outputs['Stage']!r}, not {stage!r}")
    effective = stage_environment(config, stage)
    env = config["stages"][stage].setdefault("environment_variables", {})
    changes = []
    for output, variable in OUTPUT_VARIABLES.items():
        if output in outputs:
            value = outputs[output]
        elif output in CLEARED_WHEN_ABSENT and effective.get(variable):
            value = ""
        else:
            continue
        if effective.get(variable) != value:
            changes.append(Change(variable, env.get(variable), value))
            env[variable] = value
    return changes


# -- the stage's IAM policy file --------------------------------------------------------------

_WILDCARD_ARN = re.compile(r"^arn:aws:([a-z0-9-]+):\*:\*:(.+)$")


def localize_policy(policy: dict[str, Any], partition: str, region: str, account: str) -> int:
    """Replace the region and account wildcards of the policy's ARNs with the stack's, in
    place; return how many ARNs changed. `*` resources (DescribeEndpoints) stay."""
    changed = 0
    for statement in policy["Statement"]:
        resources = statement["Resource"]
        as_list = [resources] if isinstance(resources, str) else resources
        new = []
        for arn in as_list:
            m = _WILDCARD_ARN.match(arn)
            if m:
                changed += 1
            new.append(
                f"arn:{partition}:{m.group(1)}:{region}:{account}:{m.group(2)}" if m else arn
            )
        statement["Resource"] = new[0] if isinstance(resources, str) else new
    return changed


def arn_parts(arn: str) -> tuple[str, str, str]:
    """(partition, region, account) of an ARN."""
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn":
        raise DeployError(f"not an ARN: {arn}")
    return parts[1], parts[3], parts[4]


def iam_pattern_matches(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    """IAM's wildcard match: `*` any run of characters, `?` one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.fullmatch(regex, value, flags) is not None


def uncovered_resources(policy: Mapping[str, Any], arns: Sequence[str]) -> list[str]:
    """The ARNs no statement of the policy names (`*`, which names nothing, not counted)."""
    patterns = [
        r
        for s in policy["Statement"]
        for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
        if r != "*"
    ]
    return [a for a in arns if not any(iam_pattern_matches(p, a) for p in patterns)]


def stack_resource_arns(outputs: Mapping[str, str]) -> list[str]:
    """The ARNs of what the collector uses, from the stack's outputs."""
    partition, region, account = arn_parts(outputs["AlertsTopicArn"])
    prefix = f"arn:{partition}:%s:{region}:{account}:"
    arns = [outputs["AlertsTopicArn"], outputs["NotifyFailureQueueArn"]]
    for key in (
        "TokensTable",
        "HostsTable",
        "SeriesTable",
        "AlertsTable",
        "SilencesTable",
        "LedgerTable",
        "JobsTable",
    ):
        arns.append(prefix % "dynamodb" + f"table/{outputs[key]}")
    if "TimestreamDatabase" in outputs:
        arns.append(
            prefix % "timestream"
            + f"database/{outputs['TimestreamDatabase']}/table/{outputs['TimestreamTable']}"
        )
    for key in ("SlackWebhookParameter", "PagerDutyRoutingKeyParameter", "InfluxTokenParameter"):
        if outputs.get(key):
            arns.append(prefix % "ssm" + "parameter" + outputs[key])
    return arns


# -- CloudFormation -------------------------------------------------------------------------


def stack_outputs(cloudformation: Any, name: str) -> dict[str, str]:
    """The stack's outputs (DescribeStacks)."""
    stack = _describe(cloudformation, name)
    if stack is None:
        raise DeployError(f"no stack {name}: run `fleetpulse deploy stack` first")
    status = stack["StackStatus"]
    if not status.endswith("_COMPLETE") or status.startswith(("ROLLBACK", "DELETE")):
        raise DeployError(f"stack {name} is {status}")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _describe(cloudformation: Any, name: str) -> dict[str, Any] | None:
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except cloudformation.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return stacks[0] if stacks else None


@dataclass
class StackDeploy:
    """Creates or updates the stack through a change set, like `aws cloudformation deploy`:
    shows the changes, runs them, waits; a template and parameters with no change is not
    an error. Parameters not given keep their current value on an update."""

    cloudformation: Any
    name: str
    template_body: str
    parameters: Mapping[str, str]
    echo: Callable[[str], None] = print
    delay: int = 5  # seconds between polls
    clock: Callable[[], float] = time.time

    def run(self) -> dict[str, str]:
        existing = _describe(self.cloudformation, self.name)
        if existing is not None and existing["StackStatus"] == "ROLLBACK_COMPLETE":
            raise DeployError(
                f"stack {self.name} failed to create and is ROLLBACK_COMPLETE: delete it"
                f" (aws cloudformation delete-stack --stack-name {self.name}) and deploy again"
            )
        kind = (
            "UPDATE"
            if existing is not None and existing["StackStatus"] != "REVIEW_IN_PROGRESS"
            else "CREATE"
        )
        declared = self._declared_parameters()
        previous = {p["ParameterKey"] for p in (existing or {}).get("Parameters", [])}
        parameters: list[dict[str, Any]] = [
            {"ParameterKey": k, "ParameterValue": v} for k, v in self.parameters.items()
        ]
        if kind == "UPDATE":
            parameters += [
                {"ParameterKey": k, "UsePreviousValue": True}
                for k in declared
                if k not in self.parameters and k in previous
            ]
        change_set = f"fleetpulse-{int(self.clock())}"
        self.cloudformation.create_change_set(
            StackName=self.name,
            ChangeSetName=change_set,
            ChangeSetType=kind,
            TemplateBody=self.template_body,
            Parameters=parameters,
            Tags=[{"Key": "fleetpulse:stack", "Value": self.name}],
            Description="fleetpulse deploy stack",
        )
        described = self._wait_for_change_set(change_set)
        if described["Status"] == "FAILED":
            reason = described.get("StatusReason", "")
            if "didn't contain changes" in reason or "No updates are to be performed" in reason:
                self.cloudformation.delete_change_set(StackName=self.name, ChangeSetName=change_set)
                self.echo(f"stack {self.name}: no changes")
                return stack_outputs(self.cloudformation, self.name)
            raise DeployError(f"change set for {self.name} failed: {reason}")
        self.echo(f"stack {self.name}: {kind.lower()}, {len(described.get('Changes', []))} changes")
        for change in described.get("Changes", []):
            rc = change["ResourceChange"]
            replace = " (replacement)" if rc.get("Replacement") == "True" else ""
            self.echo(
                f"  {rc['Action']:<7} {rc['LogicalResourceId']} {rc['ResourceType']}{replace}"
            )
        self.cloudformation.execute_change_set(StackName=self.name, ChangeSetName=change_set)
        waiter = self.cloudformation.get_waiter(
            "stack_create_complete" if kind == "CREATE" else "stack_update_complete"
        )
        try:
            waiter.wait(StackName=self.name, WaiterConfig={"Delay": self.delay, "MaxAttempts": 720})
        except Exception as exc:  # botocore WaiterError: the stack rolled back
            raise DeployError(f"stack {self.name} did not {kind.lower()}: {exc}") from None
        self.echo(f"stack {self.name}: {kind.lower()} complete")
        return stack_outputs(self.cloudformation, self.name)

    def _declared_parameters(self) -> list[str]:
        from fleetpulse import cfn

        return list(cfn.loads(self.template_body).get("Parameters", {}))

    def _wait_for_change_set(self, change_set: str) -> dict[str, Any]:
        while True:
            described: dict[str, Any] = self.cloudformation.describe_change_set(
                StackName=self.name, ChangeSetName=change_set
            )
            if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
                return described
            time.sleep(self.delay)


# -- after `chalice deploy` -------------------------------------------------------------------


def apply_routing(
    sns: Any, topic_arn: str, subs: Sequence[Any], echo: Callable[[str], None]
) -> int:
    """Set each subscription's filter policy on the topic's matching subscriptions, saying
    what it did; return how many are missing or not confirmed yet."""
    from chalicelib.routing import subscription_attributes

    existing = topic_subscriptions(sns, topic_arn)
    missing = 0
    for sub in subs:
        matches = [s for s in existing if same_endpoint(sub, s)]
        if not matches:
            missing += 1
            echo(f"not subscribed yet: {sub['channel']} {sub['protocol']} {sub['endpoint']}")
            continue
        for found in matches:
            if not found["SubscriptionArn"].startswith("arn:"):
                missing += 1
                echo(f"not confirmed yet: {sub['endpoint']} (confirm the email, then re-run)")
                continue
            for name, value in subscription_attributes(sub).items():
                sns.set_subscription_attributes(
                    SubscriptionArn=found["SubscriptionArn"],
                    AttributeName=name,
                    AttributeValue=value,
                )
            echo(f"applied: {sub['channel']} {sub['endpoint']} {sub['filter_policy']}")
    return missing


def topic_subscriptions(sns: Any, topic_arn: str) -> list[dict[str, Any]]:
    return [
        s
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
        for s in page.get("Subscriptions", [])
    ]


def same_endpoint(sub: Any, found: Mapping[str, Any]) -> bool:
    """Whether an SNS subscription is the routing's `sub` (same protocol and endpoint)."""
    if found.get("Protocol") != sub["protocol"]:
        return False
    endpoint = str(found.get("Endpoint", ""))
    if sub["protocol"] == "lambda":
        # arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
        parts = endpoint.split(":")
        return len(parts) >= 7 and parts[6] == sub["endpoint"]
    return endpoint.lower() == str(sub["endpoint"]).lower()


@dataclass(frozen=True)
class StageConfig:
    """What `configure_from_stack` changed (or would change)."""

    changes: list[Change]
    config_file: Path
    policy_file: Path
    localized: int  # ARNs of the policy that now name the stack's region and account


def configure_from_stack(
    outputs: Mapping[str, str], stage: str, chalice_dir: Path = CHALICE_DIR, *, write: bool = True
) -> StageConfig:
    """Write the stack's outputs into the stage of .chalice/config.json, and its region and
    account into the stage's IAM policy file. Refuses (writing nothing) when the policy does
    not cover a resource of the stack."""
    config_file = chalice_dir / "config.json"
    config = json.loads(config_file.read_text())
    changes = configure_stage(config, stage, outputs)
    policy_file = chalice_dir / config["stages"][stage].get(
        "iam_policy_file", f"policy-{stage}.json"
    )
    policy = json.loads(policy_file.read_text())
    localized = localize_policy(policy, *arn_parts(outputs["AlertsTopicArn"]))
    missing = uncovered_resources(policy, stack_resource_arns(outputs))
    if missing:
        raise DeployError(
            f"{policy_file.name} grants nothing on {', '.join(missing)}: the stack and the"
            " policy disagree (a region or account already written for another stack?)"
        )
    if write:
        if changes:
            config_file.write_text(dump_json(config))
        if localized:
            policy_file.write_text(dump_json(policy))
    return StageConfig(changes, config_file, policy_file, localized)


def ensure_function_url(lambda_client: Any, function: str, stage: str) -> str:
    """The API function's function URL, created when missing (chalice cannot), public
    like the REST API: authentication is the app's own bearer-token check either way."""
    try:
        return str(lambda_client.get_function_url_config(FunctionName=function)["FunctionUrl"])
    except lambda_client.exceptions.ResourceNotFoundException:
        pass
    try:
        url = lambda_client.create_function_url_config(FunctionName=function, AuthType="NONE")
    except lambda_client.exceptions.ResourceNotFoundException:
        raise DeployError(
            f"no function {function}: run `chalice deploy --stage {stage}` first"
        ) from None
    # A public URL needs both grants: InvokeFunctionUrl, and InvokeFunction through a URL.
    grants = (
        (
            "FunctionURLAllowPublicAccess",
            "lambda:InvokeFunctionUrl",
            {"FunctionUrlAuthType": "NONE"},
        ),
        ("FunctionURLAllowInvokeAction", "lambda:InvokeFunction", {"InvokedViaFunctionUrl": True}),
    )
    for statement, action, condition in grants:
        with contextlib.suppress(lambda_client.exceptions.ResourceConflictException):
            lambda_client.add_permission(
                FunctionName=function,
                StatementId=statement,
                Action=action,
                Principal="*",
                **condition,
            )
    return str(url["FunctionUrl"])


# POWERTOOLS_LOG_LEVEL -> Lambda's ApplicationLogLevel (TRACE, DEBUG, INFO, WARN, ERROR, FATAL).
APPLICATION_LOG_LEVELS = {
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARN": "WARN",
    "WARNING": "WARN",
    "ERROR": "ERROR",
    "CRITICAL": "FATAL",
}


def logging_config(env: Mapping[str, str]) -> dict[str, str] | None:
    """The API function's LoggingConfig for the stage, None to keep Lambda's default.

    Unless `FLEETPULSE_PLATFORM_LOGS` is `true`, Lambda's own INFO lines (START, END and
    REPORT: about 300 bytes an invocation, once per post) are not sent: JSON log format
    with system logs at WARN. The app's logs are JSON already (powertools); their level
    stays POWERTOOLS_LOG_LEVEL's, which Lambda then also applies (AWS_LAMBDA_LOG_LEVEL)."""
    if env.get("FLEETPULSE_PLATFORM_LOGS", "false").lower() == "true":
        return None
    level = env.get("POWERTOOLS_LOG_LEVEL", "INFO").upper()
    return {
        "LogFormat": "JSON",
        "SystemLogLevel": "WARN",
        "ApplicationLogLevel": APPLICATION_LOG_LEVELS.get(level, "INFO"),
    }


def ensure_logging_config(
    lambda_client: Any, function: str, wanted: Mapping[str, str], stage: str
) -> bool:
    """Sets the function's LoggingConfig to `wanted` (its log group kept); False when it
    already was."""
    try:
        current = lambda_client.get_function_configuration(FunctionName=function)
    except lambda_client.exceptions.ResourceNotFoundException:
        raise DeployError(
            f"no function {function}: run `chalice deploy --stage {stage}` first"
        ) from None
    have = current.get("LoggingConfig", {})
    if all(have.get(k) == v for k, v in wanted.items()):
        return False
    lambda_client.update_function_configuration(FunctionName=function, LoggingConfig=dict(wanted))
    return True


def finish(
    cloudformation: Any,
    lambda_client: Any,
    sns: Any,
    *,
    stage: str,
    stack: str,
    chalice_dir: Path = CHALICE_DIR,
    echo: Callable[[str], None] = print,
) -> int:
    """After `chalice deploy`: the notifiers' retries and on-failure queue, and the filter
    policies on their subscriptions (chalice can set neither). Returns an exit status: 1
    while a notifier is not subscribed."""
    from chalicelib.routing import event_invoke_configs, subscriptions
    from chalicelib.settings import Settings, SettingsError

    outputs = stack_outputs(cloudformation, stack)
    config = json.loads((chalice_dir / "config.json").read_text())
    try:
        settings = Settings.from_env(stage_environment(config, stage))
    except SettingsError as exc:
        raise DeployError(f".chalice/config.json, stage {stage}: {exc}") from None
    topic = outputs["AlertsTopicArn"]
    if settings.alerts_topic_arn != topic:
        raise DeployError(
            f"stage {stage} publishes to {settings.alerts_topic_arn}, the stack's topic is"
            f" {topic}: run `fleetpulse --stage {stage} deploy config` and `chalice deploy`"
        )
    env = stage_environment(config, stage)
    if env.get("FLEETPULSE_FUNCTION_URL", "").lower() == "true":
        url = ensure_function_url(lambda_client, f"fleetpulse-{stage}", stage)
        echo(f"function URL: {url} (the agents' url; API Gateway stays too)")
    wanted = logging_config(env)
    if wanted is not None:
        changed = ensure_logging_config(lambda_client, f"fleetpulse-{stage}", wanted, stage)
        echo(
            f"logs: fleetpulse-{stage}: JSON, system logs at WARN (no START/END/REPORT lines),"
            f" app logs at {wanted['ApplicationLogLevel']}" + ("" if changed else " (already)")
        )
    queue = outputs["NotifyFailureQueueArn"]
    for request in event_invoke_configs(settings, queue):
        name = request["FunctionName"]
        try:
            lambda_client.put_function_event_invoke_config(**request)
        except lambda_client.exceptions.ResourceNotFoundException:
            raise DeployError(
                f"no function {name}: run `chalice deploy --stage {stage}` first"
            ) from None
        echo(
            f"retries: {name}: {request['MaximumRetryAttempts']} retries within"
            f" {request['MaximumEventAgeInSeconds'] // 3600} h, then {queue.rsplit(':', 1)[-1]}"
        )
    subs = subscriptions(settings)
    missing = apply_routing(sns, topic, [s for s in subs if s["protocol"] == "lambda"], echo)
    existing = topic_subscriptions(sns, topic)
    for sub in (s for s in subs if s["protocol"] == "email"):
        found = [s for s in existing if same_endpoint(sub, s)]
        if not found:
            echo(f"email {sub['endpoint']}: not subscribed (set the stack's AlertEmail)")
        elif not found[0]["SubscriptionArn"].startswith("arn:"):
            echo(
                f"email {sub['endpoint']}: waiting for confirmation (open the message SNS sent"
                " and confirm; its filter policy is the stack's)"
            )
        else:
            echo(f"email {sub['endpoint']}: confirmed, filter policy from the stack")
    return 1 if missing else 0
