"""`/metrics`: the Prometheus exposition of counters in Redis and states read at scrape time."""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_celery_results.models import TaskResult
from prometheus_client.parser import text_string_to_metric_families

from config.queues import QUEUES
from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.live.publisher import Publisher
from scheduler.models import QueuePause
from scheduler.observability import metrics as metrics_module
from scheduler.observability.health import BEAT_HEARTBEAT_KEY
from scheduler.observability.metrics import DURATIONS_KEY, EVENTS_KEY, TASKS_KEY, MetricsBuffer
from scheduler.protocol import EventPayload
from tests.factories import TaskResultFactory, UserFactory, event_payload_of

TOKEN = "s3cret-metrics-token"


def _redis() -> Any:
    # redis-py types every reply as maybe-awaitable; these calls are synchronous.
    return get_redis()


def _viewer(**fields):
    user = UserFactory.create(**fields)
    user.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    return user


def _families(response) -> dict:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def _samples(family, name: str | None = None) -> dict[tuple, float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for sample in family.samples
        if name is None or sample.name == name
    }


def _task_name() -> str:
    # The Redis hashes are shared by the whole test run: each test counts its own task.
    return f"tests.metrics_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def viewer_client(client):
    client.force_login(_viewer())
    return client


def _event(task_name: str, type_: str, state: str, duration: float | None = None) -> EventPayload:
    return event_payload_of(type=type_, task_name=task_name, state=state, duration=duration)


@pytest.mark.django_db
def test_it_exposes_task_counts_and_the_duration_histogram_by_task(viewer_client):
    name = _task_name()
    buffer = MetricsBuffer()
    buffer.add(
        [
            _event(name, "task.queued", "PENDING"),
            _event(name, "task.queued", "PENDING"),
            _event(name, "task.started", "STARTED"),
            _event(name, "task.succeeded", "SUCCESS", 0.003),
            _event(name, "task.failed", "FAILURE", 2.0),
        ],
        delivered=True,
    )
    buffer.flush()

    families = _families(viewer_client.get("/metrics"))

    tasks = _samples(families["scheduler_tasks"], "scheduler_tasks_total")
    assert tasks[(("state", "PENDING"), ("task_name", name))] == 2
    assert tasks[(("state", "STARTED"), ("task_name", name))] == 1
    assert tasks[(("state", "SUCCESS"), ("task_name", name))] == 1
    assert tasks[(("state", "FAILURE"), ("task_name", name))] == 1
    histogram = families["scheduler_task_duration_seconds"]
    buckets = _samples(histogram, "scheduler_task_duration_seconds_bucket")
    assert buckets[(("le", "0.005"), ("task_name", name))] == 1
    assert buckets[(("le", "1.0"), ("task_name", name))] == 1
    assert buckets[(("le", "2.5"), ("task_name", name))] == 2
    assert buckets[(("le", "+Inf"), ("task_name", name))] == 2
    assert _samples(histogram, "scheduler_task_duration_seconds_count")[(("task_name", name),)] == 2
    assert _samples(histogram, "scheduler_task_duration_seconds_sum")[
        (("task_name", name),)
    ] == pytest.approx(2.003)


@pytest.mark.django_db
def test_a_revoke_staff_asked_for_is_counted_once_by_the_workers_event(viewer_client):
    name = _task_name()
    buffer = MetricsBuffer()
    requested = event_payload_of(
        type="task.revoked",
        task_name=name,
        state="REVOKED",
        data={"requested_by": "ops", "source": "dashboard", "terminate": False},
    )
    buffer.add([requested, _event(name, "task.revoked", "REVOKED")], delivered=True)
    buffer.flush()

    tasks = _samples(
        _families(viewer_client.get("/metrics"))["scheduler_tasks"], "scheduler_tasks_total"
    )
    assert tasks[(("state", "REVOKED"), ("task_name", name))] == 1


@pytest.mark.django_db
def test_it_counts_events_published_and_failed_by_type(viewer_client):
    before = _families(viewer_client.get("/metrics"))
    published_before = _samples(before["scheduler_events_published"]).get((("type", "x.a"),), 0)
    buffer = MetricsBuffer()
    buffer.add([event_payload_of(type="x.a"), event_payload_of(type="x.a")], delivered=True)
    buffer.add([event_payload_of(type="x.a")], delivered=False)
    buffer.flush()

    families = _families(viewer_client.get("/metrics"))

    published = _samples(families["scheduler_events_published"])
    assert published[(("type", "x.a"),)] == published_before + 2
    assert _samples(families["scheduler_events_failed"])[(("type", "x.a"),)] >= 1


