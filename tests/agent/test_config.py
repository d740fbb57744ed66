from __future__ import annotations

import pytest
from fleetpulse_agent import config
from fleetpulse_agent.config import ConfigError, load


def test_defaults_fill_what_file_and_environment_leave_out(tmp_path) -> None:
    path = tmp_path / "agent.conf"
    path.write_text("[agent]\nurl = https://collector.example.com\ntoken = t0k3n\n")
    cfg = load(str(path), env={})
    assert cfg.url == "https://collector.example.com"
    assert cfg.spool_dir == "/var/lib/fleetpulse/spool"
    assert cfg.spool_max_mb == 256
    assert cfg.sample_interval == 10
    assert cfg.send_interval == 60
    assert cfg.statsd == ("127.0.0.1", 8125)
    assert cfg.dns_fallback == [("169.254.169.253", 53)]  # the VPC resolver
    assert cfg.stats == ("min", "max")  # a gauge's average and its swing
    assert cfg.host  # the machine's own name
    assert config.ingest_url(cfg) == "https://collector.example.com/v1/ingest"


def test_environment_wins_over_the_file(tmp_path) -> None:
    path = tmp_path / "agent.conf"
    path.write_text(
        "[agent]\nurl = https://a.example\ntoken = file-token\nhost = from-file\nsample_interval = 5\n"
    )
    env = {
        "FLEETPULSE_TOKEN": "env-token",
        "FLEETPULSE_HOST": "web-1.example.com",
        "FLEETPULSE_SAMPLE_INTERVAL": "2.5",
        "FLEETPULSE_SEND_INTERVAL": "30",
        "FLEETPULSE_SPOOL_DIR": "/tmp/spool",
        "FLEETPULSE_STATSD": "off",
        "FLEETPULSE_TAGS": "role=web,env=prod",
    }
    cfg = load(str(path), env=env)
    assert (cfg.token, cfg.host, cfg.sample_interval, cfg.send_interval) == (
        "env-token",
        "web-1.example.com",
        2.5,
        30,
    )
    assert cfg.spool_dir == "/tmp/spool"
    assert cfg.statsd is None
    assert cfg.tags == {"role": "web", "env": "prod"}


@pytest.mark.parametrize(
    ("raw", "stats"),
    [
        ("stddev, count", ("count", "stddev")),  # in one order whatever the order given
        ("count,min,max,stddev", ("count", "min", "max", "stddev")),
        ("max", ("max",)),
        ("", ()),  # the average only
    ],
)
def test_the_stats_beside_each_average_are_a_comma_list(tmp_path, raw, stats) -> None:
    path = tmp_path / "agent.conf"
    path.write_text("[agent]\nurl = https://c.example\ntoken = t\nstats = count\n")
    assert load(str(path), env={"FLEETPULSE_STATS": raw}).stats == stats


def test_the_config_path_comes_from_the_environment(tmp_path) -> None:
    path = tmp_path / "elsewhere.conf"
    path.write_text("[agent]\nurl = https://c.example\ntoken = t\n")
    assert load(None, env={"FLEETPULSE_CONFIG": str(path)}).url == "https://c.example"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[agent]\nurl = https://c\ntoken = t\nsample_intervall = 5\n",
            "unknown key 'sample_intervall'",
        ),
        (
            "[agent]\nurl = https://c\ntoken = t\nspool_max_mb = lots\n",
            "spool_max_mb='lots' is not valid; expected megabytes",
        ),
        (
            "[agent]\nurl = ftp://c\ntoken = t\n",
            "url='ftp://c' is not valid; expected the collector's base URL",
        ),
        ("[agent]\nurl = https://c\ntoken = two words\n", "token='two words' is not valid"),
        ("[agent]\nurl = https://c\ntoken = t\nhost = web 1\n", "host='web 1' is not valid"),
        ("[agent]\nurl = https://c\ntoken = t\ntags = time=now\n", "tags='time=now' is not valid"),
        (
            "[agent]\nurl = https://c\ntoken = t\nstatsd = 127.0.0.1:99999\n",
            "statsd='127.0.0.1:99999' is not valid",
        ),
        ("[agent]\ntoken = t\n", "url is not set"),
        (
            "[agent]\nurl = https://c\ntoken = t\nsend_interval = 5\n",
            "send_interval=5 is shorter than sample_interval=10",
        ),
        (
            "[agent]\nurl = https://c\ntoken = t\nstats = min,max,mean\n",
            "stats='min,max,mean' is not valid; expected a comma list among count, min, max, "
            "stddev",
        ),
        ("[other]\nurl = https://c\n", "unknown section [other]"),
        ("url = https://c\n", "expected `key = value` under [agent]"),
    ],
)
def test_a_bad_config_names_the_key_and_the_expected_form(tmp_path, text, message) -> None:
    path = tmp_path / "agent.conf"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load(str(path), env={})
    assert message in str(err.value)


def test_a_missing_explicit_file_is_an_error_but_a_missing_default_is_not(
    tmp_path, monkeypatch
) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load(str(tmp_path / "nope.conf"), env={})
    monkeypatch.setattr(config, "DEFAULT_PATH", str(tmp_path / "absent.conf"))
    cfg = load(None, env={"FLEETPULSE_URL": "https://c.example", "FLEETPULSE_TOKEN": "t"})
    assert cfg.config_path == ""
