from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from rest_framework.test import APIClient

from config.settings import test as test_settings
from scheduler.core.redis_connection import get_redis
from scheduler.services.retention import CLEANUP_SCHEDULE_NAME
from tests.alert_receivers import MailReceiver, self_signed_certificate, server_tls
from tests.browser import CHROMIUM, CHROMIUM_ARGS, LiveServer, require_chromium
from tests.clients import api_client, client_for
from tests.factories import user_with
from tests.processes import RedisServer, RunningProcess, start_beat, start_worker
from tests.receivers import Receiver

# Helper modules whose own assertions pytest rewrites as it does test modules', so that one that
# fails says what it compared (they moved out of the test modules that share them).
pytest.register_assert_rewrite("tests.agents.helpers", "tests.scheduler.admin.helpers")


def pytest_unconfigure(config: pytest.Config) -> None:
    owner = os.environ.get("TEST_RUN_DIR_OWNER")
    if owner == str(os.getpid()):
        shutil.rmtree(os.environ["TEST_RUN_DIR"], ignore_errors=True)


@pytest.fixture(scope="session")
def run_dir() -> Path:
    return test_settings.TEST_RUN_DIR


# The embedded Redis of this run, when it has one (see `redis_server`): the fault suite
# restarts it.
EMBEDDED_REDIS: RedisServer | None = None


@pytest.fixture(scope="session", autouse=True)
def redis_server(run_dir: Path) -> Iterator[str]:
    """The Redis of this run: an embedded one, or REDIS_URL's with this run's key prefix."""
    global EMBEDDED_REDIS
    if test_settings.TEST_EMBEDDED_REDIS:
        EMBEDDED_REDIS = RedisServer(url=settings.REDIS_URL, run_dir=run_dir)
        EMBEDDED_REDIS.start()
    try:
        yield settings.REDIS_URL
    finally:
        # What this process still holds for Redis goes now, while Redis is there to take it.
        from scheduler.live.publisher import publisher

        publisher().stop(timeout=5)
        client = get_redis()
        try:
            keys = list(client.scan_iter(match=f"{settings.REDIS_KEY_PREFIX}*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
        finally:
            if EMBEDDED_REDIS is not None:
                EMBEDDED_REDIS.stop()


@pytest.fixture(scope="module")
def celery_worker(
    django_db_setup: None, django_db_blocker: object, run_dir: Path
) -> Iterator[RunningProcess]:
    """A real `celery worker` process consuming every queue, on this run's database and Redis.

    Tests that use it need `@pytest.mark.django_db(transaction=True)`, so that the rows they
    write are committed where the worker can see them.
    """
    worker = start_worker(log_dir=run_dir)
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def celery_beat(celery_worker: RunningProcess, run_dir: Path) -> Iterator[RunningProcess]:
    """A real `celery beat` process (with the worker), stopped at the end of the test."""
    beat = start_beat(log_dir=run_dir)
    try:
        yield beat
    finally:
        beat.stop()


@pytest.fixture(scope="module")
def web_server(celery_worker: RunningProcess, run_dir: Path) -> Iterator[LiveServer]:
    """The real web server (daphne, see tests/browser.py) with a real worker behind it."""
    server = LiveServer(log_dir=run_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    """The system's headless Chromium, driven by Playwright (see tests/browser.py)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP endpoint recording what is POSTed to it (tests/receivers.py)."""
    receiver = Receiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_receiver(
    tls_certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Receiver]:
    """`receiver` over HTTPS, with a certificate this process trusts (SSL_CERT_FILE) for the
    test."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_certificate[0]))
    receiver = Receiver(tls=server_tls(*tls_certificate))
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def mail_receiver(settings: Any) -> Iterator[MailReceiver]:
    """A real SMTP server recording what it is sent; this process's mail goes to it through
    Django's SMTP backend (tests/alert_receivers.py)."""
    receiver = MailReceiver()
    receiver.start()
    for name, value in receiver.django_settings().items():
        setattr(settings, name, value)
    try:
        yield receiver
    finally:
        receiver.stop()


# --- the schedule every deployment gets ----------------------------------------------------------


def _uses_database(request: pytest.FixtureRequest) -> bool:
    """Whether the test has database access, and that access is set up by now."""
    if request.node.get_closest_marker("django_db") is not None:
        request.getfixturevalue("_django_db_helper")
        return True
    for name in ("transactional_db", "db"):
        if name in request.fixturenames:
            request.getfixturevalue(name)
            return True
    return False


@pytest.fixture(autouse=True)
def _without_the_default_cleanup_schedule(request: pytest.FixtureRequest) -> None:
    """Tests start from a database without the periodic task migration scheduler/0004 creates
    on every deployment (the daily results cleanup), unless they ask for `cleanup_schedule`.

    The suite's tests count and list periodic tasks as if the table started empty. Without
    this the row would be there or not depending on the order: a transactional test flushes
    the database, and with it what the migration wrote.
    """
    if "cleanup_schedule" in request.fixturenames or not _uses_database(request):
        return
    cleanup = PeriodicTask.objects.filter(name=CLEANUP_SCHEDULE_NAME).first()
    if cleanup is None:
        return
    crontab_id = cleanup.crontab_id
    cleanup.delete()
    if crontab_id is not None and not PeriodicTask.objects.filter(crontab_id=crontab_id).exists():
        CrontabSchedule.objects.filter(pk=crontab_id).delete()


@pytest.fixture
def cleanup_schedule() -> PeriodicTask:
    """The daily results cleanup migration scheduler/0004 created (tests/scheduler/services/
    test_retention_cleanup.py). pytest-django runs the tests that flush the database after the
    others, so it is still there for every non-transactional test."""
    return PeriodicTask.objects.select_related("crontab", "options").get(name=CLEANUP_SCHEDULE_NAME)


@pytest.fixture
def admin() -> Client:
    """A test client signed in as a superuser (a user of its own, unlike pytest-django's
    `admin_client`)."""
    return client_for(user_with(superuser=True))


@pytest.fixture
def api_admin() -> APIClient:
    """An API client signed in as a superuser."""
    return api_client(user_with(superuser=True))
