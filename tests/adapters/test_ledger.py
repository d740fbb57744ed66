"""The delivery ledger, DynamoDB on moto and the in-memory fake, held to the same contract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.adapters.aws import AwsClients
from chalicelib.adapters.dynamodb import DynamoDBLedger
from chalicelib.core.notify import (
    Channel,
    ClaimStatus,
    Delivery,
    DeliveryRecord,
    DeliveryState,
    Episode,
)
from chalicelib.settings import Settings
from fleetpulse.resources import create_all
from tests.support.alerts import alert, resolved

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


@pytest.fixture
def ledger(stores):
    return stores.ledger


def firing(message_id: str = "m-1", channel: Channel = Channel.SLACK) -> Delivery:
    return Delivery(message_id, channel, alert())


def test_a_delivery_is_claimed_once_and_finished_once(ledger):
    claim = ledger.claim(firing(), NOW, LEASE)
    assert claim.status is ClaimStatus.CLAIMED
    assert ledger.claim(firing(), NOW, LEASE).status is ClaimStatus.BUSY
    ledger.finish(firing(), claim, DeliveryRecord(DeliveryState.SENT, 1, 200), NOW)
    again = ledger.claim(firing(), NOW + timedelta(hours=1), LEASE)
    assert again.status is ClaimStatus.DONE
    assert again.previous is DeliveryState.SENT
    item = ledger.delivery("m-1", Channel.SLACK)
    assert item["state"] == "sent"
    assert item["attempts"] == 1
    assert item["response_code"] == 200


def test_channels_are_claimed_independently(ledger):
    assert ledger.claim(firing(), NOW, LEASE).status is ClaimStatus.CLAIMED
    assert ledger.claim(firing(channel=Channel.PAGERDUTY), NOW, LEASE).status is ClaimStatus.CLAIMED


@pytest.mark.parametrize("final", [DeliveryState.FAILED_PERMANENT, DeliveryState.SKIPPED_REMINDER])
def test_final_states_are_never_delivered_again(ledger, final):
    claim = ledger.claim(firing(), NOW, LEASE)
    ledger.finish(firing(), claim, DeliveryRecord(final, 1, 404, "Slack answered HTTP 404"), NOW)
    assert ledger.claim(firing(), NOW + LEASE * 10, LEASE).status is ClaimStatus.DONE


def test_a_temporary_failure_can_be_claimed_again_at_once(ledger):
    claim = ledger.claim(firing(), NOW, LEASE)
    ledger.finish(
        firing(), claim, DeliveryRecord(DeliveryState.FAILED_TEMPORARY, 5, 500, "HTTP 500"), NOW
    )
    retry = ledger.claim(firing(), NOW + timedelta(seconds=1), LEASE)
    assert retry.status is ClaimStatus.CLAIMED
    ledger.finish(firing(), retry, DeliveryRecord(DeliveryState.SENT, 1, 200), NOW)
    item = ledger.delivery("m-1", Channel.SLACK)
    assert item["attempts"] == 6
    assert item["claims"] == 2
    assert item.get("error") is None


def test_a_claim_left_by_a_crash_is_taken_over_when_its_lease_runs_out(ledger):
    crashed = ledger.claim(firing(), NOW, LEASE)  # ... and nothing more: the invocation died
    assert (
        ledger.claim(firing(), NOW + LEASE - timedelta(seconds=1), LEASE).status is ClaimStatus.BUSY
    )
    retry = ledger.claim(firing(), NOW + LEASE + timedelta(seconds=1), LEASE)
    assert retry.status is ClaimStatus.CLAIMED
    ledger.finish(firing(), retry, DeliveryRecord(DeliveryState.SENT, 1, 200), NOW)
    # The slow original finishing late must not overwrite the takeover's record.
    ledger.finish(
        firing(), crashed, DeliveryRecord(DeliveryState.FAILED_TEMPORARY, 1, 500, "x"), NOW
    )
    assert ledger.delivery("m-1", Channel.SLACK)["state"] == "sent"
    assert ledger.episode(alert()["dedup_key"], Channel.SLACK) == Episode(firing_sent=1)


def test_episodes_count_what_each_channel_was_sent(ledger):
    key = alert()["dedup_key"]
    assert ledger.episode(key, Channel.SLACK) == Episode()
    for message_id, message in (("m-1", alert()), ("m-2", alert()), ("m-3", resolved())):
        delivery = Delivery(message_id, Channel.SLACK, message)
        claim = ledger.claim(delivery, NOW, LEASE)
        ledger.finish(delivery, claim, DeliveryRecord(DeliveryState.SENT, 1, 200), NOW)
    skipped = Delivery("m-4", Channel.SLACK, alert())
    claim = ledger.claim(skipped, NOW, LEASE)
    ledger.finish(skipped, claim, DeliveryRecord(DeliveryState.SKIPPED_STALE), NOW)
    assert ledger.episode(key, Channel.SLACK) == Episode(firing_sent=2, resolved_sent=1)
    assert ledger.episode(key, Channel.PAGERDUTY) == Episode()


def test_dynamodb_items_expire_after_30_days(aws):
    settings = Settings.from_env({})
    clients = AwsClients(region="us-east-1")
    create_all(settings, clients)
    dynamodb = clients.get("dynamodb")
    ttl = dynamodb.describe_time_to_live(TableName=settings.ledger_table)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    ledger = DynamoDBLedger(dynamodb, settings.ledger_table)
    claim = ledger.claim(firing(), NOW, LEASE)
    ledger.finish(firing(), claim, DeliveryRecord(DeliveryState.SENT, 1, 200), NOW)
    expires = int((NOW + timedelta(days=30)).timestamp())
    assert ledger.delivery("m-1", Channel.SLACK)["expires_at"] == expires
    episode = dynamodb.get_item(
        TableName=settings.ledger_table,
        Key={"id": {"S": "alert#" + alert()["dedup_key"]}, "channel": {"S": "slack"}},
    )["Item"]
    assert episode["expires_at"] == {"N": str(expires)}
    create_all(settings, clients)  # idempotent
