"""The built-in system tasks, called in this process: health, backup, cleanup, notification.

`scheduler.execute_command` has its own file, tests/scheduler/system/test_allowed_commands.py.
"""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_results.models import TaskResult

from scheduler.catalog import ParameterError, catalog
from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.models import TaskEvent
from scheduler.observability.health import (
    BEAT_HEARTBEAT_KEY,
    beat_heartbeat,
    check_beat,
    health_report,
)
from scheduler.observability.worker_heartbeats import record_worker_seen
from scheduler.system.backups import BackupError, backup_verify, backups_in
from scheduler.system.notifications import NotificationError, NotificationRejected
from scheduler.system.tasks import (
    UnhealthyError,
    backup_database,
    cleanup_results,
    health_check,
    send_notification,
)

# --- health ------------------------------------------------------------------------------------


@pytest.fixture
def isolated_prefix(settings):
    """A key prefix of its own, so heartbeats recorded by other tests are not seen here."""
    settings.REDIS_KEY_PREFIX = f"{settings.REDIS_KEY_PREFIX}system-{time.time_ns()}:"
    return settings.REDIS_KEY_PREFIX


def _record_beat(*, at: float, pid: int = 4242, hostname: str = "beat@host") -> None:
    value = json.dumps({"at": at, "pid": pid, "hostname": hostname})
    get_redis().set(redis_key(BEAT_HEARTBEAT_KEY), value)


def test_it_reads_the_beat_heartbeat(isolated_prefix):
    assert beat_heartbeat() is None

    _record_beat(at=123.5)

    assert beat_heartbeat() == {"at": 123.5, "pid": 4242, "hostname": "beat@host"}


def test_it_calls_beat_alive_when_its_heartbeat_is_recent(isolated_prefix):
    _record_beat(at=time.time() - 5)

    check = check_beat(window=60)

    assert check.ok is True
    assert check.data["hostname"] == "beat@host"
    assert check.data["pid"] == 4242
    assert 4 <= check.data["last_seen_seconds_ago"] < 60


@pytest.mark.parametrize(
    ("stored", "detail"),
    [
        (None, "beat has never recorded a heartbeat"),
        ("not json", "the beat heartbeat is not JSON"),
        ('{"pid": 1}', "the beat heartbeat has no time"),
        ("old", "beat last recorded a heartbeat"),
    ],
)
def test_it_calls_beat_down_without_a_recent_heartbeat(isolated_prefix, settings, stored, detail):
    settings.BEAT_HEALTH_WINDOW = 60
    if stored == "old":
        _record_beat(at=time.time() - 300)
    elif stored is not None:
        get_redis().set(redis_key(BEAT_HEARTBEAT_KEY), stored)

    check = check_beat()

    assert check.ok is False
    assert detail in check.detail


@pytest.mark.django_db
def test_it_keeps_beat_out_of_healthz(isolated_prefix):
    record_worker_seen("w1@host")  # a worker, and no beat heartbeat at all

    response = Client().get("/healthz")

    assert response.status_code == 200
    assert "beat" not in response.json()["checks"]
    assert "beat" not in health_report().checks


@pytest.mark.django_db
def test_it_reports_database_redis_workers_and_beat_from_the_health_check_task(isolated_prefix):
    record_worker_seen("w1@host")
    _record_beat(at=time.time())

    report = health_check()

    json.dumps(report)  # the result is stored as JSON
    assert report["status"] == "ok"
    assert set(report["checks"]) == {"database", "redis", "workers", "beat", "missed_runs"}
    assert report["checks"]["beat"]["data"]["hostname"] == "beat@host"


@pytest.mark.django_db
def test_it_fails_naming_the_failing_checks_when_beat_is_down(isolated_prefix):
    # A FAILURE, not a success holding "unhealthy": history, metrics and alerts see it (issue 17).
    record_worker_seen("w1@host")

    with pytest.raises(UnhealthyError) as raised:
        health_check()

    message = str(raised.value)
    assert message.startswith("unhealthy: beat: ")
    assert "database:" not in message.splitlines()[0]
    report = json.loads(message.split("\n", 1)[1])
    assert report["status"] == "unhealthy"
    assert report["checks"]["beat"]["ok"] is False
    assert report["checks"]["database"]["ok"] is True
    assert raised.value.args == (message,)  # one argument: Celery stores it as it is


# --- backup_database -----------------------------------------------------------------------------


@pytest.fixture
def backup_dir(settings, tmp_path: Path) -> Path:
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.BACKUP_KEEP = 7
    return settings.BACKUP_DIR


def _fake_backup(directory: Path, stamp: str, suffix: str = ".sqlite3") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"db-{stamp}{suffix}"
    path.write_bytes(b"an old backup")
    return path


