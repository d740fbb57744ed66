"""The instance's identity from the EC2 instance metadata service, IMDSv2.

A PUT gives a session token; each GET carries it (IMDSv1's plain GETs are often
turned off, and a token cannot be fetched through a proxy or an SSRF). Every
request has a 1 s timeout: off EC2 nothing answers, and the agent goes on with
no EC2 tags and no message. The Auto Scaling group comes from the instance's
tags in metadata, which answer only when the instance allows it.
"""

from __future__ import annotations

import http.client
import json

from fleetpulse_agent.send import target

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations stay strings at run time (PEP 563): typing is never loaded
    from typing import Dict, Optional

IMDS_URL = "http://169.254.169.254"
IMDS_TIMEOUT = 1.0
# identity document key -> host tag
IDENTITY = (
    ("instanceId", "instance_id"),
    ("instanceType", "instance_type"),
    ("availabilityZone", "az"),
    ("region", "region"),
    ("accountId", "account_id"),
    ("imageId", "ami_id"),
)
ASG_TAG = "/latest/meta-data/tags/instance/aws:autoscaling:groupName"


def _request(url: str, method: str, path: str, headers: Dict[str, str]) -> Optional[bytes]:
    t = target(url)
    conn = http.client.HTTPConnection(t.host, t.port, timeout=IMDS_TIMEOUT)
    try:
        conn.request(method, t.path.rstrip("/") + path, headers=headers)
        response = conn.getresponse()
        body = response.read(65536)
        return body if response.status == 200 else None
    finally:
        conn.close()


def identity(url: str = IMDS_URL) -> Dict[str, str]:
    """Host tags from IMDSv2; empty when there is no metadata service (not on EC2)."""
    try:
        token = _request(
            url, "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        )
        if not token:
            return {}
        auth = {"X-aws-ec2-metadata-token": token.decode()}
        doc = json.loads(
            _request(url, "GET", "/latest/dynamic/instance-identity/document", auth) or b"{}"
        )
        tags = {tag: str(doc[key])[:256] for key, tag in IDENTITY if doc.get(key)}
        asg = _request(url, "GET", ASG_TAG, auth)
        if asg:
            tags["asg"] = asg.decode(errors="replace")[:256]
        return tags
    except Exception:  # off EC2, a timeout, a proxy's error page: no EC2 tags
        return {}
