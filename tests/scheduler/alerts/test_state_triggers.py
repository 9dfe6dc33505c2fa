"""The rules that read the state of the fleet, checked by the watcher: beat without a leader,
a queue without a worker or too deep, a schedule without a success. Each must hold for the
rule's duration before its incident opens, and its incident recovers when it stops holding."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings

from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.models import Incident
from scheduler.observability.worker_heartbeats import (
    forget_worker,
    record_worker_queues,
    record_worker_seen,
)
from scheduler.protocol import ALERT_NO_SUCCESS_CHECKED_KEY, BEAT_LEADER_KEY
from scheduler.services import schedule_create
from scheduler.services.alert_watch import alert_watch
from scheduler.services.incidents import alert_event
from tests.factories import event_payload_of, make_channel, make_rule

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fleet() -> Iterator[None]:
    yield
    redis = get_redis()
    redis.delete(redis_key(BEAT_LEADER_KEY))
    forget_worker("w1@host")
    redis.delete(f"{settings.REDIS_KEY_PREFIX}webhooks")


def beat_leads(leads: bool) -> None:
    key = redis_key(BEAT_LEADER_KEY)
    if leads:
        get_redis().set(key, "beat-1")
    else:
        get_redis().delete(key)


def kinds(sent: list[Any]) -> list[str]:
    return [notification.kind for _, notification in sent]


def test_beat_without_a_leader_for_t(recording_channels: list[Any]) -> None:
    make_channel()
    make_rule("beat", "beat_no_leader", duration=60)
    now = time.time()
    beat_leads(True)
    alert_watch(now=now)
    assert not Incident.objects.exists()
    # The leader's lock expired: first seen at now + 1, not yet T later, then T later.
    beat_leads(False)
    alert_watch(now=now + 1)
    alert_watch(now=now + 60)
    assert not Incident.objects.exists()
    report = alert_watch(now=now + 61)
    assert report.opened == 1
    incident = Incident.objects.get()
    assert incident.subject == "beat"
    assert incident.title == "beat has had no leader for 1 min"
    alert_watch(now=now + 90)
    assert Incident.objects.get().match_count == 2
    beat_leads(True)
    alert_watch(now=now + 96)
    assert Incident.objects.get().resolved_at is not None
    assert kinds(recording_channels) == ["down", "recovered"]


def test_beat_that_never_led_counts_from_the_first_check() -> None:
    make_channel()
    make_rule("beat", "beat_no_leader", duration=60)
    beat_leads(False)
    now = time.time()
    alert_watch(now=now)
    alert_watch(now=now + 59)
    assert not Incident.objects.exists()
    alert_watch(now=now + 60)
    assert Incident.objects.get().subject == "beat"


def test_no_worker_on_a_queue_for_t(recording_channels: list[Any]) -> None:
    make_channel()
    make_rule("webhooks worker", "no_worker", target_type="queue", target="webhooks", duration=30)
    now = time.time()
    record_worker_seen("w1@host", at=now)
    record_worker_queues("w1@host", ["default"])  # alive, but not on webhooks
    alert_watch(now=now)
    alert_watch(now=now + 31)
    incident = Incident.objects.get()
    assert incident.subject == "queue:webhooks"
    assert "no worker has consumed queue 'webhooks'" in incident.title
    record_worker_queues("w1@host", ["default", "webhooks"])
    alert_watch(now=now + 32)
    assert Incident.objects.get().resolved_at is not None
    assert kinds(recording_channels) == ["down", "recovered"]


def test_a_queue_deeper_than_n_for_t() -> None:
    make_channel()
    make_rule(
        "backlog", "queue_depth", target_type="queue", target="webhooks", threshold=3, duration=10
    )
    queue = f"{settings.REDIS_KEY_PREFIX}webhooks"
    get_redis().rpush(queue, *["{}"] * 4)
    now = time.time()
    alert_watch(now=now)
    assert not Incident.objects.exists()
    alert_watch(now=now + 10)
    assert Incident.objects.get().title == "queue 'webhooks' holds 4 messages (over 3)"
    get_redis().delete(queue)
    alert_watch(now=now + 11)
    assert Incident.objects.get().resolved_at is not None


def test_a_schedule_without_a_success_for_a_period(recording_channels: list[Any]) -> None:
    make_channel()
    schedule_create(name="nightly", task="scheduler.ping", schedule="every day at 3am")
    rule = make_rule("late", "no_success", target_type="schedule", target="nightly", duration=3600)
    made = rule.updated_at.timestamp()
    alert_watch(now=made + 3500)
    assert not Incident.objects.exists()
    get_redis().delete(redis_key(ALERT_NO_SUCCESS_CHECKED_KEY))
    alert_watch(now=made + 3601)
    incident = Incident.objects.get()
    assert incident.subject == "schedule:nightly"
    assert incident.title.startswith("schedule 'nightly' has not succeeded for 1 h")
    # Its next success recovers it (as it is recorded, not at the next check).
    alert_event(
        event_payload_of(
            type="task.succeeded", periodic_task_name="nightly", task_name="scheduler.ping"
        )
    )
    assert Incident.objects.get().resolved_at is not None
    assert kinds(recording_channels) == ["down", "recovered"]