@pytest.mark.django_db
def test_it_backs_up_sqlite_with_the_online_backup_api(backup_dir):
    if connection.vendor != "sqlite":
        pytest.skip("the test database is not SQLite")

    result = backup_database()

    path = Path(result["file"])
    assert path.parent == backup_dir
    assert path.suffix == ".sqlite3"
    assert result["size"] == path.stat().st_size > 0
    assert result["duration"] >= 0
    assert result["tables"] > 10
    assert list(backup_dir.iterdir()) == [path]  # no partial file left behind
    with sqlite3.connect(path) as copy:
        tables = {row[0] for row in copy.execute("SELECT name FROM sqlite_master")}
        # A single self-contained file, not a WAL database needing its -wal/-shm companions.
        (journal_mode,) = copy.execute("PRAGMA journal_mode").fetchone()
    assert {"django_celery_beat_periodictask", "scheduler_taskevent"} <= tables
    assert journal_mode == "delete"


@pytest.mark.django_db
def test_it_dumps_postgresql_with_pg_dump_in_custom_format(backup_dir):
    if connection.vendor != "postgresql":
        pytest.skip("the test database is not PostgreSQL")

    result = backup_database()

    path = Path(result["file"])
    assert path.suffix == ".pgdump"
    assert result["size"] == path.stat().st_size > 0
    assert result["tables"] > 10
    listing = subprocess.run(
        ["pg_restore", "--list", str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert "TABLE public django_celery_beat_periodictask" in listing


@pytest.mark.django_db
def test_it_leaves_nothing_behind_when_pg_dump_fails(backup_dir, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("the test database is not PostgreSQL")
    _fake_backup(backup_dir, "20200101T000000000000Z", ".pgdump")
    monkeypatch.setitem(connection.settings_dict, "PORT", "1")  # nothing listens there

    with pytest.raises(BackupError, match="pg_dump failed"):
        backup_database(keep=1)

    # The failed run neither left a file nor pushed the old backup out.
    assert [p.name for p in backup_dir.iterdir()] == ["db-20200101T000000000000Z.pgdump"]


@pytest.mark.django_db
def test_it_keeps_only_the_newest_backups(backup_dir):
    oldest = _fake_backup(backup_dir, "20200101T000000000000Z")
    older = _fake_backup(backup_dir, "20200102T000000000000Z", ".pgdump")
    old = _fake_backup(backup_dir, "20200103T000000000000Z")
    unrelated = backup_dir / "notes.txt"
    unrelated.write_text("not a backup: never deleted")

    result = backup_database(keep=2)

    assert result["removed"] == [oldest.name, older.name]
    assert [p.name for p in backups_in(backup_dir)] == [old.name, result["name"]]
    assert unrelated.exists()


@pytest.mark.django_db
def test_it_keeps_backup_keep_backups_by_default(backup_dir, settings):
    settings.BACKUP_KEEP = 1
    _fake_backup(backup_dir, "20200101T000000000000Z")

    result = backup_database()

    assert [p.name for p in backups_in(backup_dir)] == [result["name"]]


def test_it_refuses_a_backup_that_cannot_be_read(tmp_path):
    broken = tmp_path / "db-20200101T000000000000Z.sqlite3"
    broken.write_bytes(b"this is not a database" * 100)

    with pytest.raises(BackupError, match="cannot be read"):
        backup_verify(broken)


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"keep": 0}, "keep"),
        ({"keep": "many"}, "keep"),
        ({"directory": "/tmp"}, "directory"),
    ],
)
def test_it_rejects_bad_backup_params(params, error):
    with pytest.raises(ParameterError) as raised:
        catalog.get("scheduler.backup_database").validate(params)

    assert error in raised.value.errors


# --- cleanup_results ----------------------------------------------------------------------------


def _result(task_id: str, *, age: timedelta) -> TaskResult:
    result = TaskResult.objects.create(
        task_id=task_id, task_name="scheduler.ping", status="SUCCESS"
    )
    # date_done is auto_now: only an update can put a row in the past.
    TaskResult.objects.filter(pk=result.pk).update(date_done=timezone.now() - age)
    return result


def _event(*, age: timedelta) -> TaskEvent:
    return TaskEvent.objects.create(
        type="task.succeeded", task_name="scheduler.ping", created_at=timezone.now() - age
    )


