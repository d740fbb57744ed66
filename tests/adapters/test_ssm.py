"""SSMParameters on moto: SecureString values, decrypted, read once, errors that name no value."""

from __future__ import annotations

import boto3
import pytest

from chalicelib.adapters.ssm import SSMParameters
from chalicelib.core.notify import SecretUnavailable


def test_secure_strings_are_decrypted_trimmed_and_read_once(aws):
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/fleetpulse/dev/x", Value="s3cr3t\n", Type="SecureString")
    calls = []
    ssm.meta.events.register(
        "provide-client-params.ssm.GetParameter", lambda params, **_: calls.append(params)
    )
    parameters = SSMParameters(lambda: ssm)
    assert parameters.get("/fleetpulse/dev/x") == "s3cr3t"
    ssm.put_parameter(
        Name="/fleetpulse/dev/x", Value="rotated", Type="SecureString", Overwrite=True
    )
    assert parameters.get("/fleetpulse/dev/x") == "s3cr3t"  # once per container
    assert calls == [{"Name": "/fleetpulse/dev/x", "WithDecryption": True}]


def test_a_missing_or_empty_parameter_is_named(aws):
    ssm = boto3.client("ssm")
    with pytest.raises(SecretUnavailable, match="/fleetpulse/dev/nope does not exist"):
        SSMParameters(lambda: ssm).get("/fleetpulse/dev/nope")
    ssm.put_parameter(Name="/fleetpulse/dev/blank", Value=" ", Type="SecureString")
    with pytest.raises(SecretUnavailable, match="is empty"):
        SSMParameters(lambda: ssm).get("/fleetpulse/dev/blank")
