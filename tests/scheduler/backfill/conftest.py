"""Fixtures of the backfill tests: the messages a backfill publishes, captured instead of sent,
and a schedule with a known grid."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from django_celery_beat.models import PeriodicTask

from config.celery import app
from tests.factories import make_schedule


@dataclass
class Sent:
    name: str
    options: dict[str, Any]

    @property
    def task_id(self) -> str:
        return str(self.options["task_id"])

    @property
    def headers(self) -> dict[str, Any]:
        return dict(self.options["headers"])


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Sent]:
    """Every message `app.send_task` would publish, in order (none reaches the broker)."""
    messages: list[Sent] = []

    def send_task(name: str, *args: Any, **options: Any) -> None:
        messages.append(Sent(name, options))

    monkeypatch.setattr(app, "send_task", send_task)
    return messages


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def daily_at_nine(name: str = "nightly report", tz: str = "UTC", **fields: Any) -> PeriodicTask:
    return make_schedule(name=name, schedule="0 9 * * *", tz=tz, **fields)


def every_minute(name: str = "minutely", *, last_run_at: datetime) -> PeriodicTask:
    periodic_task = make_schedule(name=name, schedule="every 1 minute")
    # As beat records a run: an UPDATE, so that date_changed does not move.
    PeriodicTask.objects.filter(pk=periodic_task.pk).update(last_run_at=last_run_at)
    return PeriodicTask.objects.get(pk=periodic_task.pk)