@pytest.mark.django_db
def test_it_deletes_results_and_events_older_than_n_days_in_batches():
    for n in range(5):
        _result(f"old-{n}", age=timedelta(days=31))
        _event(age=timedelta(days=31))
    recent_result = _result("recent", age=timedelta(days=29))
    recent_event = _event(age=timedelta(days=29))

    with CaptureQueriesContext(connection) as queries:
        result = cleanup_results(days=30, batch_size=2)

    assert result["deleted"] == 10
    assert result["tables"]["task results"] == result["tables"]["task events"] == 5
    assert list(TaskResult.objects.values_list("pk", flat=True)) == [recent_result.pk]
    assert list(TaskEvent.objects.values_list("pk", flat=True)) == [recent_event.pk]
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    # Batches of 2: three DELETE statements per table, never one for all the rows.
    assert len(deletes) == 2 * math.ceil(5 / 2)


@pytest.mark.django_db
def test_it_deletes_everything_finished_before_now_with_zero_days():
    _result("just-now", age=timedelta(seconds=1))
    _event(age=timedelta(seconds=1))

    assert cleanup_results(days=0)["deleted"] == 2
    assert not TaskResult.objects.exists()


@pytest.mark.parametrize(
    ("params", "error"),
    [({"days": -1}, "days"), ({"batch_size": 0}, "batch_size"), ({"days": "a"}, "days")],
)
def test_it_rejects_bad_cleanup_params(params, error):
    with pytest.raises(ParameterError) as raised:
        catalog.get("scheduler.cleanup_results").validate(params)

    assert error in raised.value.errors


def test_it_defaults_cleanup_to_the_retention_settings():
    # None: RESULTS_RETENTION_DAYS, EVENTS_RETENTION_DAYS and RETENTION_BATCH_SIZE
    # (tests/scheduler/services/test_retention.py).
    assert catalog.get("scheduler.cleanup_results").validate({}) == {
        "days": None,
        "batch_size": None,
    }


# --- send_notification --------------------------------------------------------------------------


class _Webhook:
    """A real HTTP server on 127.0.0.1 answering with `statuses` in turn (then the last one)."""

    def __init__(self, statuses: list[int]):
        self.statuses = statuses
        self.requests: list[dict[str, Any]] = []
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                webhook.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                n = len(webhook.requests) - 1
                status = webhook.statuses[min(n, len(webhook.statuses) - 1)]
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"no" if status >= 300 else b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> _Webhook:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_it_emails_the_recipients(settings):
    settings.DEFAULT_FROM_EMAIL = "scheduler@example.com"

    result = send_notification(
        subject="Nightly backup", message="done", recipients=["ops@example.com"]
    )

    assert result == {
        "channel": "email",
        "recipients": ["ops@example.com"],
        "subject": "Nightly backup",
    }
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert (sent.subject, sent.body, sent.to) == ("Nightly backup", "done", ["ops@example.com"])
    assert sent.from_email == "scheduler@example.com"


def test_it_posts_json_to_the_webhook():
    with _Webhook([200]) as hook:
        result = send_notification(subject="Hi", message="there", webhook_url=hook.url)

    assert result == {"channel": "webhook", "webhook_url": hook.url, "status": 200}
    (request,) = hook.requests
    assert request["path"] == "/hook"
    assert request["headers"]["Content-Type"] == "application/json"
    body = json.loads(request["body"])
    assert (body["subject"], body["message"]) == ("Hi", "there")
    assert "sent_at" in body


def test_it_declares_retries_with_exponential_backoff():
    assert send_notification.autoretry_for == (NotificationError,)
    assert send_notification.max_retries == 3
    assert send_notification.retry_backoff == 5
    assert send_notification.retry_jitter is True


def test_it_raises_a_retryable_error_when_the_webhook_fails():
    with _Webhook([503]) as hook, pytest.raises(NotificationError, match="answered 503"):
        send_notification(subject="Hi", message="there", webhook_url=hook.url)


@pytest.fixture
def inline_retries(monkeypatch):
    """apply() runs a task's retries inline (without their countdown), unless errors propagate:
    then it raises the first Retry. The settings make them propagate; not for these tests."""
    monkeypatch.setattr(send_notification.app.conf, "task_eager_propagates", False)


@pytest.mark.django_db
@pytest.mark.usefixtures("inline_retries")
def test_it_retries_a_failing_webhook_until_it_answers():
    with _Webhook([500, 503, 200]) as hook:
        outcome = send_notification.apply(
            kwargs={"subject": "Hi", "message": "there", "webhook_url": hook.url}
        )

    assert outcome.successful()
    assert outcome.result["status"] == 200
    assert len(hook.requests) == 3


@pytest.mark.django_db
@pytest.mark.usefixtures("inline_retries")
def test_it_gives_up_after_three_retries():
    with _Webhook([500]) as hook:
        outcome = send_notification.apply(
            kwargs={"subject": "Hi", "message": "there", "webhook_url": hook.url}
        )

    assert outcome.failed()
    assert isinstance(outcome.result, NotificationError)
    assert len(hook.requests) == 1 + 3


