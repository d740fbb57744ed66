"""POST /v1/collectd: collectd's write_http plugin, Format "JSON" (chalice test client)."""

from __future__ import annotations

import base64
import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.strategies import json_documents


def write(api, body, token: str | None, headers: dict[str, str] | None = None):
    h = {"Content-Type": "application/json", "User-Agent": "collectd/5.12.0"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return api.client.http.post("/v1/collectd", headers=h, body=raw)


def vl(plugin, type_, values, *, dstypes=None, dsnames=None, t=None, host="c-1", **extra):
    return {
        "values": values,
        "dstypes": dstypes or ["gauge"] * len(values),
        "dsnames": dsnames or ["value"] * len(values),
        "time": t if t is not None else time.time(),
        "interval": 10.0,
        "host": host,
        "plugin": plugin,
        "plugin_instance": extra.get("plugin_instance", ""),
        "type": type_,
        "type_instance": extra.get("type_instance", ""),
    }


def stored(api):
    out = {}
    for (measure, _, dimensions), record in api.services.metric_store.records.items():
        fields = {m["Name"]: float(m["Value"]) for m in record["MeasureValues"]}
        out.setdefault((measure, dimensions), []).append(fields)
    return out


def test_load_and_memory_are_stored_and_the_host_is_heard(memory_api):
    token = memory_api.token("fleet")
    t = time.time()
    body = [
        vl("load", "load", [0.5, 0.4, 0.3], dsnames=["shortterm", "midterm", "longterm"], t=t),
        vl("memory", "memory", [1.5e9], type_instance="used", t=t),
        vl("memory", "memory", [6.5e9], type_instance="free", t=t),
        vl("memory", "percent", [18.75], type_instance="used", t=t),
    ]
    response = write(memory_api, body, token)
    assert response.status_code == 202, response.body
    assert json.loads(response.body) == {"accepted": 4, "rejected": []}
    records = stored(memory_api)
    assert records[("load", (("host", "c-1"), ("type", "load")))] == [
        {"shortterm": 0.5, "midterm": 0.4, "longterm": 0.3}
    ]
    memory = (("host", "c-1"), ("type", "memory"))
    assert records[("memory", (*memory, ("type_instance", "used")))] == [{"value": 1.5e9}]
    assert records[("memory", (*memory, ("type_instance", "free")))] == [{"value": 6.5e9}]
    percent = (("host", "c-1"), ("type", "percent"), ("type_instance", "used"))
    assert records[("memory", percent)] == [{"value": 18.75}]
    (host,) = memory_api.services.host_store.scan()
    assert (host.host, host.agent_name, host.agent_version) == ("c-1", "collectd", "5.12.0")
    assert host.interval.total_seconds() == 10


def test_derive_and_counter_values_become_per_second_rates(memory_api):
    token = memory_api.token("fleet")
    t = time.time() - 20

    def post(at, rx, tx):
        body = [
            vl(
                "interface",
                "if_octets",
                [rx, tx],
                dstypes=["derive", "counter"],
                dsnames=["rx", "tx"],
                plugin_instance="eth0",
                t=at,
            )
        ]
        return write(memory_api, body, token)

    first = post(t, 1_000, 2**32 - 500)
    assert first.status_code == 202
    assert json.loads(first.body)["accepted"] == 0  # a first value only primes the rate
    assert [h.host for h in memory_api.services.host_store.scan()] == ["c-1"]  # still heard
    assert post(t + 10, 6_000, 500).status_code == 202  # tx wrapped at 32 bits
    records = stored(memory_api)
    key = ("interface", (("host", "c-1"), ("instance", "eth0"), ("type", "if_octets")))
    assert records[key] == [{"rx": 500.0, "tx": 100.0}]


def test_bad_value_lists_are_refused_one_by_one_by_path(memory_api):
    token = memory_api.token("fleet")
    body = [
        vl("load", "load", [0.5], dsnames=["shortterm"]),
        vl("load", "load", [0.5, 1], dsnames=["shortterm"]),
        {**vl("memory", "memory", [1.0]), "host": "bad host"},
        vl("cpu", "cpu", [1], dstypes=["rate"]),
        vl("df", "df", ["x"]),
        {**vl("load", "load", [1.0]), "time": time.time() - 3 * 86_400},
        "nope",
    ]
    response = write(memory_api, body, token)
    assert response.status_code == 202
    reasons = [r["reason"] for r in json.loads(response.body)["rejected"]]
    assert reasons[0].startswith("[1]: values, dstypes and dsnames must be")
    assert reasons[1].startswith("[2].host: host 'bad host'")
    assert reasons[2].startswith("[3].dstypes[0]: dstype must be gauge")
    assert reasons[3] == "[4].values[0]: value must be a finite number or null"
    assert reasons[4].startswith("[5].time: 72.0 h old")
    assert reasons[5] == "[6]: each value list must be an object"


def test_nothing_valid_is_400_with_details(memory_api):
    token = memory_api.token("fleet")
    response = write(memory_api, [{"values": [1]}], token)
    assert response.status_code == 400
    body = json.loads(response.body)
    paths = {d["path"] for d in body["details"]}
    assert {"[0].host", "[0].plugin", "[0].type", "[0].time", "[0].interval"} <= paths
    assert write(memory_api, {"values": []}, token).status_code == 400


def test_basic_auth_with_the_token_as_password_and_bearer_work(memory_api):
    token = memory_api.token("fleet")
    body = [vl("load", "load", [0.5], dsnames=["shortterm"])]
    refused = write(memory_api, body, None)
    assert refused.status_code == 401
    # libcurl (write_http) sends its User/Password only after a challenge
    assert refused.headers["WWW-Authenticate"].startswith("Basic ")
    basic = base64.b64encode(f"collectd:{token}".encode()).decode()
    assert write(memory_api, body, None, {"Authorization": f"Basic {basic}"}).status_code == 202
    assert write(memory_api, body, token).status_code == 202


def test_gzip_bodies_and_size_limits_are_json_ingests(memory_api):
    import gzip

    token = memory_api.token("fleet")
    body = gzip.compress(json.dumps([vl("load", "load", [0.5], dsnames=["shortterm"])]).encode())
    assert write(memory_api, body, token, {"Content-Encoding": "gzip"}).status_code == 202
    huge = b"[" + b" " * (memory_api.services.settings.limits.max_body_bytes + 1) + b"]"
    assert write(memory_api, huge, token).status_code == 413
    assert write(memory_api, b"[]", token, {"Content-Type": "text/plain"}).status_code == 415


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=512))
def test_any_bytes_get_a_2xx_or_4xx_never_a_5xx(memory_api, body):
    token = memory_api.token("fleet")
    assert write(memory_api, body, token).status_code in (202, 400, 413)


VALUE_LIST_KEYS = ["values", "dstypes", "dsnames", "time", "interval", "host", "plugin", "type"]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    items=st.lists(
        st.dictionaries(st.sampled_from(VALUE_LIST_KEYS), json_documents(), max_size=8),
        max_size=4,
    )
)
def test_any_json_value_lists_get_a_2xx_or_4xx_never_a_5xx(memory_api, items):
    token = memory_api.token("fleet")
    assert write(memory_api, items, token).status_code in (202, 400, 413)
