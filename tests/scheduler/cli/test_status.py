"""`manage.py scheduler status|health`: workers, beat (leader, standbys, missed runs), periodic
tasks, the last hour's results and queue depths; every health check and the exit code.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from celery import states
from django.core.management import call_command
from django.core.management.base import CommandError
from kombu import Queue

from config.celery import app
from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.management.commands import scheduler as scheduler_command
from scheduler.observability.health import Check, HealthReport
from scheduler.observability.worker_heartbeats import forget_worker, record_worker_seen
from tests.scheduler.cli.helpers import NOW, create, scheduler, scheduler_json, stored_result

# --- status, health ------------------------------------------------------------------------------


@pytest.fixture
def broker_state():
    """A fake worker, a beat heartbeat and messages in a queue; all gone afterwards."""
    record_worker_seen("cli-test@host")
    heartbeat = redis_key("scheduler:beat:heartbeat")
    get_redis().set(heartbeat, json.dumps({"at": time.time() - 3, "pid": 4242, "hostname": "b1"}))
    try:
        yield
    finally:
        forget_worker("cli-test@host")
        get_redis().delete(heartbeat)
        with app.connection_for_write() as connection:
            Queue("recovery").bind(connection.default_channel).purge()


@pytest.mark.django_db
def test_it_reports_workers_beat_schedules_results_and_queue_depths(broker_state):
    # Real messages, published by kombu, so the key names are kombu's own (prefix, priorities).
    app.send_task("scheduler.ping", queue="recovery")
    app.send_task("scheduler.ping", queue="recovery", priority=5)
    create("on")
    create("off", "0 9 * * *", "--disabled")
    stored_result(status=states.SUCCESS, task_id="a")
    stored_result(status=states.FAILURE, task_id="b")
    stored_result(status=states.SUCCESS, task_id="c", done=NOW - timedelta(days=400))

    report = scheduler_json("status", "--json")
    output = scheduler("status")

    assert "cli-test@host" in report["workers"]
    assert report["beat"]["pid"] == 4242
    assert 2 <= report["beat"]["seconds_ago"] < 60
    assert report["periodic_tasks"] == {"enabled": 1, "disabled": 1}
    assert report["results_last_hour"] == {"FAILURE": 1, "SUCCESS": 1}
    assert report["queues"]["recovery"] == 2
    assert set(report["queues"]) >= {"default", "agents", "maintenance"}
    assert "Periodic tasks:  1 enabled, 1 disabled" in output
    assert "Last hour:       FAILURE 1, SUCCESS 1" in output
    assert "(pid 4242 on b1)" in output


@pytest.mark.django_db
def test_it_shows_the_beat_leader_its_standbys_and_missed_runs():
    leader = {"at": time.time(), "pid": 1, "hostname": "b1", "id": "b1:1:aa", "leader": "b1:1:aa"}
    standby = {"at": time.time(), "pid": 2, "hostname": "b2", "id": "b2:2:bb", "role": "standby"}
    missed = {"task_id": "t-1", "published_at": "2026-05-04T00:00:00+00:00", "flagged_at": 1}
    keys = {
        redis_key("scheduler:beat:heartbeat"): json.dumps(leader),
        redis_key("scheduler:beat:standby:b2:2:bb"): json.dumps(standby),
    }
    redis: Any = get_redis()
    # Only these: standbys other tests' beats left behind (they expire in a minute) go first.
    for key in redis.scan_iter(match=redis_key("scheduler:beat:standby:*")):
        redis.delete(key)
    redis.mset(keys)
    redis.hset(redis_key("scheduler:beat:missed"), "nightly", json.dumps(missed))
    try:
        report = scheduler_json("status", "--json")
        output = scheduler("status")
    finally:
        redis.delete(*keys, redis_key("scheduler:beat:missed"))

    assert report["beat"]["leader"] == "b1:1:aa"
    assert report["beat"]["standbys"] == ["b2:2:bb"]
    assert report["missed_runs"]["nightly"]["task_id"] == "t-1"
    assert "leader b1:1:aa" in output
    assert "Beat standbys:   1 (b2:2:bb)" in output
    assert "Missed run:      nightly: published 2026-05-04T00:00:00+00:00" in output


@pytest.mark.django_db
def test_it_says_when_beat_has_never_recorded_a_heartbeat():
    output = scheduler("status")

    assert "Beat:            no heartbeat recorded" in output


def report_of(**checks: bool) -> HealthReport:
    return HealthReport(
        checks={name: Check(ok=ok, detail=f"{name} detail") for name, ok in checks.items()}
    )


@pytest.mark.django_db
def test_it_prints_every_health_check_and_exits_0_when_healthy(monkeypatch):
    monkeypatch.setattr(
        scheduler_command, "full_health_report", lambda: report_of(database=True, beat=True)
    )

    output = scheduler("health")
    document = scheduler_json("health", "--json")

    assert output.splitlines() == [
        "database   ok    database detail",
        "beat       ok    beat detail",
    ]
    assert document["status"] == "ok"


@pytest.mark.django_db
def test_it_exits_1_when_unhealthy_naming_what_failed(monkeypatch):
    monkeypatch.setattr(
        scheduler_command,
        "full_health_report",
        lambda: report_of(database=True, workers=False, beat=False),
    )
    stdout = StringIO()

    with pytest.raises(CommandError) as error:
        call_command("scheduler", "health", stdout=stdout)

    assert str(error.value) == "unhealthy: workers, beat failed"
    assert error.value.returncode == 1
    assert "workers    FAIL  workers detail" in stdout.getvalue()


@pytest.mark.django_db
def test_it_checks_the_real_database_and_redis():
    stdout = StringIO()

    with pytest.raises(CommandError):  # no worker and no beat in this test
        call_command("scheduler", "health", stdout=stdout)

    lines = {line.split()[0]: line.split()[1] for line in stdout.getvalue().splitlines()}
    assert lines["database"] == "ok"
    assert lines["redis"] == "ok"
    assert lines["workers"] == "FAIL"
