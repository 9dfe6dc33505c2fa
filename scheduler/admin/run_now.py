"""The admin's "Run now", written once: the periodic task admin's action and button, an agent's
schedule button and a tournament's action all run their periodic tasks through `run_named`.

Each run is `schedule_run_now`, audited as the user's (source admin) like every other write, and
staff read the same messages wherever they pressed it. `queue_each` is the loop under it, for
the other admin actions that queue work (retrying results, a tournament entry's decision), and
`ReadOnlyAdmin` the admin of rows that tasks write and staff only read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from django.contrib import admin, messages
from django.http import HttpRequest
from kombu.exceptions import OperationalError

from scheduler.models import Source
from scheduler.services import ScheduleError, ScheduleNotFound, schedule_run_now


def broker_down_message(exc: Exception) -> str:
    return f"the broker (Redis) could not be reached, nothing was queued: {exc}"


class _Messages(Protocol):
    def message_user(self, request: HttpRequest, message: str, level: int = ...) -> None: ...


_Item = TypeVar("_Item")


def queue_each(
    admin_view: _Messages,
    request: HttpRequest,
    items: Iterable[_Item],
    *,
    queue: Callable[[_Item], str],
    named: Callable[[_Item], str],
    queued_as: Callable[[_Item, str], str],
    done: str,
    not_done: str = "was not run",
    refused: tuple[type[Exception], ...] = (ScheduleError, ScheduleNotFound),
    refusal: Callable[[Exception], str] = str,
) -> list[str]:
    """Queue each item (`queue` returns its task id) and say what happened: one message per item
    that was not queued (`"<named> <not_done>: <why>"`: refused, or the broker down), then one
    listing those queued (`"<done>: <queued_as>, ..."`). What was queued, as listed."""
    queued: list[str] = []
    for item in items:
        try:
            task_id = queue(item)
        except refused as exc:
            why = refusal(exc)
        except OperationalError as exc:
            why = broker_down_message(exc)
        else:
            queued.append(queued_as(item, task_id))
            continue
        admin_view.message_user(request, f"{named(item)} {not_done}: {why}", messages.ERROR)
    if queued:
        admin_view.message_user(request, f"{done}: {', '.join(queued)}.", messages.SUCCESS)
    return queued


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    """Rows written by tasks (a post, a trade, a decision): listed and shown, never edited here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RunNowMixin:
    """For a `ModelAdmin` whose rows own periodic tasks: `run_named` runs them now.

    The admin keeps its own action, button and permission check (who may run what differs);
    this runs the named periodic tasks and says what happened.
    """

    def run_named(self: _Messages, request: HttpRequest, names: Iterable[str]) -> None:
        """Queue one run of each periodic task in `names`: one message lists those queued (with
        their task ids), one message per task that was not (refused, missing, broker down)."""
        queue_each(
            self,
            request,
            names,
            queue=lambda name: schedule_run_now(name=name, actor=request.user, source=Source.ADMIN),
            named=str,
            queued_as=lambda name, task_id: f"{name} (task id {task_id})",
            done="Queued to run now",
        )
