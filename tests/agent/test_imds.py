"""Instance identity through IMDSv2, against a metadata server on 127.0.0.1 that, like EC2's
with IMDSv1 turned off, refuses every GET without a session token."""

from __future__ import annotations

import json
import secrets
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fleetpulse_agent import config, imds
from fleetpulse_agent.agent import host_tags

DOCUMENT = {
    "accountId": "123456789012",
    "architecture": "x86_64",
    "availabilityZone": "eu-west-1b",
    "imageId": "ami-0abcdef1234567890",
    "instanceId": "i-0123456789abcdef0",
    "instanceType": "t3.micro",
    "privateIp": "10.0.1.23",
    "region": "eu-west-1",
}


class FakeIMDS(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, instance_tags: dict[str, str] | None) -> None:
        self.tokens: set[str] = set()
        self.instance_tags = instance_tags  # None: tags in metadata not allowed
        self.requests: list[tuple[str, str, bool]] = []  # method, path, had a valid token
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: FakeIMDS

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def reply(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        ok = (
            self.path == "/latest/api/token"
            and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "").isdigit()
        )
        self.server.requests.append(("PUT", self.path, ok))
        if not ok:
            self.reply(400)
            return
        token = secrets.token_urlsafe(32)
        self.server.tokens.add(token)
        self.reply(200, token.encode())

    def do_GET(self) -> None:
        valid = self.headers.get("X-aws-ec2-metadata-token") in self.server.tokens
        self.server.requests.append(("GET", self.path, valid))
        if not valid:
            self.reply(401)  # what IMDS answers with IMDSv2 required
            return
        if self.path == "/latest/dynamic/instance-identity/document":
            self.reply(200, json.dumps(DOCUMENT, indent=2).encode())
            return
        prefix = "/latest/meta-data/tags/instance/"
        tags = self.server.instance_tags
        if self.path.startswith(prefix) and tags is not None:
            value = tags.get(self.path[len(prefix) :])
            if value is not None:
                self.reply(200, value.encode())
                return
        self.reply(404)


@pytest.fixture
def metadata() -> Iterator[FakeIMDS]:
    server = FakeIMDS({"aws:autoscaling:groupName": "web-asg", "Name": "web"})
    yield server
    server.shutdown()
    server.server_close()


def test_identity_comes_from_the_token_session(metadata) -> None:
    assert imds.identity(metadata.url) == {
        "instance_id": "i-0123456789abcdef0",
        "instance_type": "t3.micro",
        "az": "eu-west-1b",
        "region": "eu-west-1",
        "account_id": "123456789012",
        "ami_id": "ami-0abcdef1234567890",
        "asg": "web-asg",
    }
    assert metadata.requests[0] == ("PUT", "/latest/api/token", True)
    assert all(valid for _, _, valid in metadata.requests)


def test_without_tags_in_metadata_there_is_no_asg(metadata) -> None:
    metadata.instance_tags = None
    tags = imds.identity(metadata.url)
    assert "asg" not in tags
    assert tags["instance_id"] == "i-0123456789abcdef0"


def test_the_fake_refuses_imdsv1(metadata) -> None:
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(metadata.url + "/latest/dynamic/instance-identity/document")
    assert err.value.code == 401


def test_off_ec2_there_is_nothing_and_no_noise(agent_log) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert imds.identity(f"http://127.0.0.1:{port}") == {}
    assert agent_log == []


def test_a_server_that_never_answers_gives_nothing() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        assert imds.identity(f"http://127.0.0.1:{silent.getsockname()[1]}") == {}


def test_host_tags_are_identity_plus_configured_tags(metadata) -> None:
    cfg = config.load(
        env={
            "FLEETPULSE_IMDS_URL": metadata.url,
            "FLEETPULSE_TAGS": "role=web,asg=override",
        },
        require_url=False,
    )
    tags = host_tags(cfg)
    assert tags["instance_type"] == "t3.micro"
    assert tags["role"] == "web"
    assert tags["asg"] == "override"  # what the operator configured wins
    assert host_tags(config.load(env={"FLEETPULSE_EC2_TAGS": "false"}, require_url=False)) == {}
