from __future__ import annotations

import time

import pytest
from django.test import Client

from scheduler.observability.health import check_redis, check_workers
from scheduler.observability.worker_heartbeats import (
    forget_worker,
    record_worker_seen,
    workers_seen_within,
)


@pytest.fixture
def isolated_prefix(settings):
    """A key prefix of its own, so workers recorded by other tests are not seen here."""
    settings.REDIS_KEY_PREFIX = f"{settings.REDIS_KEY_PREFIX}health-{time.time_ns()}:"
    return settings.REDIS_KEY_PREFIX


@pytest.mark.django_db
def test_it_reports_healthy_when_a_worker_was_heard_recently(isolated_prefix):
    record_worker_seen("w1@host")

    response = Client().get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True
    assert body["checks"]["workers"]["data"]["workers"] == ["w1@host"]
    # Beat is shown but not judged: no beat here, and still 200.
    assert body["beat"]["ok"] is False
    assert "never recorded a heartbeat" in body["beat"]["detail"]


def test_it_forgets_workers_heard_too_long_ago(isolated_prefix):
    record_worker_seen("old@host", at=time.time() - 120)
    record_worker_seen("new@host")

    assert set(workers_seen_within(60)) == {"new@host"}
    forget_worker("new@host")
    assert workers_seen_within(60) == {}


def test_it_calls_the_workers_down_when_none_answered(isolated_prefix, settings):
    record_worker_seen("gone@host", at=time.time() - 600)

    check = check_workers(window=30)

    assert check.ok is False
    assert check.detail == "no worker answered in the last 30 s"


@pytest.mark.django_db
def test_it_answers_503_with_the_reason_when_redis_is_unreachable(settings):
    from scheduler.core.redis_connection import get_redis

    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    get_redis.cache_clear()
    try:
        response = Client().get("/healthz")
        assert check_redis().ok is False
    finally:
        get_redis.cache_clear()

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["redis"]["ok"] is False
    assert "127.0.0.1:1" in body["checks"]["redis"]["detail"]
    assert body["checks"]["workers"]["ok"] is False


@pytest.mark.django_db
def test_the_api_health_endpoint_matches_healthz(isolated_prefix):
    record_worker_seen("w1@host")

    response = Client().get("/api/health/")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
