"""Backfills in the admin: the periodic task list's "Backfill…" action (a form, then the count of
runs to confirm), and the backfills themselves, read-only, their progress kept current live.

The action goes through the same services as the CLI and the API (`backfill_plan` for the count,
`backfill_start` once confirmed: audited as the user's, source admin), with their errors on the
form's fields. It needs `scheduler.run_tasks`, as running a task does.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django_celery_beat.models import PeriodicTask
from kombu.exceptions import OperationalError

from scheduler.admin.run_now import ReadOnlyAdmin, broker_down_message
from scheduler.models import Backfill, Source
from scheduler.permissions import RUN_TASKS
from scheduler.schedules.policies import OverlapPolicy
from scheduler.schedules.rows import periodic_task_schedule
from scheduler.services import (
    BACKFILL_MAX_RUNS,
    BackfillPlan,
    ScheduleError,
    ScheduleNotFound,
    backfill_plan,
    backfill_start,
)

# The services' fields, as the form names them.
FORM_FIELD_OF = {"from": "start", "to": "end", "overlap": "overlap"}
RUNS_SHOWN = 10
# The live page's script (scheduler/static/scheduler/backfills.js) and where it connects.
LIVE_CONFIG = {"ws_path": "/ws/events/"}


class BackfillForm(forms.Form):
    start = forms.CharField(
        label="From",
        max_length=64,
        widget=forms.TextInput(attrs={"placeholder": "2025-01-15 09:00", "size": 28}),
    )
    end = forms.CharField(
        label="To",
        max_length=64,
        widget=forms.TextInput(attrs={"placeholder": "2025-01-31 23:59", "size": 28}),
    )
    overlap = forms.ChoiceField(
        label="Overlap policy",
        choices=OverlapPolicy.choices,
        initial=OverlapPolicy.BUFFER_ALL.value,
        help_text="What a backfilled run does while another run of this schedule runs.",
    )

    def __init__(self, *args: Any, zone: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        said = (
            f"In the schedule's zone ({zone}) unless written with an offset "
            "(2025-01-15T09:00:00+00:00); a date alone is its midnight."
        )
        self.fields["start"].help_text = said
        self.fields["end"].help_text = f"Included. {said}"

    def add_service_errors(self, exc: ScheduleError) -> None:
        for field, errors in exc.errors.items():
            for message in errors:
                self.add_error(FORM_FIELD_OF.get(field), message)


class BackfillActionMixin:
    """For the periodic task admin: the "Backfill…" action and who may use it."""

    admin_site: admin.AdminSite
    model: type[PeriodicTask]
    message_user: Callable[..., None]

    def has_backfill_permission(self, request: HttpRequest) -> bool:
        # A backfill runs tasks: the permission that runs catalog tasks and retries runs.
        return bool(request.user.has_perm(RUN_TASKS))

    @admin.action(description="Backfill…", permissions=["backfill"])
    def backfill(
        self, request: HttpRequest, queryset: QuerySet[PeriodicTask]
    ) -> HttpResponse | None:
        selected = list(queryset[:2])
        if len(selected) != 1:
            self.message_user(
                request,
                f"Backfill one schedule at a time: {queryset.count()} are selected.",
                messages.ERROR,
            )
            return None
        periodic_task = selected[0]
        zone = _zone_of(periodic_task)
        step = request.POST.get("step", "")
        form = BackfillForm(request.POST if step else None, zone=zone)
        plan: BackfillPlan | None = None
        if step and form.is_valid():
            arguments = {
                "name": periodic_task.name,
                "start": form.cleaned_data["start"],
                "end": form.cleaned_data["end"],
                "overlap": form.cleaned_data["overlap"],
            }
            try:
                if step == "confirm":
                    backfill = backfill_start(**arguments, actor=request.user, source=Source.ADMIN)
                    return self._started(request, backfill)
                plan = backfill_plan(**arguments)
            except ScheduleError as exc:
                form.add_service_errors(exc)
            except ScheduleNotFound as exc:
                form.add_error(None, str(exc))
            except OperationalError as exc:
                form.add_error(None, broker_down_message(exc))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Backfill {periodic_task.name}",
            "opts": self.model._meta,
            "periodic_task": periodic_task,
            "zone": zone,
            "form": form,
            "plan": plan,
            "range": (_when(plan.start, zone), _when(plan.end, zone)) if plan else None,
            "runs_shown": [_when(run, zone) for run in plan.times[:RUNS_SHOWN]] if plan else [],
            "runs_more": max(plan.total - RUNS_SHOWN, 0) if plan else 0,
            "last_run": _when(plan.times[-1], zone) if plan and plan.times else "",
            "max_runs": BACKFILL_MAX_RUNS,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/scheduler/periodictask/backfill.html", context)

    def _started(self, request: HttpRequest, backfill: Backfill) -> HttpResponse:
        self.message_user(
            request,
            f"Backfill {backfill.pk} of {backfill.periodic_task_name!r} started: "
            f"{backfill.total} runs (overlap {backfill.overlap}).",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(
            reverse(
                "admin:scheduler_backfill_change",
                args=[backfill.pk],
                current_app=self.admin_site.name,
            )
        )


def _when(moment: datetime, zone: str) -> str:
    """'Wed 2025-01-15 09:00:00 CET': in the schedule's zone, to the second (an interval's)."""
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local:%a %Y-%m-%d %H:%M:%S} {local.tzname()}"


def progress_html(backfill: Backfill) -> str:
    """A bar and its words, which the live script updates (`data-backfill`)."""
    done = backfill.published + backfill.existing
    made = f", {backfill.existing} made before" if backfill.existing else ""
    return format_html(
        '<span class="scheduler-backfill" data-backfill="{}">'
        '<progress max="{}" value="{}"></progress> '
        '<span data-part="words">{}/{} runs{}</span></span>',
        backfill.pk,
        max(backfill.total, 1),
        done,
        done,
        backfill.total,
        made,
    )


_RELATED = (
    "requested_by",
    "periodic_task__crontab",
    "periodic_task__interval",
    "periodic_task__clocked",
    "periodic_task__solar",
    "periodic_task__options",
)


@admin.register(Backfill)
class BackfillAdmin(ReadOnlyAdmin):
    change_list_template = "admin/scheduler/backfill/change_list.html"
    change_form_template = "admin/scheduler/backfill/change_form.html"
    list_display: Any = (
        "id",
        "created_at",
        "schedule",
        "range",
        "overlap_policy",
        "progress",
        "status_shown",
    )
    list_display_links: Any = ("id", "created_at")
    list_filter: ClassVar[Any] = ("status", "source")
    search_fields: ClassVar[Any] = ("periodic_task_name",)
    fields: ClassVar[Any] = (
        "schedule",
        "range",
        "overlap",
        "progress",
        "status_shown",
        "error",
        "requested_by",
        "source",
        "created_at",
        "finished_at",
    )
    readonly_fields: ClassVar[Any] = fields

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return super().changelist_view(request, {**(extra_context or {}), "live": LIVE_CONFIG})

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        live = {**LIVE_CONFIG, "backfill": object_id}
        return super().changeform_view(
            request, object_id, form_url, {**(extra_context or {}), "live": live}
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Backfill]:
        # The schedule's rows with each backfill: its range is shown in the schedule's zone.
        return super().get_queryset(request).select_related(*_RELATED)

    @admin.display(description="Schedule", ordering="periodic_task_name")
    def schedule(self, obj: Backfill) -> str:
        if obj.periodic_task_id is None:
            return f"{obj.periodic_task_name} (deleted)"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:django_celery_beat_periodictask_change", args=[obj.periodic_task_id]),
            obj.periodic_task_name,
        )

    @admin.display(description="Range (both ends included)", ordering="start")
    def range(self, obj: Backfill) -> str:
        zone = _zone_of(obj.periodic_task)
        return f"{_when(obj.start, zone)} to {_when(obj.end, zone)}"

    @admin.display(description="Overlap", ordering="overlap")
    def overlap_policy(self, obj: Backfill) -> str:
        return obj.overlap

    @admin.display(description="Progress")
    def progress(self, obj: Backfill) -> str:
        return progress_html(obj)

    @admin.display(description="Status", ordering="status")
    def status_shown(self, obj: Backfill) -> str:
        return format_html(
            '<span data-backfill-status="{}">{}</span>', obj.pk, obj.get_status_display()
        )


def _zone_of(periodic_task: PeriodicTask | None) -> str:
    """The schedule's zone (UTC once it is deleted)."""
    schedule = periodic_task_schedule(periodic_task, describe=False) if periodic_task else None
    return schedule.timezone if schedule is not None else "UTC"
