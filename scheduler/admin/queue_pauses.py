"""Paused queues in the admin: which queue no worker consumes from, since when, by whom and why,
with a "Resume" action that tells every worker (services/queues.py). Pausing is done from the
dashboard, the API or the command line, where the queue is chosen from those that exist."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from kombu.exceptions import OperationalError

from scheduler.admin.periodic_tasks import AdminOption
from scheduler.admin.run_now import ReadOnlyAdmin
from scheduler.models import QueuePause, Source
from scheduler.permissions import CONTROL_WORKERS, staff_has
from scheduler.services import QueueNotFound, queue_resume


@admin.register(QueuePause)
class QueuePauseAdmin(ReadOnlyAdmin):
    list_display = ("queue", "paused_at", "who", "note")
    ordering = ("queue",)
    actions: AdminOption = ("resume",)

    @admin.display(description="paused by")
    def who(self, pause: QueuePause) -> str:
        if pause.paused_by is not None:
            return str(pause.paused_by.get_username())
        return pause.paused_by_name or "—"

    def has_resume_permission(self, request: HttpRequest) -> bool:
        return staff_has(request.user, CONTROL_WORKERS)

    @admin.action(description="Resume the selected queues on every worker", permissions=["resume"])
    def resume(self, request: HttpRequest, queryset: QuerySet[QueuePause]) -> None:
        resumed = []
        for pause in queryset:
            try:
                queue_resume(queue=pause.queue, actor=request.user, source=Source.ADMIN)
            except QueueNotFound as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            except OperationalError as exc:  # the broker is down: the workers were not told
                self.message_user(
                    request,
                    f"{pause.queue}: the broker (Redis) could not be reached, the workers "
                    f"were not told: {exc}",
                    messages.ERROR,
                )
                continue
            resumed.append(pause.queue)
        if resumed:
            self.message_user(request, f"Resumed: {', '.join(resumed)}.", messages.SUCCESS)
