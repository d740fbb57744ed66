"""The Timestream dashboard, checked without a Grafana: every query reads measures the agent
really sends (read from the agent's own collector) in the shape the Timestream store writes
them, within the dashboard's time range; the annotations read the alert transitions."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml
from fleetpulse_agent.collect import GAUGE, KINDS

from chalicelib.core.alerts import transition_point
from chalicelib.core.models import ALERT_MEASUREMENT

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "infra" / "grafana" / "fleetpulse-timestream.json"
COLLECT = ROOT / "agent" / "fleetpulse_agent" / "collect.py"
DOC = json.loads(DASHBOARD.read_text())
DATASOURCE = {"type": "grafana-timestream-datasource", "uid": "${datasource}"}

# Dimensions: the host (CommonAttributes) and the agent's point tags; alert transitions'.
DIMENSIONS = {"host", "cpu", "mount", "device", "fstype", "interface", "alert_id", "rule", "kind"}
# Macros the data source expands, and Grafana's own variables.
MACROS = {"__timeFilter", "__interval_ms", "__all", "__from", "__to"}


def agent_fields() -> dict[str, set[str]]:
    """measurement -> the fields the agent sends for it, after aggregation (collect.py's
    readers, read from their source: `out.append((measurement, tags, fields))`)."""
    tree = ast.parse(COLLECT.read_text())
    out: dict[str, set[str]] = {}
    for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        keys = {
            k.value
            for d in ast.walk(fn)
            if isinstance(d, ast.Dict)
            for k in d.keys
            if isinstance(k, ast.Constant) and isinstance(k.value, str)
        }
        keys |= {
            t.slice.value
            for a in ast.walk(fn)
            if isinstance(a, ast.Assign)
            for t in a.targets
            if isinstance(t, ast.Subscript)
            and isinstance(t.value, ast.Name)
            and t.value.id == "fields"
            and isinstance(t.slice, ast.Constant)
        }
        for call in ast.walk(fn):
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "append"
                and call.args
                and isinstance(call.args[0], ast.Tuple)
                and isinstance(call.args[0].elts[0], ast.Constant)
            ):
                measurement = call.args[0].elts[0].value
                fields = out.setdefault(measurement, set())
                for key in keys:
                    fields.add(key)
                    if KINDS.get(key, GAUGE) == GAUGE:  # aggregate.py's swing fields
                        fields |= {f"{key}_min", f"{key}_max", f"{key}_last"}
    return out


def alert_fields() -> set[str]:
    """The fields of an alert transition point, from the code that makes them."""
    import inspect

    source = inspect.getsource(transition_point)
    return set(re.findall(r'"(\w+)":', source)) | set(re.findall(r'fields\["(\w+)"\]', source))


def queries() -> list[tuple[str, str]]:
    """(where, SQL) of every panel target, annotation and query variable."""
    out = []
    for panel in DOC["panels"]:
        for t in panel.get("targets", []):
            out.append((f"panel {panel['title']!r} {t['refId']}", t["rawQuery"]))
    for a in DOC["annotations"]["list"]:
        if "target" in a:
            out.append((f"annotation {a['name']!r}", a["target"]["rawQuery"]))
    for v in DOC["templating"]["list"]:
        if v["type"] == "query":
            out.append((f"variable {v['name']}", v["query"]))
    return out


def measurements_of(sql: str) -> set[str]:
    names = set(re.findall(r"measure_name = '(\w+)'", sql))
    for listed in re.findall(r"measure_name IN \(([^)]*)\)", sql):
        names |= set(re.findall(r"'(\w+)'", listed))
    return names


def test_one_timestream_datasource_chosen_by_a_variable():
    [ds] = [v for v in DOC["templating"]["list"] if v["type"] == "datasource"]
    assert (ds["name"], ds["query"]) == ("datasource", "grafana-timestream-datasource")
    for panel in DOC["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == DATASOURCE, panel["title"]
            for t in panel["targets"]:
                assert t["datasource"] == DATASOURCE
                assert t["queryType"] == "raw"
    names = {v["name"] for v in DOC["templating"]["list"]}
    assert names == {"datasource", "database", "table", "hosts", "host", "top"}


@pytest.mark.parametrize(("where", "sql"), queries())
def test_every_query_reads_the_agents_measures_within_the_time_range(where, sql):
    if not sql.startswith("SHOW"):
        # A week-ago overlay reads the dashboard's range a week back (Grafana's ${__from}).
        assert "$__timeFilter" in sql or "${__from}) - 7d" in sql, where
        assert 'FROM "$database"."$table"' in sql, where
    assert sql.count("(") == sql.count(")"), where
    assert sql.count("'") % 2 == 0, where
    assert sql.count('"') % 2 == 0, where
    defined = {v["name"] for v in DOC["templating"]["list"]}
    for name in re.findall(r"\$\{?(\w+)", sql):
        assert name in defined | MACROS, f"{where}: ${name} is not a variable or a macro"

    fields = agent_fields()
    measured = measurements_of(sql)
    if sql.startswith("SHOW"):
        return
    assert measured, f"{where} names no measure_name"
    known = {ALERT_MEASUREMENT: alert_fields(), **fields}
    assert measured <= set(known), f"{where}: {measured - set(known)} is not sent"
    columns = set().union(*(known[m] for m in measured))
    aliases = set(re.findall(r'AS "?(\w+)"?', sql))
    for name in set(re.findall(r'"(\w+)"', sql)) - aliases - {"$database", "$table"}:
        if name in ("database", "table"):
            continue
        assert name in columns | DIMENSIONS, f"{where}: {name} is not a field of {measured}"


def test_the_host_view_covers_load_cpu_memory_swap_disk_and_network():
    host_view = " ".join(
        t["rawQuery"]
        for p in DOC["panels"]
        if p["type"] != "row" and "$host'" in json.dumps(p)
        for t in p["targets"]
    )
    for needed in (
        '"load1"',
        '"load5"',
        '"load15"',
        '"user"',
        '"system"',
        '"iowait"',
        '"steal"',
        "measure_name = 'memory'",
        "measure_name = 'swap'",
        '"mount"',
        '"rx_bytes_per_s"',
        '"tx_bytes_per_s"',
        '"interface"',
    ):
        assert needed in host_view, needed
    assert "\"cpu\" = 'total'" in host_view


def test_the_fleet_overview_counts_hosts_and_ranks_the_top_ones():
    titles = [p["title"] for p in DOC["panels"]]
    assert "Hosts reporting (last 5 min)" in titles
    top = [t for t in titles if t.startswith("Top $top hosts by")]
    assert len(top) >= 4
    ranked = [t["rawQuery"] for p in DOC["panels"] if p["title"] in top for t in p["targets"]]
    assert all("LIMIT $top" in q for q in ranked)


def test_alert_transitions_are_annotations():
    annotations = [a for a in DOC["annotations"]["list"] if "target" in a]
    assert {a["name"] for a in annotations} == {"Alerts firing", "Alerts resolved"}
    for a in annotations:
        sql = a["target"]["rawQuery"]
        assert a["datasource"] == DATASOURCE
        assert "measure_name = 'alert'" in sql
        # Grafana maps these columns to an annotation's time, text and tags.
        assert sql.startswith("SELECT time,")
        assert " AS text" in sql
        assert " AS tags" in sql
        for field in ('"status"', '"severity"', '"summary"'):
            assert field in sql
        # Fleet-wide alerts (the ingest outage) are the `fleetpulse` host's.
        assert "'fleetpulse'" in sql


def test_panels_have_unique_ids_and_do_not_overlap():
    ids = [p["id"] for p in DOC["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in DOC["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine


def test_the_provisioning_files_name_the_plugin_and_the_dashboard_folder():
    provisioning = ROOT / "infra" / "grafana" / "provisioning"
    datasources = yaml.safe_load(
        (provisioning / "datasources" / "fleetpulse-timestream.yaml").read_text()
    )
    [ds] = datasources["datasources"]
    assert ds["type"] == DATASOURCE["type"]
    assert ds["jsonData"]["defaultTable"] == "metrics"
    dashboards = yaml.safe_load((provisioning / "dashboards" / "fleetpulse.yaml").read_text())
    [provider] = dashboards["providers"]
    assert provider["type"] == "file"


def test_agent_fields_reader_sees_what_the_collector_sends():
    """The static reading above, checked against a few fields known to be sent."""
    fields = agent_fields()
    assert {"user", "system", "iowait", "steal", "idle"} <= fields["cpu"]
    assert {"used_percent", "used_percent_max"} <= fields["memory"]
    assert {"rx_bytes_per_s", "tx_bytes_per_s"} <= fields["net"]
    assert {"load1", "load5", "load15", "load1_max"} <= fields["system"]
    assert "total_bytes_max" not in fields["memory"]  # constants send their last value only
