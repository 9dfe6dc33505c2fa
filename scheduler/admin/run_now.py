"""The admin's "Run now", written once: the periodic task admin's action and button, an agent's
schedule button and a tournament's action all run their periodic tasks through `run_named`.

Each run is `schedule_run_now`, audited as the user's (source admin) like every other write, and
staff read the same messages wherever they pressed it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from django.contrib import messages
from django.http import HttpRequest
from kombu.exceptions import OperationalError

from scheduler.models import Source
from scheduler.services import ScheduleError, ScheduleNotFound, schedule_run_now


def broker_down_message(exc: Exception) -> str:
    return f"the broker (Redis) could not be reached, nothing was queued: {exc}"


class _Messages(Protocol):
    def message_user(self, request: HttpRequest, message: str, level: int = ...) -> None: ...


class RunNowMixin:
    """For a `ModelAdmin` whose rows own periodic tasks: `run_named` runs them now.

    The admin keeps its own action, button and permission check (who may run what differs);
    this runs the named periodic tasks and says what happened.
    """

    def run_named(self: _Messages, request: HttpRequest, names: Iterable[str]) -> None:
        """Queue one run of each periodic task in `names`: one message lists those queued (with
        their task ids), one message per task that was not (refused, missing, broker down)."""
        queued: list[str] = []
        for name in names:
            try:
                task_id = schedule_run_now(name=name, actor=request.user, source=Source.ADMIN)
            except (ScheduleError, ScheduleNotFound) as exc:
                self.message_user(request, f"{name} was not run: {exc}", messages.ERROR)
            except OperationalError as exc:
                self.message_user(
                    request, f"{name} was not run: {broker_down_message(exc)}", messages.ERROR
                )
            else:
                queued.append(f"{name} (task id {task_id})")
        if queued:
            self.message_user(request, f"Queued to run now: {', '.join(queued)}.", messages.SUCCESS)
