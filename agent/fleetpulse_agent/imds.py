"""The instance's identity from the EC2 instance metadata service, IMDSv2.

A PUT gives a session token; each GET carries it (IMDSv1's plain GETs are often
turned off, and a token cannot be fetched through a proxy or an SSRF). Every
request has a 1 s timeout: off EC2 nothing answers, and the agent goes on with
no EC2 tags and no message. The Auto Scaling group comes from the instance's
tags in metadata, which answer only when the instance allows it.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

from fleetpulse_agent.send import request

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations stay strings at run time (PEP 563): typing is never loaded
    from typing import Dict

IMDS_URL = "http://169.254.169.254"
# The agent's own HTTP client (no http.client: it costs memory), with 1 s for every step.
IMDS_SETTINGS = SimpleNamespace(
    connect_timeout=1.0,
    tls_timeout=1.0,
    read_timeout=1.0,
    request_cap=3.0,
    dns_fallback=[],
    ca_file="",
)
# identity document key -> host tag
IDENTITY = (
    ("instanceId", "instance_id"),
    ("instanceType", "instance_type"),
    ("availabilityZone", "az"),
    ("region", "region"),
    ("accountId", "account_id"),
    ("imageId", "ami_id"),
)


def identity(url: str = IMDS_URL) -> Dict[str, str]:
    """Host tags from IMDSv2; empty when there is no metadata service (not on EC2)."""

    def get(path: str, headers: Dict[str, str], method: str = "GET") -> bytes:
        answer = request(method, url + path, b"", headers, IMDS_SETTINGS)
        return answer.body if answer.status == 200 else b""

    try:
        token = get("/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}, "PUT")
        if not token:
            return {}
        auth = {"X-aws-ec2-metadata-token": token.decode()}
        doc = json.loads(get("/latest/dynamic/instance-identity/document", auth) or b"{}")
        tags = {tag: str(doc[key])[:256] for key, tag in IDENTITY if doc.get(key)}
        asg = get("/latest/meta-data/tags/instance/aws:autoscaling:groupName", auth)
        if asg:
            tags["asg"] = asg.decode(errors="replace")[:256]
        return tags
    except Exception:  # off EC2, a timeout, a proxy's error page: no EC2 tags
        return {}
