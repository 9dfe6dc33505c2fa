"""Our beat scheduler (scheduler/beat/scheduler.py): the heap, change pickup, leadership, runs
published then recorded under ids any leader gives them, one-off tasks, the misfire policy,
heartbeat and watchdog.

Publishing is captured at `DatabaseScheduler._send` here; test_beat_integration.py next to this
file runs real beat processes against the real broker.
"""

from __future__ import annotations

import json
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import time_machine
from django.db import OperationalError, transaction
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    PeriodicTasks,
)

from config.celery import app
from scheduler.beat import scheduler as beat
from scheduler.beat.changes import CHANGES_CHANNEL, Changes, notify_beat
from scheduler.beat.scheduler import (
    FINISH,
    RUN,
    SKIP,
    WAIT,
    DatabaseScheduler,
    Entry,
    Leadership,
    evaluate,
    flag_missed_runs,
    is_misfire,
)
from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.models import TaskEvent
from scheduler.observability.health import (
    beat_heartbeat,
    check_beat,
    check_missed_runs,
    missed_runs,
)
from tests.factories import TaskResultFactory, make_schedule

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 5, 4, 12, 0, 30, tzinfo=UTC)


def _redis() -> Any:
    return get_redis()


def _next_message(subscription: Any, timeout: float) -> Any:
    # get_message answers None at once when what it read was the (ignored) subscribe reply.
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        message = subscription.get_message(timeout=remaining)
        if message is not None:
            return message
    return None


def _later(seconds: float) -> Any:
    """The clock moved on by `seconds` (schedules read the clock themselves)."""
    return time_machine.travel(datetime.now(UTC) + timedelta(seconds=seconds), tick=True)


def _forget_beats() -> None:
    redis = _redis()
    keys = [redis_key(beat.LEADER_KEY), redis_key(beat.BEAT_HEARTBEAT_KEY)]
    keys += redis.scan_iter(match=f"{redis_key(beat.BEAT_STANDBY_KEY)}:*")
    redis.delete(*keys)


@pytest.fixture(autouse=True)
def _no_leader():
    _forget_beats()
    yield
    _forget_beats()


