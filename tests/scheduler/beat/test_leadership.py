"""Our beat scheduler's leadership (scheduler/beat/scheduler.py's `Leadership`): one beat of two
leads and the other takes over when the lock goes, a leader that lost the lock publishes nothing;
the heartbeats of the leader and the standby, and the watchdog that flags a run published with no
result.
"""

from __future__ import annotations

import time
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django_celery_beat.models import PeriodicTask

from config.celery import app
from scheduler.beat import scheduler as beat
from scheduler.beat.scheduler import Leadership, flag_missed_runs
from scheduler.core.redis_connection import redis_key
from scheduler.models import TaskEvent
from scheduler.observability.health import (
    beat_heartbeat,
    check_beat,
    check_missed_runs,
    missed_runs,
)
from tests.factories import TaskResultFactory, make_schedule
from tests.scheduler.beat.helpers import (
    Recording,
    later,
    recording_scheduler,
    redis_client,
    sent_names,
    set_last_run,
)

# `no_leader` (conftest.py): no leader lock or heartbeat of an earlier beat, before or after.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_leader")]


# --- Leadership ------------------------------------------------------------------------------


def test_one_beat_of_two_leads_and_the_other_takes_over_when_the_lock_goes():
    make_schedule(name="led", schedule="every 5 minutes")
    set_last_run("led", datetime.now(UTC) - timedelta(minutes=6))
    leader, standby = recording_scheduler(), recording_scheduler()

    leader.tick_once()
    standby.tick_once()
    assert leader.stats.leader
    assert not standby.stats.leader
    assert sent_names(leader) == ["led"]
    assert standby.entries == {}  # a standby holds nothing

    redis_client().delete(redis_key(beat.LEADER_KEY))  # the leader died: its lock expired
    with later(301):
        standby.tick_once()
        leader.tick_once()

    assert standby.stats.leader
    assert not leader.stats.leader
    assert sent_names(standby) == ["led"]
    assert sent_names(leader) == ["led"]  # nothing more once it lost the lock
    assert PeriodicTask.objects.get(name="led").total_run_count == 2


def test_a_leader_that_lost_the_lock_does_not_publish():
    make_schedule(name="fenced", schedule="every 5 minutes")
    scheduler = recording_scheduler()
    scheduler.tick_once()
    set_last_run("fenced", datetime.now(UTC) - timedelta(minutes=6))
    redis_client().set(redis_key(beat.LEADER_KEY), "someone else")

    with later(301):
        scheduler.tick_once()

    assert scheduler.sent == []
    assert PeriodicTask.objects.get(name="fenced").total_run_count == 0


def test_the_lock_is_renewed_and_fenced_atomically():
    lock = Leadership("me", ttl=5)
    assert lock.hold()
    ttl = redis_client().pttl(redis_key(beat.LEADER_KEY))
    assert 4000 < ttl <= 5000
    assert lock.confirm()

    redis_client().set(redis_key(beat.LEADER_KEY), "you")
    assert not lock.confirm()
    assert not lock.hold()
    assert redis_client().get(redis_key(beat.LEADER_KEY)) == b"you"
    lock.release()
    assert redis_client().get(redis_key(beat.LEADER_KEY)) == b"you"


def test_a_publish_may_start_only_while_it_surely_ends_inside_the_lock_it_renewed():
    lock = Leadership("me", ttl=10)
    before = time.monotonic()
    assert lock.hold()

    # Broker timeouts 2 s + 2 s (settings), tried once, and half a second of margin.
    assert beat.publish_bound() == 4.5
    assert before + 10 - 4.5 <= lock.fenced_until <= time.monotonic() + 10 - 4.5
    assert lock.may_publish()
    redis_client().set(redis_key(beat.LEADER_KEY), "you")
    lock.fenced_until = time.monotonic() - 1  # the window has passed: renewed first, and refused
    assert not lock.may_publish()
    assert lock.fenced_until == -float("inf")


