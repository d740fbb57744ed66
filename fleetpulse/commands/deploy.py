"""`fleetpulse deploy stack|config|finish`: the steps of `make deploy STAGE=...` around
`chalice deploy` (docs/DEPLOY.md). They run with the operator's AWS credentials."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fleetpulse.commands import common


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "deploy",
        help="deploy a stage to AWS: the stack, .chalice/ from its outputs, the notifiers",
        description=(
            "The steps `make deploy STAGE=<stage>` runs, in order: `stack`, `config`, then"
            " `chalice deploy --stage <stage>`, then `finish`. The stage is --stage (before"
            " `deploy`), $FLEETPULSE_STAGE or dev."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="STEP", required=True)

    stack = actions.add_parser(
        "stack",
        help="create or update the CloudFormation stack fleetpulse-<stage>",
        description=(
            "Deploys infra/cloudformation/fleetpulse.yaml as the stack fleetpulse-<stage>"
            " through a change set: shows the changes, runs them and waits. Parameters not"
            " given keep their current value (or take the template's default)."
        ),
    )
    stack.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a template parameter (repeatable): AlertEmail=ops@example.com, Store=influxdb...",
    )
    stack.add_argument("--template", type=Path, default=None, help=argparse.SUPPRESS)
    stack.set_defaults(handler=stack_command)

    config = actions.add_parser(
        "config",
        help="write the stack's outputs into .chalice/config.json and the stage's policy",
        description=(
            "Reads the stack's outputs and sets the stage's environment variables in"
            " .chalice/config.json (tables, topic, Timestream or InfluxDB, parameter names),"
            " and the stack's region and account in the stage's IAM policy file. Everything"
            " else in the files stays; running it again changes nothing."
        ),
    )
    config.add_argument("--dry-run", action="store_true", help="show the changes, write nothing")
    config.set_defaults(handler=config_command)

    finish = actions.add_parser(
        "finish",
        help="after chalice deploy: the notifiers' filter policies, retries and failure queue",
        description=(
            "Sets the SNS filter policies on the notifier functions' subscriptions and their"
            " asynchronous retries with the stack's on-failure queue (chalice can set"
            " neither). Exits 1 while a notifier is not subscribed yet."
        ),
    )
    finish.set_defaults(handler=finish_command)

    for sub in (stack, config, finish):
        sub.add_argument(
            "--stack-name", default=None, help="the stack's name (default fleetpulse-<stage>)"
        )
        sub.add_argument("--chalice-dir", type=Path, default=None, help=argparse.SUPPRESS)


def _stage(args: argparse.Namespace) -> str:
    return common.settings(args).stage


def _stack_name(args: argparse.Namespace) -> str:
    from fleetpulse.deploy import stack_name

    return str(args.stack_name or stack_name(_stage(args)))


def client(args: argparse.Namespace, service: str) -> Any:
    """A client with the operator's credentials and region."""
    return common.services(args).clients.get(service)


def _chalice_dir(args: argparse.Namespace) -> Path:
    from fleetpulse.deploy import CHALICE_DIR

    return Path(args.chalice_dir or CHALICE_DIR)


def stack_command(args: argparse.Namespace) -> int:
    from fleetpulse import cfn
    from fleetpulse.deploy import DeployError, StackDeploy

    stage = _stage(args)
    parameters = {"Stage": stage}
    for item in args.parameter:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise common.CommandError(f"--parameter {item!r}: write it KEY=VALUE")
        parameters[key] = value
    if parameters["Stage"] != stage:
        raise common.CommandError("the Stage parameter is the stage: use --stage")
    path = args.template or cfn.TEMPLATE
    body = path.read_text()
    try:
        # Refused here as CloudFormation would refuse it, before anything is sent.
        cfn.resolve_parameters(cfn.loads(body).get("Parameters", {}), parameters)
    except cfn.TemplateError as exc:
        raise common.CommandError(str(exc)) from None
    name = _stack_name(args)
    with common.backend_errors(f"stack {name}"):
        try:
            outputs = StackDeploy(client(args, "cloudformation"), name, body, parameters).run()
        except DeployError as exc:
            raise common.CommandError(str(exc)) from None
    common.print_table([("OUTPUT", "VALUE"), *sorted(outputs.items())])
    return 0


def config_command(args: argparse.Namespace) -> int:
    from fleetpulse.deploy import DeployError, configure_from_stack, stack_outputs

    stage, name = _stage(args), _stack_name(args)
    with common.backend_errors(f"stack {name}"):
        try:
            outputs = stack_outputs(client(args, "cloudformation"), name)
            result = configure_from_stack(
                outputs, stage, _chalice_dir(args), write=not args.dry_run
            )
        except DeployError as exc:
            raise common.CommandError(str(exc)) from None
    verb = "would change" if args.dry_run else "changed"
    if result.changes:
        print(f"{result.config_file.name}, stage {stage}: {verb} {len(result.changes)}")
        for change in result.changes:
            print(f"  {change}")
    else:
        print(f"{result.config_file.name}, stage {stage}: up to date")
    if result.localized:
        print(
            f"{result.policy_file.name}: {verb} {result.localized} ARNs to the stack's region"
            " and account"
        )
    else:
        print(f"{result.policy_file.name}: up to date")
    return 0


def finish_command(args: argparse.Namespace) -> int:
    from fleetpulse.deploy import DeployError, finish

    stage, name = _stage(args), _stack_name(args)
    with common.backend_errors(f"stage {stage}"):
        try:
            return finish(
                client(args, "cloudformation"),
                client(args, "lambda"),
                client(args, "sns"),
                stage=stage,
                stack=name,
                chalice_dir=_chalice_dir(args),
            )
        except DeployError as exc:
            raise common.CommandError(str(exc)) from None