@pytest.mark.django_db(transaction=True)
def test_it_counts_what_the_publisher_thread_delivers():
    name = _task_name()
    events = Publisher()
    try:
        events.publish(_event(name, "task.succeeded", "SUCCESS", 0.2))
        events.publish(_event(name, "task.succeeded", "SUCCESS", 0.3))
        assert events.flush(timeout=5)
    finally:
        events.stop()

    counts = _redis().hgetall(redis_key(TASKS_KEY))
    assert counts[f"SUCCESS\t{name}".encode()] == b"2"
    durations = _redis().hgetall(redis_key(DURATIONS_KEY))
    assert float(durations[f"sum\t{name}".encode()]) == pytest.approx(0.5)
    assert _redis().hget(redis_key(EVENTS_KEY), "published\ttask.succeeded")


def test_a_buffer_writes_nothing_until_it_is_due_and_keeps_counts_it_could_not_write(
    monkeypatch,
):
    buffer = MetricsBuffer(interval=60)
    assert buffer.wait() is None
    buffer.add([event_payload_of(type="x.kept")], delivered=True)
    assert 0 < buffer.wait() <= 60  # type: ignore[operator]
    assert not buffer.due()

    def unreachable():
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(metrics_module, "get_redis", unreachable)
    buffer.flush()
    monkeypatch.undo()
    assert buffer.wait() is not None  # kept for the next try
    before = int(_redis().hget(redis_key(EVENTS_KEY), "published\tx.kept") or 0)
    buffer.flush()

    assert int(_redis().hget(redis_key(EVENTS_KEY), "published\tx.kept")) == before + 1
    assert buffer.wait() is None


@pytest.mark.django_db
def test_it_exposes_the_rows_and_oldest_row_of_each_history_table(viewer_client):
    oldest = TaskResultFactory.create(task_name=_task_name())
    TaskResultFactory.create_batch(2, task_name=_task_name())
    TaskResult.objects.filter(pk=oldest.pk).update(date_done=datetime(2026, 1, 2, tzinfo=UTC))

    families = _families(viewer_client.get("/metrics"))

    rows = _samples(families["scheduler_history_rows"])
    assert rows[(("table", "task results"),)] == 3
    ages = _samples(families["scheduler_history_oldest_timestamp_seconds"])
    assert ages[(("table", "task results"),)] == datetime(2026, 1, 2, tzinfo=UTC).timestamp()


@pytest.mark.django_db
def test_it_never_counts_or_groups_the_history_per_scrape(viewer_client):
    TaskResultFactory.create_batch(3)

    with CaptureQueriesContext(connection) as captured:
        viewer_client.get("/metrics")

    reads = [q["sql"] for q in captured.captured_queries if "taskresult" in q["sql"]]
    assert not [sql for sql in reads if "GROUP BY" in sql.upper()]


@pytest.mark.django_db
def test_it_exposes_queue_depths_beat_heartbeat_age_and_workers(viewer_client, settings):
    client = _redis()
    queue_key = f"{settings.REDIS_KEY_PREFIX}maintenance"
    client.delete(queue_key)
    client.rpush(queue_key, "m1", "m2", "m3")
    client.set(
        redis_key(BEAT_HEARTBEAT_KEY),
        json.dumps({"at": time.time() - 30, "pid": 1, "hostname": "beat"}),
    )
    try:
        families = _families(viewer_client.get("/metrics"))
    finally:
        client.delete(queue_key, redis_key(BEAT_HEARTBEAT_KEY))

    depths = _samples(families["scheduler_queue_depth"])
    assert depths[(("queue", "maintenance"),)] == 3
    assert (("queue", "default"),) in depths
    age = families["scheduler_beat_heartbeat_age_seconds"].samples[0].value
    assert 29 <= age < 60
    assert families["scheduler_workers_online"].samples[0].value >= 0
    assert _samples(families["scheduler_metrics_source_up"]) == {
        (("source", "database"),): 1,
        (("source", "redis"),): 1,
    }