class _SlowThenUsurped(Recording):
    """Its first publish takes longer than the fencing window, and meanwhile another beat
    takes the lock (this beat's host was cut off, say)."""

    def _send(
        self, entry: Any, producer: Any, due: datetime | None = None, **publish: Any
    ) -> str | None:
        sent = super()._send(entry, producer, due, **publish)
        if len(self.sent) == 1:
            time.sleep(0.6)
            redis_client().set(redis_key(beat.LEADER_KEY), "the other beat")
        return sent


def test_a_leader_whose_fencing_window_passed_mid_batch_publishes_no_more(settings):
    # TTL 5 s: the window is 5 - 4.5 = 0.5 s after each renewal.
    settings.BEAT_LEADER_TTL = 5.0
    for name in ("one", "two", "three"):
        make_schedule(name=name, schedule="every 5 minutes")
        set_last_run(name, datetime.now(UTC) - timedelta(minutes=6))
    scheduler = _SlowThenUsurped(app=app, lazy=True)

    scheduler.tick_once()

    # The first run was made and waited in the batch's pipeline: dropped unsent and unrecorded
    # (the new leader publishes it under the same id); none after it was made.
    assert len(scheduler.sent) == 1
    assert scheduler.entries == {}  # not the leader: it forgot what it held
    counts = PeriodicTask.objects.filter(name__in=["one", "two", "three"]).values_list(
        "total_run_count", flat=True
    )
    assert sum(counts) == 0


class _BrokerAway(Recording):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.tries = 0
        self.away = True
        super().__init__(*args, **kwargs)

    def _send(
        self, entry: Any, producer: Any, due: datetime | None = None, **publish: Any
    ) -> str | None:
        self.tries += 1
        if self.away:
            raise beat.NotPublished("the broker is away")
        return super()._send(entry, producer, due, **publish)


def test_a_batch_stops_at_the_first_publish_the_broker_fails_and_goes_out_later():
    for name in ("one", "two", "three"):
        make_schedule(name=name, schedule="every 5 minutes")
        set_last_run(name, datetime.now(UTC) - timedelta(minutes=6))
    scheduler = _BrokerAway(app=app, lazy=True)

    scheduler.tick_once()
    assert scheduler.tries == 1  # not three waits for a broker that is away
    assert scheduler.sent == []

    scheduler.away = False
    with later(2):
        scheduler.tick_once()
    assert sorted(sent_names(scheduler)) == ["one", "three", "two"]


# --- Heartbeat and watchdog ------------------------------------------------------------------


def test_the_leader_and_the_standby_record_heartbeats():
    leader, standby = recording_scheduler(), recording_scheduler()
    leader.tick_once()
    standby.tick_once()

    heartbeat = beat_heartbeat()
    check = check_beat()

    assert heartbeat is not None
    assert heartbeat["id"] == leader.identity
    assert heartbeat["leader"] == leader.identity
    assert abs(heartbeat["at"] - time.time()) < 5
    assert check.ok
    assert check.data["leader"] == leader.identity
    assert standby.identity in check.data["standbys"]


def test_the_watchdog_flags_a_published_run_with_no_result():
    now = time.time()
    answered = "answered-run"
    TaskResultFactory.create(task_id=answered, status="SUCCESS")
    published = deque(
        [
            (now - 700, "lost-run", "nightly report"),
            (now - 650, answered, "hourly ping"),
            (now - 10, "recent-run", "nightly report"),
        ]
    )
    redis_client().delete(redis_key(beat.MISSED_RUNS_KEY))

    flagged = flag_missed_runs(published, now=now, grace=600)

    assert flagged == [("nightly report", "lost-run")]
    assert list(published) == [(now - 10, "recent-run", "nightly report")]
    assert missed_runs()["nightly report"]["task_id"] == "lost-run"
    assert not check_missed_runs().ok
    assert TaskEvent.objects.filter(type="task.missed", task_id="lost-run").exists()
    redis_client().delete(redis_key(beat.MISSED_RUNS_KEY))
    assert check_missed_runs().ok
