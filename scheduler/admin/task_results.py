"""django-celery-results' admin, extended: the history of runs, at the size it has in
production (estimated counts, indexed prefix search, probed date filters), with secret arguments
masked, and a retry, a revoke (of runs not started) and a terminate (of running runs) that go
through `scheduler.services` like every other write (the revoke and the terminate audited as the
user's, source admin).
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

from django.contrib import admin
from django.db import connections
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django_celery_beat.models import PeriodicTask
from django_celery_results.admin import TaskResultAdmin as StockTaskResultAdmin
from django_celery_results.models import TaskResult

from scheduler import selectors
from scheduler.admin.changelists import choices_filter, prefix_match, with_probed_dates
from scheduler.admin.periodic_tasks import RUN_PERMISSION, AdminOption, format_duration
from scheduler.admin.run_now import queue_each
from scheduler.models import Source
from scheduler.observability.pagination import EstimatedCountPaginator
from scheduler.permissions import RUN_TASKS
from scheduler.selectors import stored_arguments
from scheduler.services import ScheduleError, TaskNotFound, task_result_retry, task_revoke

admin.site.unregister(TaskResult)


@admin.register(TaskResult)
class TaskResultAdmin(StockTaskResultAdmin):
    list_display: AdminOption = (
        "task_id",
        "periodic_task_link",
        "task_name",
        "date_done",
        "status",
        "duration",
        "worker",
    )
    actions: AdminOption = ("retry_selected", "revoke_selected", "terminate_selected")
    # A table of millions of rows: each of these is the stock admin's, minus its scans
    # (scheduler/admin/changelists.py, scheduler/observability/pagination.py).
    paginator: ClassVar[AdminOption] = EstimatedCountPaginator
    show_full_result_count: ClassVar[AdminOption] = False
    show_facets: ClassVar[AdminOption] = admin.ShowFacets.NEVER
    list_filter: ClassVar[AdminOption] = (
        ("status", choices_filter(selectors.result_statuses)),
        "date_done",
        ("periodic_task_name", choices_filter(selectors.periodic_task_names_run)),
        ("task_name", choices_filter(selectors.task_names_recent)),
        ("worker", choices_filter(selectors.workers_recent)),
    )
    search_help_text: ClassVar[AdminOption] = (
        "The start of a task id, a periodic task name or a task name (case matters), or a "
        "status (failed, success, ...)."
    )
    fieldsets: ClassVar[AdminOption] = (
        (
            None,
            {
                "fields": (
                    "task_id",
                    "task_name",
                    "periodic_task_name",
                    "periodic_task_link",
                    "status",
                    "worker",
                    "content_type",
                    "content_encoding",
                ),
                "classes": ("extrapretty", "wide"),
            },
        ),
        # The stock admin shows the stored arguments as they are: here secret values are masked.
        ("Parameters", {"fields": ("arguments", "keyword_arguments"), "classes": ("wide",)}),
        *StockTaskResultAdmin.fieldsets[2:],
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[TaskResult]:
        queryset: QuerySet[TaskResult] = with_probed_dates(super().get_queryset(request))
        # The periodic task is named, not linked: look its id up for the whole page at once.
        return queryset.annotate(
            periodic_task_pk=Subquery(
                PeriodicTask.objects.filter(name=OuterRef("periodic_task_name")).values("pk")[:1]
            )
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[TaskResult], search_term: str
    ) -> tuple[QuerySet[TaskResult], bool]:
        # Indexed prefixes, not the stock LIKE '%term%' over arguments and results, which
        # reads every row of the history.
        term = search_term.strip()
        if not term:
            return queryset, False
        vendor = connections[queryset.db].vendor
        match = Q()
        for field in ("task_id", "periodic_task_name", "task_name"):
            match |= prefix_match(field, term, vendor=vendor)
        with contextlib.suppress(ValueError):  # not a status: the prefixes alone
            match |= Q(status=selectors.result_status_named(term))
        return queryset.filter(match), False

    def get_readonly_fields(self, request: HttpRequest, obj: TaskResult | None = None) -> Any:
        return [
            *super().get_readonly_fields(request, obj),
            "periodic_task_link",
            "duration",
            "arguments",
            "keyword_arguments",
        ]

    def has_retry_permission(self, request: HttpRequest) -> bool:
        # A retry runs a task: the permission that runs periodic tasks now.
        return bool(request.user.has_perm(RUN_PERMISSION))

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        # As the API's and the dashboard's revoke: the permission that runs catalog tasks.
        return bool(request.user.has_perm(RUN_TASKS))

    @admin.display(description="Periodic task", ordering="periodic_task_name")
    def periodic_task_link(self, obj: TaskResult) -> str:
        name = getattr(obj, "periodic_task_name", "")  # a column mypy's view of the model lacks
        if not name:
            return ""
        pk = getattr(obj, "periodic_task_pk", None)
        if pk is None:
            return f"{name} (deleted)"
        url = reverse("admin:django_celery_beat_periodictask_change", args=[pk])
        return format_html('<a href="{}">{}</a>', url, name)

    @admin.display(description="Duration")
    def duration(self, obj: TaskResult) -> str:
        return format_duration(getattr(obj, "date_started", None), obj.date_done)

    @admin.display(description="Task args")
    def arguments(self, obj: TaskResult) -> str:
        return format_html(
            '<pre class="scheduler-arguments">{}</pre>', stored_arguments(obj.task_args)
        )

    @admin.display(description="Task kwargs")
    def keyword_arguments(self, obj: TaskResult) -> str:
        return format_html(
            '<pre class="scheduler-arguments">{}</pre>', stored_arguments(obj.task_kwargs)
        )

    @admin.action(description="Retry selected (same arguments)", permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[TaskResult]) -> None:
        queue_each(
            self,
            request,
            queryset,
            queue=lambda result: task_result_retry(
                result=result, actor=request.user, source=Source.ADMIN
            ),
            named=_result_label,
            queued_as=lambda result, task_id: f"{_result_label(result)} as {task_id}",
            done="Queued again",
            not_done="was not retried",
            refused=(ScheduleError,),
        )

    @admin.action(description="Revoke selected (drop runs not started yet)", permissions=["revoke"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[TaskResult]) -> None:
        self._revoke(request, queryset, terminate=False)

    @admin.action(description="Terminate selected (stop running runs)", permissions=["revoke"])
    def terminate_selected(self, request: HttpRequest, queryset: QuerySet[TaskResult]) -> None:
        self._revoke(request, queryset, terminate=True)

    def _revoke(
        self, request: HttpRequest, queryset: QuerySet[TaskResult], *, terminate: bool
    ) -> None:
        queue_each(
            self,
            request,
            queryset,
            queue=lambda result: (
                task_revoke(
                    task_id=result.task_id,
                    terminate=terminate,
                    actor=request.user,
                    source=Source.ADMIN,
                ).task_id
            ),
            named=_result_label,
            queued_as=lambda result, task_id: _result_label(result),
            done="Asked the workers to stop" if terminate else "Asked the workers to drop",
            not_done="was not terminated" if terminate else "was not revoked",
            refused=(ScheduleError, TaskNotFound),
        )


def _result_label(result: TaskResult) -> str:
    return f"{result.task_name or 'unnamed task'} ({result.task_id})"
