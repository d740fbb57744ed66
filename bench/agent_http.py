#!/usr/bin/env python3
"""The agent's HTTP: what http.client costs in memory, and one post's time by answer framing.

Two figures, measured in one run, each in fresh `python -S` processes (as the
systemd unit runs the agent):

- memory: peak RSS of a process that has loaded the agent and TLS, then the
  same after `import http.client` (what the transport loads at its first
  request), and after 200 posts over HTTPS to a local server;
- time: median milliseconds of one post (connect, TLS handshake, request,
  answer) to a local HTTPS server answering with Content-Length, chunked, and
  chunked on a connection it keeps open.

    .venv/bin/python bench/agent_http.py [--posts 200]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BODY = b'{"accepted": 12, "rejected": []}'
FRAMINGS = {
    "length": b"HTTP/1.1 202 Accepted\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
    "chunked": b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n%x\r\n%s\r\n0\r\n\r\n",
    "chunked, kept open": b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n",
}

# Only what the agent itself loads comes before the two memory readings.
PROBE = r"""
import sys, time
def hwm_kb():  # VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork and exec
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("VmHWM:")).split()[1])
from types import SimpleNamespace
import ssl, socket
import fleetpulse_agent.agent, fleetpulse_agent.deliver
from fleetpulse_agent.send import request
out = {"agent_kb": hwm_kb()}
import http.client
out["http_client_kb"] = hwm_kb()
import json, statistics
cfg = SimpleNamespace(connect_timeout=5, tls_timeout=5, read_timeout=5, request_cap=300,
                      dns_fallback=[], ca_file=sys.argv[2])
body = b"x" * 2048
for name, port in json.loads(sys.argv[1]).items():
    took = []
    for _ in range(int(sys.argv[3])):
        t = time.perf_counter()
        r = request("POST", "https://localhost:%d/v1/ingest" % port, body, {}, cfg)
        took.append(time.perf_counter() - t)
        assert r.status == 202 and r.body.startswith(b'{"accepted"'), r
    out[name] = statistics.median(took) * 1000
out["after_posts_kb"] = hwm_kb()
print(json.dumps(out))
"""


def serve(context: ssl.SSLContext, answer: bytes, keep_open: bool) -> int:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)

    def handle(conn: socket.socket) -> None:
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += tls.recv(65536)
                head, _, rest = data.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                while len(rest) < length:
                    rest += tls.recv(65536)
                tls.sendall(answer)
                if keep_open:
                    tls.recv(1)  # until the client hangs up
        except OSError:
            pass

    def loop() -> None:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return listener.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=200, help="posts per framing")
    args = parser.parse_args()
    if not shutil.which("openssl"):
        print("openssl is needed to make the local server's certificate")
        return 1
    with tempfile.TemporaryDirectory(prefix="fleetpulse-http-bench-") as tmp:
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        subprocess.run(
            [
                *(
                    "openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                ),
                *("-nodes", "-days", "1", "-subj", "/CN=localhost"),
                *(
                    "-addext",
                    "subjectAltName=DNS:localhost",
                    "-keyout",
                    str(key),
                    "-out",
                    str(cert),
                ),
            ],
            check=True,
            capture_output=True,
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        ports = {
            name: serve(
                context,
                template % (len(BODY), BODY),
                keep_open=name.endswith("kept open"),
            )
            for name, template in FRAMINGS.items()
        }
        done = subprocess.run(
            [sys.executable, "-S", "-c", PROBE, json.dumps(ports), str(cert), str(args.posts)],
            env={"PYTHONPATH": str(ROOT / "agent"), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        print(done.stderr)
        return 1
    r = json.loads(done.stdout)
    print(f"peak RSS, python -S, {args.posts} posts per framing over HTTPS to 127.0.0.1\n")
    print(f"{'agent and ssl loaded':40} {r['agent_kb'] / 1024:8.1f} MB")
    print(
        f"{'  + http.client':40} {r['http_client_kb'] / 1024:8.1f} MB"
        f"  (+{(r['http_client_kb'] - r['agent_kb']) / 1024:.1f} MB, "
        f"x{r['http_client_kb'] / r['agent_kb']:.2f})"
    )
    print(f"{'  after the posts':40} {r['after_posts_kb'] / 1024:8.1f} MB")
    print(f"\n{'one post (connect, TLS, answer)':40} {'median ms':>9}")
    for name in FRAMINGS:
        print(f"{'  ' + name:40} {r[name]:9.2f}")
    print(f"{'chunked / length':40} {r['chunked'] / r['length']:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