@pytest.mark.django_db
@pytest.mark.usefixtures("inline_retries")
@pytest.mark.parametrize("status", [400, 404, 302])
def test_it_does_not_retry_a_webhook_that_refuses_the_message(status):
    with _Webhook([status, 200]) as hook:
        outcome = send_notification.apply(
            kwargs={"subject": "Hi", "message": "there", "webhook_url": hook.url}
        )

    assert outcome.failed()
    assert isinstance(outcome.result, NotificationRejected)
    assert str(status) in str(outcome.result)
    assert len(hook.requests) == 1  # and a redirect was not followed as a GET


def test_it_raises_a_retryable_error_when_the_webhook_is_unreachable():
    with _Webhook([200]) as hook:
        url = hook.url  # the port is closed again once the server is gone

    with pytest.raises(NotificationError, match="unreachable"):
        send_notification(subject="Hi", message="there", webhook_url=url, timeout=2)


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"subject": "s", "message": "m"}, "params"),
        (
            {
                "subject": "s",
                "message": "m",
                "recipients": ["a@example.com"],
                "webhook_url": "https://example.com/hook",
            },
            "params",
        ),
        ({"subject": "s", "message": "m", "recipients": ["not-an-email"]}, "recipients.0"),
        ({"subject": "s", "message": "m", "webhook_url": "file:///etc/passwd"}, "webhook_url"),
        ({"subject": "", "message": "m", "recipients": ["a@example.com"]}, "subject"),
        ({"message": "m", "recipients": ["a@example.com"]}, "subject"),
        (
            {"subject": "s", "message": "m", "webhook_url": "https://example.com", "timeout": 99},
            "timeout",
        ),
    ],
)
def test_it_rejects_bad_notification_params(params, error):
    with pytest.raises(ParameterError) as raised:
        catalog.get("scheduler.send_notification").validate(params)

    assert error in raised.value.errors


def test_it_says_exactly_one_channel_is_needed():
    with pytest.raises(ParameterError, match="exactly one of recipients"):
        catalog.get("scheduler.send_notification").validate({"subject": "s", "message": "m"})


# --- the catalog --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "queue"),
    [
        ("scheduler.health_check", "default"),
        ("scheduler.backup_database", "maintenance"),
        ("scheduler.cleanup_results", "maintenance"),
        ("scheduler.send_notification", "webhooks"),
        ("scheduler.execute_command", "maintenance"),
    ],
)
def test_it_lists_the_system_tasks_in_the_catalog(name, queue):
    entry = catalog.get(name)

    assert entry.queue == queue
    assert entry.description
    assert entry.schema()["type"] == "object"


# --- cleanup_logs (issue 17: the seeds' log cleanup) ---------------------------------------------


def test_the_log_cleanup_deletes_the_files_not_written_for_the_retention_days(tmp_path, settings):
    import os

    from scheduler.system.tasks import cleanup_logs

    settings.LOG_DIR = tmp_path
    settings.LOG_RETENTION_DAYS = 14
    old, recent, rotated = tmp_path / "web.log.1", tmp_path / "web.log", tmp_path / "beat.log.2.gz"
    for path in (old, recent, rotated):
        path.write_text("lines\n")
    (tmp_path / "archive").mkdir()
    fifteen_days_ago = time.time() - 15 * 86_400
    for path in (old, rotated):
        os.utime(path, (fifteen_days_ago, fifteen_days_ago))

    result = cleanup_logs()

    assert result == {
        "folder": str(tmp_path),
        "rotated": [],
        "deleted": ["beat.log.2.gz", "web.log.1"],
        "kept": 1,
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive", "web.log"]
    assert cleanup_logs(days=0)["deleted"] == []  # 0: keep everything


def test_the_log_cleanup_rotates_a_large_log_in_place(tmp_path, settings):
    from scheduler.system.log_files import log_files_prune

    settings.LOG_DIR = tmp_path
    log = tmp_path / "worker.log"
    # The process writing it keeps its file open, appending (as the stack's supervisor does).
    with log.open("a") as writer:
        writer.write("x" * 2000)
        writer.flush()

        result = log_files_prune(
            rotate_bytes=1000, now=time.mktime((2026, 12, 4, 9, 0, 0, 0, 0, 0))
        )

        (copy,) = result["rotated"]
        assert copy.startswith("worker.log.2026120")
        assert (tmp_path / copy).read_text() == "x" * 2000
        assert log.stat().st_size == 0
        writer.write("after")
        writer.flush()
    assert log.read_text() == "after"
    assert log_files_prune(rotate_bytes=1000)["rotated"] == []  # small again
