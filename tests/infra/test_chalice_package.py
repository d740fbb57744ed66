"""What `chalice deploy` will create, read from `chalice package` (the same app, config and
policy, as a CloudFormation/SAM template): every function with its trigger, runtime, role
policy, environment, timeout, memory and concurrency; cfn-lint passes on it.

The first run downloads the Lambda wheels of requirements.txt from PyPI; chalice caches the
package in .chalice/deployments/, so later runs take a few seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from chalicelib.core.lifecycle import EVENT_PATTERN as EC2_LIFECYCLE_PATTERN
from chalicelib.settings import Settings
from fleetpulse import cfn
from fleetpulse.deploy import stage_environment
from fleetpulse.resources import stack

ROOT = Path(__file__).resolve().parents[2]
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow
ELF_MACHINE_AARCH64 = 183  # e_machine of an ELF header (EM_AARCH64)

FUNCTIONS = {
    "APIHandler": "app.app",
    "Evaluate": "app.evaluate",
    "Checks": "app.schedule_checks",
    "RunChecks": "app.run_checks",
    "Ec2Lifecycle": "app.ec2_lifecycle",
    "NotifySlack": "app.notify_slack",
    "NotifyPagerduty": "app.notify_pagerduty",
}


@pytest.fixture(scope="module", params=["dev", "prod"])
def package(request: Any, tmp_path_factory: Any) -> tuple[str, Path]:
    stage = request.param
    out = tmp_path_factory.mktemp(f"package-{stage}")
    # As `chalice deploy --stage <stage>` runs it: only the stage's own variables.
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETPULSE_")}
    env.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x")
    done = subprocess.run(
        [
            str(BIN / "chalice"),
            "package",
            "--stage",
            stage,
            "--pkg-format",
            "cloudformation",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return stage, out


def resources(package: tuple[str, Path]) -> dict[str, Any]:
    return json.loads((package[1] / "sam.json").read_text())["Resources"]


def test_every_function_is_there_with_its_handler_and_runtime(package):
    functions = {
        name: r["Properties"]
        for name, r in resources(package).items()
        if r["Type"] == "AWS::Serverless::Function"
    }
    assert {name: f["Handler"] for name, f in functions.items()} == FUNCTIONS
    # Chalice deploys the runtime of the Python that runs it.
    assert {f["Runtime"] for f in functions.values()} == {"python3.11"}


def test_each_role_carries_exactly_the_stages_policy_file(package):
    stage, _ = package
    policy = json.loads((ROOT / ".chalice" / f"policy-{stage}.json").read_text())
    roles = {n: r for n, r in resources(package).items() if r["Type"] == "AWS::IAM::Role"}
    assert len(roles) == len(FUNCTIONS)
    for name, role in roles.items():
        [inline] = role["Properties"]["Policies"]
        assert inline["PolicyDocument"] == policy, name
        assert "ManagedPolicyArns" not in role["Properties"], name


def test_every_function_runs_on_arm64_and_ships_aarch64_native_code(package):
    """arm64 costs 20% less per GB-second; the package's compiled wheels (PyYAML,
    cramjam, protobuf's upb) must then be aarch64 builds, or imports fail on Lambda."""
    _, out = package
    functions = [
        r["Properties"]
        for r in resources(package).values()
        if r["Type"] == "AWS::Serverless::Function"
    ]
    assert CONFIG["lambda_architecture"] == "arm64"
    assert {tuple(f["Architectures"]) for f in functions} == {("arm64",)}
    machines = {}
    with zipfile.ZipFile(out / "deployment.zip") as z:
        for name in z.namelist():
            if name.endswith(".so") or ".so." in name:
                header = z.read(name)[:20]
                assert header[:4] == b"\x7fELF", name
                machines[name] = int.from_bytes(header[18:20], "little")
    assert machines, "no native module in the package"
    assert set(machines.values()) == {ELF_MACHINE_AARCH64}, {
        n: m for n, m in machines.items() if m != ELF_MACHINE_AARCH64
    }


def test_environment_timeouts_memory_and_concurrency_come_from_config_json(package):
    stage, _ = package
    expected_env = stage_environment(CONFIG, stage)
    memory = 1024 if stage == "prod" else 512
    seen = {}
    for name, r in resources(package).items():
        if r["Type"] != "AWS::Serverless::Function":
            continue
        p = r["Properties"]
        assert p["Environment"]["Variables"] == expected_env, name
        seen[name] = (p["Timeout"], p["MemorySize"], p.get("ReservedConcurrentExecutions"))
    assert seen == {
        # The API function's posts use a fraction of its memory (bench/rss.py): at 256 MB it
        # has a smaller CPU share and costs less (bench/cost.py, docs/DEPLOY.md).
        "APIHandler": (25, memory if stage == "prod" else 256, None),
        # One vCPU: the evaluation is CPU-bound (botocore parsing the hosts' Scan pages),
        # so it costs the same GB-s at any size up to here, and fits 3.4x the hosts of 512 MB.
        "Evaluate": (55, 1769, None),
        "Checks": (55, memory, None),
        # A batch's runs wait on the network; sub-minute checks keep it a minute.
        "RunChecks": (120, memory, None),
        "Ec2Lifecycle": (25, memory, None),
        # Slack takes about a message a second: two at a time, the rest queue in Lambda.
        "NotifySlack": (30, memory, 2),
        "NotifyPagerduty": (30, memory, None),
    }
    Settings.from_env(expected_env)  # the app accepts what it is given


