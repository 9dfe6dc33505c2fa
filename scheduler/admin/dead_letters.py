"""The dead letters' admin: runs that failed their last retry, read-only, with "Requeue" and
"Discard" actions that go through `scheduler.services` (audited as the user's, source admin),
like the dashboard's buttons, the CLI and the API. Arguments are shown masked.
"""

from __future__ import annotations

import json
from typing import ClassVar

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from scheduler.admin.changelists import choices_filter
from scheduler.admin.periodic_tasks import AdminOption
from scheduler.admin.run_now import ReadOnlyAdmin
from scheduler.catalog import load_catalog
from scheduler.core.masking import masked
from scheduler.models import DeadLetter, Source
from scheduler.observability.pagination import EstimatedCountPaginator
from scheduler.permissions import RUN_TASKS
from scheduler.selectors import error_summary
from scheduler.services import DeadLetterBatch, dead_letters_discard, dead_letters_requeue


def _label(letter: DeadLetter) -> str:
    return f"{letter.task_name} ({letter.task_id})"


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display: AdminOption = (
        "failed_at",
        "task_name",
        "periodic_task_name",
        "attempts",
        "error_line",
        "status",
        "task_id",
    )
    list_filter: ClassVar[AdminOption] = (
        "status",
        ("task_name", choices_filter(lambda: load_catalog().names())),
        "failed_at",
    )
    search_fields: ClassVar[AdminOption] = ("^task_id", "task_name", "periodic_task_name")
    search_help_text: ClassVar[AdminOption] = (
        "The start of a task id, or part of a task or periodic task name."
    )
    list_select_related: ClassVar[AdminOption] = ("resolved_by",)
    actions: AdminOption = ("requeue_selected", "discard_selected")
    paginator: ClassVar[AdminOption] = EstimatedCountPaginator
    show_full_result_count: ClassVar[AdminOption] = False
    fields: ClassVar[AdminOption] = (
        "task_id",
        "task_name",
        "periodic_task_name",
        "status",
        "attempts",
        "queue",
        "failed_at",
        "error_text",
        "arguments",
        "domain_object",
        "resolved_at",
        "resolved_by",
        "requeued_link",
    )
    readonly_fields: ClassVar[AdminOption] = fields

    def has_requeue_permission(self, request: HttpRequest) -> bool:
        # A requeue runs a task: the permission that runs catalog tasks and retries runs.
        return bool(request.user.has_perm(RUN_TASKS))

    def has_discard_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(RUN_TASKS))

    @admin.display(description="Error")
    def error_line(self, obj: DeadLetter) -> str:
        return error_summary(obj.error, length=120)

    @admin.display(description="Error")
    def error_text(self, obj: DeadLetter) -> str:
        return format_html('<pre class="scheduler-arguments">{}</pre>', obj.error)

    @admin.display(description="Task kwargs")
    def arguments(self, obj: DeadLetter) -> str:
        return format_html(
            '<pre class="scheduler-arguments">{}</pre>',
            json.dumps(masked(obj.kwargs), indent=2, sort_keys=True, default=str),
        )

    @admin.display(description="Object")
    def domain_object(self, obj: DeadLetter) -> str:
        return f"{obj.object_type}:{obj.object_id}" if obj.object_type else ""

    @admin.display(description="Requeued as")
    def requeued_link(self, obj: DeadLetter) -> str:
        if not obj.requeued_as:
            return ""
        url = reverse("dashboard-task", args=[obj.requeued_as])
        return format_html('<a href="{}">{}</a>', url, obj.requeued_as)

    def _report(
        self,
        request: HttpRequest,
        letters: list[DeadLetter],
        batch: DeadLetterBatch,
        *,
        done: str,
        not_done: str,
    ) -> None:
        labels = {letter.pk: _label(letter) for letter in letters}
        for pk, why in batch.refused.items():
            self.message_user(request, f"{labels[pk]} {not_done}: {why}", messages.ERROR)
        if batch.done:
            listed = ", ".join(
                f"{labels[pk]} as {task_id}" if task_id else labels[pk]
                for pk, task_id in batch.done.items()
            )
            self.message_user(request, f"{done}: {listed}.", messages.SUCCESS)

    @admin.action(
        description="Requeue selected (a new run, same arguments)", permissions=["requeue"]
    )
    def requeue_selected(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        letters = list(queryset.order_by("failed_at", "pk"))
        batch = dead_letters_requeue(
            dead_letter_ids=[letter.pk for letter in letters],
            actor=request.user,
            source=Source.ADMIN,
        )
        self._report(request, letters, batch, done="Requeued", not_done="was not requeued")

    @admin.action(description="Discard selected", permissions=["discard"])
    def discard_selected(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        letters = list(queryset.order_by("failed_at", "pk"))
        batch = dead_letters_discard(
            dead_letter_ids=[letter.pk for letter in letters],
            actor=request.user,
            source=Source.ADMIN,
        )
        self._report(request, letters, batch, done="Discarded", not_done="was not discarded")

    def get_queryset(self, request: HttpRequest) -> QuerySet[DeadLetter]:
        return super().get_queryset(request).select_related("resolved_by")
