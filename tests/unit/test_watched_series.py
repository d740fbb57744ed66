"""What a post leaves in its host item: only the series a threshold rule would act on, with
only the fields rules read; the rest goes to the series catalog, written when it changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.core.hosts import (
    CATALOG_KEEP,
    CATALOG_MAX_BYTES,
    CATALOG_MAX_SERIES,
    CATALOG_MIN_INTERVAL,
    CATALOG_REFRESH,
    CATALOG_SHAPES,
    LATEST_MAX_AGE,
    SeriesEntry,
    Tracking,
    carried_series,
    catalog_digest,
    catalog_due,
    host_update,
    merged_catalog,
)
from chalicelib.core.instants import ms_of_instant as ms
from chalicelib.core.models import HostReport, Point
from chalicelib.core.rules import parse_rules

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
RULES = parse_rules(
    {
        "rules": [
            {
                "name": "cpu-busy",
                "measurement": "cpu",
                "field": "idle",
                "op": "<",
                "warning": 10,
                "recovery": 20,
                "match": {"cpu": "total"},
            },
            {
                "name": "inodes",
                "measurement": "disk",
                "field": "inodes_used",
                "divide_by": "inodes_total",
                "op": ">",
                "critical": 0.9,
            },
            {
                "name": "disk",
                "measurement": "disk",
                "field": "used_percent",
                "op": ">",
                "warning": 85,
            },
        ]
    }
)
WATCH = RULES.by_measurement


def post(*points: Point) -> HostReport:
    return HostReport(host="web-1", interval_s=60, points=list(points))


def cpu(idle: float, name: str = "total") -> Point:
    return Point("cpu", ms(NOW), {"cpu": name}, {"idle": idle, "user": 3.0, "up": True})


def disk(mount: str, **fields: float) -> Point:
    return Point("disk", ms(NOW), {"mount": mount}, fields)


def test_only_series_a_rule_would_act_on_are_watched_with_only_the_fields_rules_read():
    update = host_update(
        post(
            cpu(5.0),  # breaching
            cpu(50.0, "cpu0"),  # fine; matchers are the evaluation's: it is judged like total
            disk("/", used_percent=91.0, inodes_used=1, inodes_total=10, free=3.0),
            disk("/data", used_percent=10.0, inodes_used=95, inodes_total=100),  # by division
            disk("/boot", used_percent=10.0, inodes_used=1, inodes_total=0),  # no division by 0
            Point("memory", ms(NOW), {}, {"used_percent": 99.0}),  # no rule reads memory
        ),
        NOW,
        watch=WATCH,
    )
    assert sorted(update.series) == ["cpu|cpu=total", "disk|mount=/", "disk|mount=/data"]
    assert update.series["cpu|cpu=total"].fields == {"idle": 5.0}
    assert update.series["disk|mount=/"].fields == {
        "used_percent": 91.0,
        "inodes_used": 1,
        "inodes_total": 10,
    }
    assert update.series_count == 6
    # The catalog has every series with a numeric field, and its numeric fields only.
    assert [(e.measurement, e.tags, e.fields) for e in update.catalog][:2] == [
        ("cpu", {"cpu": "cpu0"}, ("idle", "user")),
        ("cpu", {"cpu": "total"}, ("idle", "user")),
    ]
    assert len(update.catalog) == 6


def test_a_series_in_its_recovery_band_stays_watched_so_hysteresis_holds():
    assert list(host_update(post(cpu(15.0)), NOW, watch=WATCH).series) == ["cpu|cpu=total"]
    assert host_update(post(cpu(25.0)), NOW, watch=WATCH).series == {}


def test_without_rules_every_series_is_kept_as_posted():
    update = host_update(post(cpu(50.0), disk("/", used_percent=1.0)), NOW)
    assert update.series["cpu|cpu=total"].fields == {"idle": 50.0, "user": 3.0, "up": True}
    assert len(update.series) == 2


def test_the_catalog_digest_follows_the_set_of_series_and_fields_not_their_values():
    one = host_update(post(cpu(5.0), disk("/", used_percent=1.0)), NOW, watch=WATCH)
    same = host_update(post(cpu(95.0), disk("/", used_percent=80.0)), NOW, watch=WATCH)
    more = host_update(post(cpu(5.0), disk("/", used_percent=1.0, free=2.0)), NOW, watch=WATCH)
    assert one.catalog_digest == same.catalog_digest != more.catalog_digest
    assert len(one.catalog_digest) == 12
    assert host_update(post(), NOW).catalog_digest == catalog_digest(()) == ""


def test_the_cap_bounds_the_watched_series_and_the_catalog_and_counts_the_rest():
    points = [disk(f"/m{i:03d}", used_percent=99.0) for i in range(30)]
    update = host_update(post(*points), NOW, Tracking(max_series=10), WATCH)
    assert len(update.series) == len(update.catalog) == 10
    assert update.untracked_series == 20
    assert update.series_count == 30


def test_watched_series_a_post_did_not_carry_are_kept_while_fresh():
    first = host_update(post(disk("/", used_percent=99.0), cpu(5.0)), NOW, watch=WATCH)
    later = NOW + timedelta(minutes=1)
    only_cpu = host_update(post(cpu(50.0)), later, watch=WATCH)
    # cpu was carried (now fine: not kept); the disk was not, and is fresh: kept.
    assert list(carried_series(first.series, only_cpu)) == ["disk|mount=/"]
    stale_at = NOW + LATEST_MAX_AGE + timedelta(seconds=1)
    stale = host_update(post(), stale_at, watch=WATCH)
    assert carried_series(first.series, stale) == {}


def test_the_catalog_keeps_the_most_recently_written_series_within_its_bounds():
    old_entry = SeriesEntry("gone", {}, ("v",))
    kept_entry = SeriesEntry("load", {}, ("load1",))
    keep_ms = int(CATALOG_KEEP.total_seconds() * 1000)
    old = {"gone": (ms(NOW) - keep_ms - 1, old_entry), "load": (ms(NOW) - keep_ms, kept_entry)}
    update = host_update(post(cpu(5.0)), NOW, watch=WATCH)
    merged = merged_catalog(old, update)
    assert sorted(merged) == ["cpu|cpu=total", "load"]
    assert merged["cpu|cpu=total"] == (
        ms(NOW),
        SeriesEntry("cpu", {"cpu": "total"}, ("idle", "user")),
    )
    many = {
        f"m|i={i:04d}": (ms(NOW) - i, SeriesEntry("m", {"i": f"{i:04d}"}, ("v",)))
        for i in range(CATALOG_MAX_SERIES)
    }
    capped = merged_catalog(many, update)
    assert len(capped) == CATALOG_MAX_SERIES
    assert "cpu|cpu=total" in capped
    assert f"m|i={CATALOG_MAX_SERIES - 1:04d}" not in capped


def test_a_new_shape_is_written_at_once_until_the_catalog_is_full_then_once_per_interval():
    update = host_update(post(cpu(5.0)), NOW, watch=WATCH)
    now_ms = ms(NOW)
    interval_ms = int(CATALOG_MIN_INTERVAL.total_seconds() * 1000)
    assert catalog_due(update, [], None)
    assert not catalog_due(update, [update.catalog_digest], now_ms)  # written already
    others = [f"other-{i}" for i in range(CATALOG_SHAPES)]
    assert catalog_due(update, others[:-1], now_ms)  # room for it
    assert not catalog_due(update, others, now_ms - interval_ms + 1)
    assert catalog_due(update, others, now_ms - interval_ms)
    refresh_ms = int(CATALOG_REFRESH.total_seconds() * 1000)
    assert not catalog_due(update, [update.catalog_digest], now_ms - refresh_ms + 1)
    assert catalog_due(update, [update.catalog_digest], now_ms - refresh_ms)  # a refresh
    assert not catalog_due(host_update(post(), NOW), [], None)  # nothing to list


def test_the_catalog_stays_far_below_dynamodbs_item_limit_whatever_is_sent():
    fields = {f"field_{'x' * 100}_{i:03d}": 1.0 for i in range(200)}
    update = host_update(
        post(*(Point(f"m{i:03d}", ms(NOW), {}, fields) for i in range(200))), NOW, Tracking()
    )
    catalog = merged_catalog({}, update)
    listed = sum(len(k) * 2 + sum(len(n) + 4 for n in e.fields) for k, (_, e) in catalog.items())
    assert 0 < len(catalog) < 200
    assert listed <= CATALOG_MAX_BYTES