def test_triggers_the_schedule_the_topic_of_the_stage_and_the_api(package):
    stage, _ = package
    r = resources(package)
    assert r["Evaluate"]["Properties"]["Events"] == {
        "EvaluateEvent": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 minute)"}}
    }
    assert r["Checks"]["Properties"]["Events"] == {
        "ChecksEvent": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 minute)"}}
    }
    [lifecycle] = r["Ec2Lifecycle"]["Properties"]["Events"].values()
    assert lifecycle == {
        "Type": "CloudWatchEvent",
        "Properties": {"Pattern": EC2_LIFECYCLE_PATTERN},
    }
    topic = stack(Settings.from_env({"FLEETPULSE_STAGE": stage})).resolve(
        cfn.load()["Resources"]["AlertsTopic"]["Properties"]["TopicName"], {}
    )
    for name in ("NotifySlack", "NotifyPagerduty"):
        [event] = r[name]["Properties"]["Events"].values()
        assert event["Type"] == "SNS"
        assert event["Properties"]["Topic"] == {
            "Fn::Sub": f"arn:${{AWS::Partition}}:sns:${{AWS::Region}}:${{AWS::AccountId}}:{topic}"
        }
    api = r["RestAPI"]["Properties"]
    assert (api["StageName"], api["EndpointConfiguration"]) == ("api", "REGIONAL")
    paths = api["DefinitionBody"]["paths"]
    assert set(paths) >= {"/v1/ingest", "/v1/health", "/api/v2/write", "/write", "/v1/hosts"}
    assert api["MinimumCompressionSize"] == 1024  # API Gateway inflates gzip bodies itself


def test_the_package_ships_the_app_and_its_runtime_dependencies_only(package):
    _, out = package
    archive = out / "deployment.zip"
    assert archive.stat().st_size < 50 * 1024 * 1024  # Lambda's limit for a direct upload
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        unzipped = sum(i.file_size for i in z.infolist())
    assert unzipped < 250 * 1024 * 1024
    assert "app.py" in names
    assert "chalicelib/rules/default.yaml" in names
    assert any(n.startswith("aws_lambda_powertools/") for n in names)
    assert any(n.startswith("yaml/") for n in names)
    # The operator's command, the tests and the agent stay home.
    assert not [n for n in names if n.startswith(("fleetpulse/", "tests/", "agent/", "bench/"))]
    # So do the in-memory stores only tests and benchmarks use.
    assert "chalicelib/adapters/dynamodb/hosts.py" in names
    with zipfile.ZipFile(archive) as z:
        fakes = [
            n
            for n in names
            if n.startswith("chalicelib/") and n.endswith(".py") and b"class InMemory" in z.read(n)
        ]
    assert fakes == []


def test_cfn_lint_passes_on_the_generated_template(package):
    _, out = package
    linter = shutil.which("cfn-lint", path=str(BIN))
    assert linter is not None
    done = subprocess.run(
        [linter, "--", str(out / "sam.json")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_expanded_template_subscribes_both_notifiers_and_schedules_the_evaluation(
    package, monkeypatch
):
    """What CloudFormation makes of the SAM template (aws-sam-translator, as cfn-lint uses it)."""
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    stage, out = package
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    template = json.loads((out / "sam.json").read_text())
    for r in template["Resources"].values():
        if r["Type"] == "AWS::Serverless::Function":
            r["Properties"]["CodeUri"] = (
                "s3://bucket/deployment.zip"  # as `aws cloudformation package` would
            )
    expanded = transform(template, {}, NoManagedPolicies())["Resources"]
    subscriptions = sorted(
        (r["Properties"]["Endpoint"]["Fn::GetAtt"][0], r["Properties"]["Protocol"])
        for r in expanded.values()
        if r["Type"] == "AWS::SNS::Subscription"
    )
    assert subscriptions == [("NotifyPagerduty", "lambda"), ("NotifySlack", "lambda")]
    rules = {
        r["Properties"]["Targets"][0]["Arn"]["Fn::GetAtt"][0]: r["Properties"]
        for r in expanded.values()
        if r["Type"] == "AWS::Events::Rule"
    }
    assert set(rules) == {"Evaluate", "Checks", "Ec2Lifecycle"}
    assert rules["Evaluate"]["ScheduleExpression"] == "rate(1 minute)"
    assert rules["Checks"]["ScheduleExpression"] == "rate(1 minute)"
    assert rules["Ec2Lifecycle"]["EventPattern"] == EC2_LIFECYCLE_PATTERN
    assert stage in json.dumps(expanded)


def test_remote_write_bodies_reach_the_lambda_as_binary(package):
    api = resources(package)["RestAPI"]["Properties"]["DefinitionBody"]
    assert "application/x-protobuf" in api["x-amazon-apigateway-binary-media-types"]