@pytest.mark.django_db
def test_beat_that_never_beat_is_infinitely_old(viewer_client):
    _redis().delete(redis_key(BEAT_HEARTBEAT_KEY))

    families = _families(viewer_client.get("/metrics"))

    assert math.isinf(families["scheduler_beat_heartbeat_age_seconds"].samples[0].value)


@pytest.mark.django_db
def test_a_source_that_cannot_be_read_is_reported_not_a_server_error(viewer_client, monkeypatch):
    def unreachable(name):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(metrics_module, "_hash", unreachable)
    TaskResultFactory.create(task_name="tests.still_counted")

    families = _families(viewer_client.get("/metrics"))

    assert _samples(families["scheduler_metrics_source_up"]) == {
        (("source", "database"),): 1,
        (("source", "redis"),): 0,
    }
    assert "scheduler_tasks" not in families
    assert "scheduler_history_rows" in families


# --- who may read them --------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_refuses_anonymous_scrapers_with_401(client):
    response = client.get("/metrics")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"scheduler_" not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"is_staff": False}, id="not staff"),
        pytest.param({"is_staff": True}, id="staff without the permission"),
    ],
)
def test_it_refuses_users_who_may_not_watch_the_dashboard_with_403(client, fields):
    client.force_login(UserFactory.create(**fields))

    response = client.get("/metrics")

    assert response.status_code == 403
    assert b"scheduler_" not in response.content


@pytest.mark.django_db
def test_it_refuses_non_staff_even_with_the_permission(client):
    client.force_login(_viewer(is_staff=False))

    assert client.get("/metrics").status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize(
    "make_user",
    [
        pytest.param(lambda: _viewer(), id="staff with view_dashboard"),
        pytest.param(
            lambda: UserFactory.create(is_superuser=True, username="root-metrics"),
            id="superuser",
        ),
    ],
)
def test_it_answers_staff_who_may_watch_the_dashboard(client, make_user):
    client.force_login(make_user())

    assert "scheduler_metrics_source_up" in _families(client.get("/metrics"))


@pytest.mark.django_db
def test_it_answers_a_scraper_with_the_bearer_token(client, settings):
    settings.METRICS_TOKEN = TOKEN

    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert "scheduler_queue_depth" in _families(response)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("configured", "sent"),
    [
        pytest.param(TOKEN, "Bearer wrong", id="wrong token"),
        pytest.param(TOKEN, f"Bearer {TOKEN}x", id="longer token"),
        pytest.param(TOKEN, "Bearer ", id="empty token"),
        pytest.param("", "Bearer ", id="token access off, empty token"),
        pytest.param("", f"Bearer {TOKEN}", id="token access off"),
    ],
)
def test_it_refuses_a_wrong_token_even_from_a_staff_session(client, settings, configured, sent):
    settings.METRICS_TOKEN = configured
    client.force_login(_viewer())

    response = client.get("/metrics", HTTP_AUTHORIZATION=sent)

    assert response.status_code == 401
    assert b"scheduler_" not in response.content


@pytest.mark.django_db
def test_it_only_answers_reads(viewer_client):
    assert viewer_client.post("/metrics").status_code == 405
    assert viewer_client.head("/metrics").status_code == 200


@pytest.mark.django_db
def test_the_readme_lists_every_metric_with_the_labels_it_has():
    from pathlib import Path

    from scheduler.observability.metrics import SchedulerCollector
    from scheduler.services import retention_overview

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme.split("\n## Metrics\n")[1].split("\n## ")[0]
    listed = {
        name: tuple(sorted(labels.split(","))) if labels else ()
        for name, labels in re.findall(r"`(scheduler_\w+)(?:\{([\w,]*)\})?`", section)
    }
    exposed = {
        # A counter is exposed with `_total`, as the README names it.
        family.name + ("_total" if family.type == "counter" else ""): tuple(
            sorted(getattr(family, "_labelnames", ()))
        )
        for family in SchedulerCollector(retention_overview).collect()
    }

    assert listed == exposed


@pytest.mark.django_db
def test_it_says_which_queues_are_paused(viewer_client):
    QueuePause.objects.create(queue="webhooks", note="partner down")

    paused = _samples(_families(viewer_client.get("/metrics"))["scheduler_queue_paused"])

    assert paused[(("queue", "webhooks"),)] == 1
    assert paused[(("queue", "default"),)] == 0
    assert len(paused) == len(QUEUES)