class Recording(DatabaseScheduler):
    """Our scheduler with publishing captured: (periodic task name, task, args, kwargs)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent: list[tuple[str, str, Any, Any]] = []
        super().__init__(*args, **kwargs)

    def _send(self, entry: Entry, producer: Any) -> str | None:
        self.sent.append((entry.name, entry.task, json.loads(entry.args), json.loads(entry.kwargs)))
        return f"task-{len(self.sent)}"


def _scheduler() -> Recording:
    return Recording(app=app, lazy=True)


def _names(scheduler: Recording) -> list[str]:
    return [name for name, *_ in scheduler.sent]


def _last_run(name: str, last_run_at: datetime | None) -> None:
    PeriodicTask.objects.filter(name=name).update(last_run_at=last_run_at)


# --- evaluate: the decisions of django-celery-beat's ModelEntry.is_due -------------------------


def _entry(**overrides: Any) -> Entry:
    fields: dict[str, Any] = {
        "id": 1,
        "name": "e",
        "task": "scheduler.ping",
        "args": "[]",
        "kwargs": "{}",
        "options": {},
        "kind": "interval",
        "schedule_id": 1,
        "schedule": IntervalSchedule(every=5, period="minutes").schedule,
        "last_run_at": NOW - timedelta(minutes=1),
        "total_run_count": 0,
        "one_off": False,
        "start_time": None,
        "expires": None,
        "misfire": "run_once",
        "row": (),
    }
    fields.update(overrides)
    return Entry(**fields)


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    ("overrides", "action"),
    [
        ({}, WAIT),
        ({"last_run_at": NOW - timedelta(minutes=5, seconds=1)}, RUN),
        ({"start_time": NOW + timedelta(hours=1), "last_run_at": NOW - timedelta(days=1)}, WAIT),
        ({"expires": NOW - timedelta(seconds=1)}, FINISH),
        ({"one_off": True, "total_run_count": 1}, FINISH),
        ({"last_run_at": NOW - timedelta(hours=2), "misfire": "skip"}, SKIP),
        ({"last_run_at": NOW - timedelta(hours=2), "misfire": "run_once"}, RUN),
        ({"last_run_at": NOW - timedelta(minutes=5, seconds=30), "misfire": "skip"}, RUN),
    ],
)
def test_it_decides_as_django_celery_beat_does(overrides, action):
    assert evaluate(_entry(**overrides), NOW, UTC).action == action


@time_machine.travel(NOW, tick=False)
def test_it_waits_as_long_as_the_schedule_says():
    decision = evaluate(_entry(last_run_at=NOW - timedelta(minutes=1)), NOW, UTC)

    assert decision.action == WAIT
    assert 239 <= decision.next_check <= 240


@time_machine.travel(NOW, tick=False)
def test_a_late_one_off_runs_even_under_the_skip_policy():
    schedule = ClockedSchedule(clocked_time=NOW - timedelta(hours=3)).schedule
    entry = _entry(kind="clocked", schedule=schedule, one_off=True, misfire="skip")

    assert evaluate(entry, NOW, UTC).action == RUN


@pytest.mark.parametrize(
    ("remaining", "misfire"),
    [
        (timedelta(seconds=10), False),
        (timedelta(seconds=-5), False),
        (timedelta(seconds=-60), False),
        (timedelta(seconds=-61), True),
        (timedelta(hours=-3), True),
    ],
)
def test_it_calls_a_run_late_by_more_than_the_grace_a_misfire(remaining, misfire):
    assert is_misfire(remaining=remaining) is misfire


# --- Ticks -----------------------------------------------------------------------------------


def test_a_tick_publishes_what_is_due_and_records_the_run():
    make_schedule(name="due", schedule="every 5 minutes", params={})
    make_schedule(name="not due", schedule="every 5 minutes")
    _last_run("due", datetime.now(UTC) - timedelta(minutes=6))
    _last_run("not due", datetime.now(UTC) - timedelta(minutes=1))
    scheduler = _scheduler()

    scheduler.tick_once()

    assert _names(scheduler) == ["due"]
    row = PeriodicTask.objects.get(name="due")
    assert row.total_run_count == 1
    assert row.last_run_at is not None
    assert datetime.now(UTC) - row.last_run_at < timedelta(seconds=5)
    assert PeriodicTask.objects.get(name="not due").total_run_count == 0


def test_a_run_not_recorded_is_published_again_under_the_same_task_id(monkeypatch):
    make_schedule(name="due", schedule="every 5 minutes")
    _last_run("due", datetime.now(UTC) - timedelta(minutes=6))
    dying = _scheduler()
    dying._load_all()
    [entry] = dying.entries.values()
    first_id = beat.run_task_id(entry)

    # The leader publishes the run, then dies before recording it (here: the record fails).
    def die(*args: Any, **kwargs: Any) -> None:
        raise SystemExit("killed between publishing and recording")

    monkeypatch.setattr(dying, "_record_runs", die)
    with pytest.raises(SystemExit):
        dying.tick_once()
    assert _names(dying) == ["due"]
    assert PeriodicTask.objects.get(name="due").total_run_count == 0
    _forget_beats()  # its lock expires

    successor = _scheduler()
    successor._load_all()
    [again] = successor.entries.values()
    assert beat.run_task_id(again) == first_id  # the workers drop the second copy
    successor.tick_once()
    assert _names(successor) == ["due"]
    row = PeriodicTask.objects.get(name="due")
    assert row.total_run_count == 1
    # The next run has an id of its own.
    [recorded] = successor.entries.values()
    assert beat.run_task_id(recorded) != first_id


def test_a_run_the_broker_did_not_take_is_not_recorded_and_goes_out_a_second_later(monkeypatch):
    make_schedule(name="due", schedule="every 5 minutes")
    _last_run("due", datetime.now(UTC) - timedelta(minutes=6))
    scheduler = _scheduler()
    real_send = scheduler._send
    ids: list[str] = []

    def broker_down(entry: Entry, producer: Any) -> str | None:
        ids.append(beat.run_task_id(entry))
        raise beat.NotPublished("Redis is restarting")

    monkeypatch.setattr(scheduler, "_send", broker_down)
    scheduler.tick_once()
    assert PeriodicTask.objects.get(name="due").total_run_count == 0

    [entry] = scheduler.entries.values()
    assert ids == [beat.run_task_id(entry)]  # tried again under this id, until it goes out

    monkeypatch.setattr(scheduler, "_send", real_send)
    with _later(beat.PUBLISH_RETRY_AFTER + 0.5):
        scheduler.tick_once()

    assert _names(scheduler) == ["due"]
    assert PeriodicTask.objects.get(name="due").total_run_count == 1


def test_a_row_naming_a_task_outside_the_catalog_is_not_published():
    row = make_schedule(name="by hand", schedule="every 5 minutes")
    PeriodicTask.objects.filter(pk=row.pk).update(task="celery.backend_cleanup")
    _last_run("by hand", datetime.now(UTC) - timedelta(minutes=6))
    scheduler = DatabaseScheduler(app=app, lazy=True)

    scheduler.tick_once()

    assert scheduler.stats.published == 0
    event = TaskEvent.objects.get(periodic_task_name="by hand", type="task.failed")
    assert "not in the catalog" in event.message


def test_a_tick_looks_only_at_the_entries_that_are_due():
    for n in range(50):
        make_schedule(name=f"quiet {n}", schedule="every 1 hour")
    make_schedule(name="due", schedule="every 5 minutes")
    _last_run("due", datetime.now(UTC) - timedelta(minutes=6))
    PeriodicTask.objects.exclude(name="due").update(last_run_at=datetime.now(UTC))
    scheduler = _scheduler()
    scheduler.tick_once()  # the load looks at every entry once
    assert _names(scheduler) == ["due"]
    looked_at: list[str] = []
    real = beat.evaluate

    def counting(entry: Entry, now: datetime, tz: Any) -> Any:
        looked_at.append(entry.name)
        return real(entry, now, tz)

    beat.evaluate = counting
    try:
        with _later(301):  # "due" is due again; nothing else
            scheduler.tick_once()
    finally:
        beat.evaluate = real

    assert set(looked_at) == {"due"}  # when due, and after its run for the next
    assert _names(scheduler) == ["due", "due"]


def test_a_burst_goes_out_in_one_tick_with_one_update_per_batch(django_assert_max_num_queries):
    for n in range(30):
        make_schedule(name=f"hourly {n}", schedule="every 1 hour")
    PeriodicTask.objects.update(last_run_at=datetime.now(UTC) - timedelta(hours=2))
    scheduler = _scheduler()
    scheduler.tick_once()  # loads and publishes all 30
    assert len(scheduler.sent) == 30
    PeriodicTask.objects.update(last_run_at=datetime.now(UTC) - timedelta(hours=2))
    scheduler._forget_everything()

    with django_assert_max_num_queries(12):  # marker, rows, schedules, one UPDATE: not 30 saves
        scheduler.tick_once()

    assert len(scheduler.sent) == 60
    assert set(PeriodicTask.objects.values_list("total_run_count", flat=True)) == {2}


def test_a_disabled_task_never_fires():
    make_schedule(name="paused", schedule="every 5 minutes", enabled=False)
    _last_run("paused", datetime.now(UTC) - timedelta(hours=1))
    scheduler = _scheduler()

    scheduler.tick_once()

    assert scheduler.sent == []
    assert "paused" not in {entry.name for entry in scheduler.entries.values()}


def test_an_expired_task_is_disabled_and_never_fires():
    task = make_schedule(name="expired", schedule="every 5 minutes")
    PeriodicTask.objects.filter(pk=task.pk).update(
        expires=datetime.now(UTC) - timedelta(seconds=1),
        last_run_at=datetime.now(UTC) - timedelta(hours=1),
    )
    scheduler = _scheduler()

    scheduler.tick_once()

    assert scheduler.sent == []
    assert not PeriodicTask.objects.get(pk=task.pk).enabled


def test_it_waits_for_the_start_time():
    task = make_schedule(name="later", schedule="every 5 minutes")
    PeriodicTask.objects.filter(pk=task.pk).update(
        start_time=datetime.now(UTC) + timedelta(hours=1), last_run_at=None
    )
    scheduler = _scheduler()

    scheduler.tick_once()
    assert scheduler.sent == []
    with _later(3601):
        scheduler.tick_once()

    assert _names(scheduler) == ["later"]


def test_a_one_off_runs_once_and_a_restarted_beat_does_not_run_it_again():
    make_schedule(name="once", schedule="in 1 minute")
    first = _scheduler()
    first.tick_once()
    assert first.sent == []

    with _later(61):
        first.tick_once()
        first.tick_once()
        first.leadership.release()
        restarted = _scheduler()
        restarted.tick_once()

    assert _names(first) == ["once"]
    assert restarted.sent == []
    row = PeriodicTask.objects.get(name="once")
    assert row.enabled is False
    assert row.total_run_count == 1


def test_it_skips_runs_missed_during_downtime_when_the_policy_says_skip():
    make_schedule(name="skipper", schedule="every 5 minutes", misfire="skip")
    _last_run("skipper", datetime.now(UTC) - timedelta(hours=2))
    scheduler = _scheduler()

    scheduler.tick_once()

    assert scheduler.sent == []
    skipped_at = PeriodicTask.objects.get(name="skipper").last_run_at
    assert skipped_at is not None
    assert datetime.now(UTC) - skipped_at < timedelta(seconds=5)
    assert TaskEvent.objects.filter(type="task.skipped", periodic_task_name="skipper").exists()
    with _later(301):
        scheduler.tick_once()
    assert _names(scheduler) == ["skipper"]


def test_it_runs_once_after_downtime_when_the_policy_says_run_once():
    make_schedule(name="catcher", schedule="every 5 minutes", misfire="run_once")
    _last_run("catcher", datetime.now(UTC) - timedelta(hours=2))
    scheduler = _scheduler()

    scheduler.tick_once()
    scheduler.tick_once()

    assert _names(scheduler) == ["catcher"]
    assert not TaskEvent.objects.filter(type="task.skipped").exists()


def test_it_publishes_the_task_arguments_and_headers():
    task = make_schedule(name="with params", task="scheduler.sleep", params={"seconds": 0.5})
    _last_run("with params", datetime.now(UTC) - timedelta(hours=1))
    scheduler = _scheduler()

    scheduler.tick_once()

    assert scheduler.sent == [("with params", "scheduler.sleep", [], {"seconds": 0.5})]
    entry = scheduler.entries[task.pk]
    assert entry.options["headers"]["periodic_task_name"] == "with params"


# --- Changes ---------------------------------------------------------------------------------


def _loaded(*names: str) -> Recording:
    scheduler = _scheduler()
    scheduler.tick_once()
    assert {entry.name for entry in scheduler.entries.values()} >= set(names)
    return scheduler


def test_a_notice_reloads_only_the_rows_it_names():
    tasks = [make_schedule(name=f"row {n}", schedule="every 1 hour") for n in range(20)]
    scheduler = _loaded("row 0")
    PeriodicTask.objects.filter(pk=tasks[3].pk).update(task="scheduler.health_check")

    scheduler.stats.reloaded = 0
    scheduler.apply_changes(Changes(tasks={tasks[3].pk}))

    assert scheduler.stats.reloaded == 1
    assert scheduler.entries[tasks[3].pk].task == "scheduler.health_check"


def test_a_notice_of_a_deleted_or_disabled_row_removes_its_entry():
    gone, paused, kept = (make_schedule(name=n, schedule="every 1 hour") for n in "abc")
    scheduler = _loaded("a", "b", "c")
    PeriodicTask.objects.filter(pk=paused.pk).update(enabled=False)
    PeriodicTask.objects.filter(pk=gone.pk).delete()

    scheduler.apply_changes(Changes(tasks={paused.pk}, deleted={gone.pk}))

    assert set(scheduler.entries) == {kept.pk}


def test_a_notice_of_a_schedule_row_reloads_the_tasks_on_it():
    task = make_schedule(name="hourly cron", schedule="0 * * * *")
    scheduler = _loaded("hourly cron")
    crontab = CrontabSchedule.objects.get(pk=cast(int, task.crontab_id))
    CrontabSchedule.objects.filter(pk=crontab.pk).update(minute="30")

    scheduler.apply_changes(Changes(schedules={"crontab": {crontab.pk}}))

    assert scheduler.entries[task.pk].schedule.minute == {30}


def test_a_change_that_sent_no_notice_is_found_by_the_marker():
    tasks = [make_schedule(name=f"bulk {n}", schedule="every 1 hour") for n in range(5)]
    scheduler = _loaded("bulk 0")
    # What django-celery-beat asks of bulk changes: update, then move the marker.
    PeriodicTask.objects.filter(pk__in=[t.pk for t in tasks[:2]]).update(enabled=False)
    PeriodicTasks.update_changed()

    with _later(beat.SYNC_INTERVAL + 0.1):
        scheduler.tick_once()

    assert scheduler.stats.full_reloads == 1
    assert set(scheduler.entries) == {t.pk for t in tasks[2:]}


def test_a_comparison_of_every_row_goes_on_over_ticks_and_due_runs_go_out_between(monkeypatch):
    tasks = [make_schedule(name="fast", schedule="every 1 second")]
    tasks += [make_schedule(name=f"many {n}", schedule="every 1 hour") for n in range(6)]
    PeriodicTask.objects.update(last_run_at=datetime.now(UTC))
    scheduler = _loaded("fast")
    monkeypatch.setattr(beat, "_CHUNK", 2)
    monkeypatch.setattr(beat, "COMPARE_BUDGET", 0.0)  # one chunk per tick
    PeriodicTask.objects.filter(pk=tasks[6].pk).update(enabled=False)
    PeriodicTasks.update_changed()

    waits = []
    with _later(beat.SYNC_INTERVAL + 0.1):
        for _ in range(4):
            waits.append(scheduler.tick_once())
            if scheduler.stats.full_reloads:
                break

    assert waits[:-1] == [0.0] * (len(waits) - 1)  # each unfinished comparison ticks again at once
    assert len(waits) == 4  # 7 rows, 2 a tick
    assert scheduler.stats.full_reloads == 1
    assert tasks[6].pk not in scheduler.entries
    assert _names(scheduler) == ["fast"]  # due by the clock, published meanwhile


def test_an_unchanged_marker_costs_one_query(django_assert_num_queries):
    make_schedule(name="steady", schedule="every 1 hour")
    scheduler = _loaded("steady")

    with _later(beat.SYNC_INTERVAL + 0.1), django_assert_num_queries(1):
        scheduler.tick_once()


def test_a_reload_keeps_a_later_last_run_than_a_stale_save_wrote():
    task = make_schedule(name="stale", schedule="every 5 minutes")
    _last_run("stale", datetime.now(UTC) - timedelta(minutes=6))
    scheduler = _scheduler()
    scheduler.tick_once()
    assert _names(scheduler) == ["stale"]
    # The admin's form, read before that run, saved the old last_run_at back.
    _last_run("stale", datetime.now(UTC) - timedelta(minutes=6))

    scheduler.apply_changes(Changes(tasks={task.pk}))
    scheduler.tick_once()

    assert _names(scheduler) == ["stale"]


@pytest.mark.django_db(transaction=True)
def test_saves_send_one_notice_per_transaction_after_commit():
    subscription = _redis().pubsub(ignore_subscribe_messages=True)
    subscription.subscribe(redis_key(CHANGES_CHANNEL))
    try:
        with transaction.atomic():
            first = make_schedule(name="noticed 1")
            second = make_schedule(name="noticed 2")
            assert _next_message(subscription, 0.2) is None  # not before the commit
        message = _next_message(subscription, 2)
        assert message is not None
        notice = Changes()
        notice.add_message(message["data"])
        assert {first.pk, second.pk} <= notice.tasks
        assert _next_message(subscription, 0.3) is None

        with pytest.raises(RuntimeError):
            _create_then_fail("rolled back")
        assert _next_message(subscription, 0.3) is None

        PeriodicTask.objects.filter(pk=first.pk).delete()
        message = _next_message(subscription, 2)
        assert message is not None
        notice = Changes()
        notice.add_message(message["data"])
        assert first.pk in notice.deleted
    finally:
        subscription.close()


@transaction.atomic
def _create_then_fail(name: str) -> None:
    make_schedule(name=name)
    raise RuntimeError("rolled back")


def test_a_notice_that_is_not_one_is_ignored():
    changes = Changes()
    for data in (b"not json", b"[1, 2]", b'{"tasks": ["x"]}', None):
        changes.add_message(data)

    assert not changes


@pytest.mark.django_db(transaction=True)
def test_bulk_enable_through_the_service_sends_a_notice():
    from scheduler.services import schedule_set_enabled_bulk

    task = make_schedule(name="bulk paused", enabled=False)
    subscription = _redis().pubsub(ignore_subscribe_messages=True)
    subscription.subscribe(redis_key(CHANGES_CHANNEL))
    try:
        schedule_set_enabled_bulk(names=["bulk paused"], enabled=True)
        message = _next_message(subscription, 2)
    finally:
        subscription.close()

    assert message is not None
    assert task.pk in json.loads(message["data"])["tasks"]


def test_notify_beat_outside_a_transaction_sends_at_once():
    # pytest-django wraps this test in a transaction that never commits: nothing is sent.
    notify_beat(tasks=[1])
    assert transaction.get_connection().run_on_commit


def test_a_database_outage_does_not_stop_beat(monkeypatch):
    make_schedule(name="steady", schedule="every 1 hour")
    scheduler = _loaded("steady")

    def unreachable(cls: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(PeriodicTasks, "last_change", classmethod(unreachable))
    with _later(beat.SYNC_INTERVAL + 0.1):
        assert scheduler.tick_once() == beat.SYNC_INTERVAL
    assert scheduler.entries == {}  # starts again from the rows once the database answers
    monkeypatch.undo()
    with _later(beat.SYNC_INTERVAL * 2 + 0.2):
        scheduler.tick_once()

    assert {entry.name for entry in scheduler.entries.values()} == {"steady"}


# --- Leadership ------------------------------------------------------------------------------


def test_one_beat_of_two_leads_and_the_other_takes_over_when_the_lock_goes():
    make_schedule(name="led", schedule="every 5 minutes")
    _last_run("led", datetime.now(UTC) - timedelta(minutes=6))
    leader, standby = _scheduler(), _scheduler()

    leader.tick_once()
    standby.tick_once()
    assert leader.stats.leader
    assert not standby.stats.leader
    assert _names(leader) == ["led"]
    assert standby.entries == {}  # a standby holds nothing

    _redis().delete(redis_key(beat.LEADER_KEY))  # the leader died: its lock expired
    with _later(301):
        standby.tick_once()
        leader.tick_once()

    assert standby.stats.leader
    assert not leader.stats.leader
    assert _names(standby) == ["led"]
    assert _names(leader) == ["led"]  # nothing more once it lost the lock
    assert PeriodicTask.objects.get(name="led").total_run_count == 2


def test_a_leader_that_lost_the_lock_does_not_publish():
    make_schedule(name="fenced", schedule="every 5 minutes")
    scheduler = _scheduler()
    scheduler.tick_once()
    _last_run("fenced", datetime.now(UTC) - timedelta(minutes=6))
    _redis().set(redis_key(beat.LEADER_KEY), "someone else")

    with _later(301):
        scheduler.tick_once()

    assert scheduler.sent == []
    assert PeriodicTask.objects.get(name="fenced").total_run_count == 0


def test_the_lock_is_renewed_and_fenced_atomically():
    lock = Leadership("me", ttl=5)
    assert lock.hold()
    ttl = _redis().pttl(redis_key(beat.LEADER_KEY))
    assert 4000 < ttl <= 5000
    assert lock.confirm()

    _redis().set(redis_key(beat.LEADER_KEY), "you")
    assert not lock.confirm()
    assert not lock.hold()
    assert _redis().get(redis_key(beat.LEADER_KEY)) == b"you"
    lock.release()
    assert _redis().get(redis_key(beat.LEADER_KEY)) == b"you"


# --- Heartbeat and watchdog ------------------------------------------------------------------


def test_the_leader_and_the_standby_record_heartbeats():
    leader, standby = _scheduler(), _scheduler()
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
    _redis().delete(redis_key(beat.MISSED_RUNS_KEY))

    flagged = flag_missed_runs(published, now=now, grace=600)

    assert flagged == [("nightly report", "lost-run")]
    assert list(published) == [(now - 10, "recent-run", "nightly report")]
    assert missed_runs()["nightly report"]["task_id"] == "lost-run"
    assert not check_missed_runs().ok
    assert TaskEvent.objects.filter(type="task.missed", task_id="lost-run").exists()
    _redis().delete(redis_key(beat.MISSED_RUNS_KEY))
    assert check_missed_runs().ok
