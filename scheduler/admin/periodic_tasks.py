"""django-celery-beat's periodic-task admin, extended for the scheduler (the results admin, in
task_results.py, is extended the same way).

Their admins stay (list filters, stock schedule rows, the change form's crontab help); what
changes is where writes go: every save, delete, enable, disable, run and retry calls one
function of `scheduler.services`, so the admin validates and audits exactly as the CLI and the
API do. The form only translates: it runs the same validators to put each error on its field,
and the services' field names onto the form's (`params` is the `kwargs` field).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from datetime import datetime, tzinfo
from typing import Any, ClassVar, cast
from urllib.parse import urlencode
from zoneinfo import available_timezones

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, RequestDataTooBig, ValidationError
from django.core.validators import MaxLengthValidator
from django.db import models, transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, get_script_prefix, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timezone import localtime, now
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST
from django_celery_beat.admin import PeriodicTaskAdmin as StockPeriodicTaskAdmin
from django_celery_beat.admin import PeriodicTaskForm
from django_celery_beat.models import PeriodicTask

from config.queues import QUEUES
from scheduler.admin.backfills import BackfillActionMixin
from scheduler.admin.pauses import pause_step
from scheduler.admin.run_now import RunNowMixin
from scheduler.admin.schedule_preview import (
    STOCK_SCHEDULE_FIELDS,
    form_preview_response,
    render_schedule_preview,
)
from scheduler.catalog import CatalogEntry, load_catalog, overlap_resolved
from scheduler.core.durations import duration_written
from scheduler.core.json_input import MalformedJSON, read_json
from scheduler.core.masking import masked
from scheduler.models import AuditEntry, ScheduleOptions, ScheduleState, Source
from scheduler.schedules.declared import declared_in
from scheduler.schedules.parsing import ScheduleParseError, zone_named
from scheduler.schedules.pauses import pause_of
from scheduler.schedules.policies import (
    CatchUp,
    OverlapPolicy,
    catchup_summary,
    runs_left_summary,
)
from scheduler.schedules.preview import schedule_preview
from scheduler.selectors import schedule_next_run
from scheduler.services import (
    DESCRIPTION_MAX_LENGTH,
    JITTER_MAX,
    ScheduleError,
    params_from_json,
    policies_check,
    schedule_delete,
    schedule_parse,
    schedule_save,
    schedule_set_enabled_bulk,
    schedules_reset_to_code,
    schedules_resume,
    task_validate,
)

# The services name a task's parameters `params`; django-celery-beat's column is `kwargs`, and
# the end time is its `expires`.
FORM_FIELD_OF = {"params": "kwargs", "end_time": "expires"}
# The policies the form edits besides the stock start_time and expires, as the services name
# them (and so the form's fields).
POLICY_FORM_FIELDS = (
    "overlap",
    "catchup",
    "catchup_window",
    "jitter",
    "max_runs",
    "pause_after_failures",
)
AUDIT_ENTRIES_SHOWN = 20
RUN_PERMISSION = "django_celery_beat.change_periodictask"
TIME_ZONES = sorted(available_timezones())
# The stock admins are untyped: mypy infers their option tuples down to the exact length, so
# ours are declared as this to override them.
AdminOption = Any
OUTSIDE_CATALOG = "outside the catalog"
QUEUE_CHOICES = [
    ("", "The task's own queue"),
    *((name, f"{name}: {spec.purpose}") for name, spec in QUEUES.items()),
]


def _zone_of(periodic_task: PeriodicTask) -> tzinfo | None:
    options = options_of(periodic_task)
    try:
        return zone_named(options.timezone) if options is not None else None
    except ScheduleParseError:
        return None


def options_of(periodic_task: PeriodicTask) -> ScheduleOptions | None:
    try:
        options: ScheduleOptions = cast(Any, periodic_task).options
    except ScheduleOptions.DoesNotExist:
        return None
    return options


def history_url(periodic_task_name: str) -> str:
    """The run history of a periodic task: the results changelist filtered on its name."""
    changelist = _results_changelist(get_script_prefix())
    return f"{changelist}?{urlencode({'periodic_task_name': periodic_task_name})}"


@functools.lru_cache(maxsize=8)
def _results_changelist(script_prefix: str) -> str:
    # Asked for every row of the periodic tasks list: reversing costs more than the cell.
    return reverse("admin:django_celery_results_taskresult_changelist")


def format_duration(started: datetime | None, done: datetime | None) -> str:
    if started is None or done is None or done < started:
        return ""
    seconds = (done - started).total_seconds()
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s"


# --- The periodic task form ----------------------------------------------------------------------


class CatalogTaskField(forms.ChoiceField):
    """A select of the catalog's tasks.

    Any submitted name passes the field: `task_validate` then rejects a name outside the
    catalog with its own message, which lists the tasks that exist.
    """

    def valid_value(self, value: Any) -> bool:
        return True


class TimeZoneInput(forms.TextInput):
    """A text input suggesting IANA zone names, so any zone can be typed and none misspelt."""

    def __init__(self) -> None:
        super().__init__(attrs={"list": "scheduler-time-zones", "autocomplete": "off"})

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        options = format_html_join("", '<option value="{}">', ((zone,) for zone in TIME_ZONES))
        datalist = format_html('<datalist id="scheduler-time-zones">{}</datalist>', options)
        return format_html("{}{}", super().render(name, value, attrs, renderer), datalist)


def overlap_choices(entry: CatalogEntry | None) -> list[tuple[str, str]]:
    """The task's default first (naming the policy it stands for now), then the explicit ones."""
    default = str(OverlapPolicy.DEFAULT.label)
    if entry is not None:
        default += f" (currently: {entry.overlap.value})"
    return [
        (OverlapPolicy.DEFAULT.value, default),
        *((value, label) for value, label in OverlapPolicy.choices if value != "default"),
    ]


def params_help(entry: CatalogEntry | None) -> SafeString:
    if entry is None:
        body = format_html("{}", "Choose a task to see the parameters it takes.")
    else:
        body = format_html(
            "<strong>{}</strong>: {}<br>Parameters as a JSON object, checked against this "
            "JSON Schema:<pre>{}</pre>",
            entry.name,
            entry.description,
            json.dumps(entry.schema(), indent=2),
        )
    return format_html('<div id="scheduler-params-help">{}</div>', body)


class PeriodicTaskScheduleForm(PeriodicTaskForm):
    # The stock "registered task" select lists every Celery task; only catalog tasks may run.
    regtask: AdminOption = None
    task: AdminOption = CatalogTaskField(label="Task", help_text="A task from the catalog.")
    schedule = forms.CharField(
        label="Schedule",
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"class": "vTextField"}),
        help_text=(
            "Plain English or cron, e.g. <code>every monday at 8am</code>, "
            "<code>every 15 minutes</code>, <code>tomorrow at 9am</code>, "
            "<code>0 9 * * 1</code>. Leave it empty to choose one of the stock schedules "
            "below instead."
        ),
    )
    timezone = forms.CharField(
        label="Time zone",
        max_length=63,
        widget=TimeZoneInput(),
        help_text="The IANA zone the schedule is read in, e.g. Europe/London.",
    )
    overlap = forms.ChoiceField(
        label="Overlap policy",
        required=False,
        choices=overlap_choices(None),
        help_text="The task's default follows the catalog when its declared policy changes.",
    )
    catchup = forms.ChoiceField(
        label="Catch-up",
        required=False,
        choices=CatchUp.choices,
        help_text=(
            "Runs missed while beat was down. The misfire policies of earlier versions are "
            "presets of it: <em>skip</em> is None, <em>run once</em> is the latest with no "
            "window."
        ),
    )
    # Text, not numbers: the services read "1h" as a duration and word every error.
    catchup_window = forms.CharField(
        label="Catch-up window",
        required=False,
        max_length=20,
        help_text=(
            "Catch up only runs missed by less than this: seconds, or e.g. <code>30m</code>, "
            "<code>1h</code>, <code>1d</code>. Empty: however late."
        ),
    )
    jitter = forms.CharField(
        label="Jitter",
        required=False,
        max_length=20,
        help_text=(
            f"Publish each run up to this long after its due time (0 to {JITTER_MAX} seconds, "
            "or e.g. <code>30s</code>, <code>5m</code>), to spread load; the same delay for a "
            "run whichever beat publishes it. Empty or 0: on time."
        ),
    )
    max_runs = forms.CharField(
        label="Max runs",
        required=False,
        max_length=20,
        widget=forms.NumberInput(attrs={"min": 1}),
        help_text=(
            "Stop after this many runs: beat counts them down and disables the schedule at 0. "
            "Changing it counts again from the new number. Empty: no limit."
        ),
    )
    pause_after_failures = forms.CharField(
        label="Pause after failures",
        required=False,
        max_length=20,
        widget=forms.NumberInput(attrs={"min": 1}),
        help_text="Pause the schedule after this many failed runs in a row. Empty: never.",
    )
    queue = forms.ChoiceField(label="Queue", required=False, choices=QUEUE_CHOICES)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The phrase to resolve on save; None keeps the schedule columns as the form sets them.
        self.schedule_phrase: str | None = None
        self.params: Any = {}
        # The parameters' errors by parameter, for the typed inputs to show each on its own.
        self.param_errors: dict[str, list[str]] = {}
        catalog = load_catalog()
        instance = self.instance
        options = options_of(instance) if not instance._state.adding else None
        if options is not None:
            self.initial.setdefault("schedule", options.phrase)
            self.initial.setdefault("timezone", options.timezone)
            self.initial.setdefault("overlap", options.overlap)
            self.initial.setdefault("catchup", options.catchup)
            self.initial.setdefault("catchup_window", options.catchup_window)
            self.initial.setdefault("jitter", options.jitter)
            self.initial.setdefault("max_runs", options.max_runs)
            self.initial.setdefault("pause_after_failures", options.pause_after_failures)
        else:
            crontab = instance.crontab if instance.crontab_id else None
            zone = str(crontab.timezone) if crontab is not None else settings.TIME_ZONE
            self.initial.setdefault("timezone", zone)
            self.initial.setdefault("overlap", OverlapPolicy.DEFAULT.value)
            self.initial.setdefault("catchup", CatchUp.LATEST.value)
            self.initial.setdefault("jitter", 0)
        if "start_time" in self.fields:
            self.fields["start_time"].label = "Start time"
            self.fields["start_time"].help_text = "No run before it. Empty: no start time."
        if "expires" in self.fields:
            self.fields["expires"].label = "End time"
            self.fields["expires"].help_text = (
                "No run from then on: the schedule stops and is disabled by itself. It must be "
                "after the start time. Empty: never."
            )
        if "task" in self.fields:
            choices: list[tuple[str, str]] = [("", "---------")]
            choices += [(entry.name, f"{entry.name}: {entry.description}") for entry in catalog]
            if instance.task and instance.task not in catalog:
                # Shown as it is, so staff see what the row runs; saving it fails with a message.
                choices.append((instance.task, f"{instance.task} ({OUTSIDE_CATALOG})"))
            cast(forms.ChoiceField, self.fields["task"]).choices = choices
        if "overlap" in self.fields:
            current = catalog.get(instance.task) if instance.task in catalog else None
            cast(forms.ChoiceField, self.fields["overlap"]).choices = overlap_choices(current)
        if "kwargs" in self.fields:
            field = self.fields["kwargs"]
            field.label = "Parameters (JSON)"
            current = catalog.get(instance.task) if instance.task in catalog else None
            field.help_text = params_help(current)
        if "queue" in self.fields and instance.queue and instance.queue not in QUEUES:
            # Shown as it is; saving it fails with the list of queues.
            choices = [*QUEUE_CHOICES, (instance.queue, f"{instance.queue} (not a queue of ours)")]
            cast(forms.ChoiceField, self.fields["queue"]).choices = choices
        if "description" in self.fields:
            self.fields["description"].validators.append(MaxLengthValidator(DESCRIPTION_MAX_LENGTH))

    def add_service_errors(self, exc: ScheduleError, *, skip: Iterable[str] = ()) -> None:
        """Put each of a ScheduleError's messages on the form field it names."""
        for name, messages_ in exc.errors.items():
            field = FORM_FIELD_OF.get(name, name)
            if field in skip:
                continue
            if field in self.fields:
                for message in messages_:
                    self.add_error(field, message)
            else:
                self.add_error(None, [f"{name}: {message}" for message in messages_])

    def clean_kwargs(self) -> str:
        text: str = self.cleaned_data.get("kwargs") or "{}"
        try:
            self.params = params_from_json(text)
        except ScheduleError as exc:
            raise ValidationError(exc.errors.get("params") or [str(exc)]) from exc
        return text

    def clean_headers(self) -> str:
        # Empty would be stored as NULL by PeriodicTask.save(), which the column refuses.
        text: str = self.cleaned_data.get("headers") or "{}"
        try:
            headers = read_json(text)
        except MalformedJSON as exc:
            raise ValidationError(str(exc)) from exc
        if not isinstance(headers, dict):
            raise ValidationError("must be a JSON object")
        return text

    def clean(self) -> dict[str, Any]:
        # Not PeriodicTaskForm.clean: it reads the registered-task select this form removes.
        data: dict[str, Any] = forms.ModelForm.clean(self) or {}
        if data.get("expire_seconds") is not None and data.get("expires"):
            self.add_error("expires", "Only one can be set, in expires and expire_seconds.")
        self._check_task(data)
        self._check_schedule(data)
        self._check_policies(data)
        return data

    def policies(self) -> dict[str, Any]:
        """The policies as the form holds them, as the services take them (empty jitter: 0)."""
        data = self.cleaned_data
        values = {name: data.get(name) for name in POLICY_FORM_FIELDS if name in self.fields}
        for name in ("overlap", "catchup"):  # empty: left as it is (a new row's default)
            if name in values:
                values[name] = values[name] or None
        if "jitter" in values:
            values["jitter"] = values["jitter"] or 0
        return values

    def _check_policies(self, data: dict[str, Any]) -> None:
        """The services' checks of the policies, each error on its field; the end time against
        the start time (both as edited), and an end in the past only when it changed."""
        given = self.policies()
        for name, column in (("start_time", "start_time"), ("end_time", "expires")):
            if column in self.fields and not self.has_error(column):
                given[name] = data.get(column)
        instance = self.instance
        try:
            policies_check(
                given,
                tz=data.get("timezone"),
                end_time=None if instance._state.adding else instance.expires,
            )
        except ScheduleError as exc:
            self.add_service_errors(exc)

    def _check_task(self, data: dict[str, Any]) -> None:
        task = data.get("task")
        if not task:
            return
        bad_json = self.has_error("kwargs")
        instance = self.instance
        # The row's own task, unchanged: outside the catalog, it is refused as everywhere.
        stored_in = instance.name if not instance._state.adding and task == instance.task else None
        try:
            task_validate(
                task=task,
                params={} if bad_json else self.params,
                queue=data.get("queue") or None,
                stored_in=stored_in,
            )
        except ScheduleError as exc:
            # Unreadable JSON already says what is wrong with the parameters.
            self.add_service_errors(exc, skip=["kwargs"] if bad_json else [])
            self.param_errors = exc.param_errors

    def _check_schedule(self, data: dict[str, Any]) -> None:
        phrase = " ".join((data.get("schedule") or "").split())
        tz = data.get("timezone")
        if tz is None:
            return  # the field's own error says it is required
        stock_changed = any(name in self.changed_data for name in STOCK_SCHEDULE_FIELDS)
        phrase_changed = "schedule" in self.changed_data or "timezone" in self.changed_data
        if phrase and phrase_changed:
            if stock_changed:
                self.add_error(
                    "schedule",
                    "Write the schedule here or choose a stock schedule below, not both: "
                    "clear one of them.",
                )
                return
            try:
                schedule_parse(schedule=phrase, tz=tz)
            except ScheduleError as exc:
                self.add_service_errors(exc)
                return
            self.schedule_phrase = phrase
            return
        # Unchanged phrase (the row keeps its schedule) or the stock fields: the zone still
        # has to be a real one.
        try:
            zone_named(tz)
        except ScheduleParseError as exc:
            self.add_error("timezone", str(exc))
            return
        crontab = data.get("crontab")
        zone_changed = "timezone" in self.changed_data
        if not phrase and zone_changed and crontab is not None and str(crontab.timezone) != tz:
            # Beat reads a crontab row's own zone: a different one here would be ignored.
            self.add_error(
                "timezone",
                f"The crontab schedule chosen below runs in its own time zone, "
                f"{crontab.timezone}: choose a crontab in {tz}, or write the schedule above.",
            )
        if not phrase and not any(data.get(name) for name in STOCK_SCHEDULE_FIELDS):
            self.add_error(
                "schedule",
                "Write a schedule (e.g. 'every day at 2am' or '0 2 * * *'), or choose one of "
                "the stock schedules below.",
            )

    def validate_unique(self) -> None:
        if self.schedule_phrase is None and not self.has_error("schedule"):
            super().validate_unique()  # the stock checks: one schedule, clocked is one-off
            return
        # The phrase sets the schedule columns on save: only the name must be unique now.
        try:
            models.Model.validate_unique(self.instance)
        except ValidationError as exc:
            self.add_error(None, exc)


# --- The periodic task admin ---------------------------------------------------------------------


admin.site.unregister(PeriodicTask)


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(RunNowMixin, BackfillActionMixin, StockPeriodicTaskAdmin):
    form = PeriodicTaskScheduleForm
    change_form_template = "admin/scheduler/periodictask/change_form.html"
    # Compact cells that fit a 1,280 px screen (tests/scheduler/admin/test_admin_browser.py).
    change_list_template = "admin/scheduler/periodictask/change_list.html"
    # Compact, merged cells so that every column fits 1,280 px: the task under the name, the
    # zone under the schedule, the last run (its status linking to the run history, when it
    # ended, how long it took) in one cell. The admin's cost is per cell too, and this list
    # must stay within 1.5x the stock one (benchmarks/history_scale.py) while showing more.
    list_display: AdminOption = (
        "name_and_task",
        "is_enabled",
        "schedule_summary",
        "last_status",
        "next_run",
    )
    list_display_links: AdminOption = ("name_and_task",)
    actions: AdminOption = (
        "pause_tasks",
        "resume_tasks",
        "enable_tasks",
        "disable_tasks",
        "toggle_tasks",
        "run_now",
        "backfill",
        "reset_to_code",
    )
    fieldsets: ClassVar[AdminOption] = (
        (
            None,
            {
                "fields": ("name", "task", "enabled", "pause", "description"),
                "classes": ("extrapretty", "wide"),
            },
        ),
        ("Parameters", {"fields": ("kwargs",), "classes": ("extrapretty", "wide")}),
        (
            "Schedule",
            {
                "fields": (
                    "schedule",
                    "timezone",
                    "next_runs",
                    "interval",
                    "crontab",
                    "crontab_translation",
                    "solar",
                    "clocked",
                    "last_run_at",
                    "one_off",
                ),
                "classes": ("extrapretty", "wide"),
            },
        ),
        (
            "Policies",
            {
                "fields": (
                    "overlap",
                    "catchup",
                    "catchup_window",
                    "jitter",
                    "start_time",
                    "expires",
                    "max_runs",
                    "runs_left",
                    "pause_after_failures",
                ),
                "classes": ("extrapretty", "wide"),
            },
        ),
        (
            "Execution options",
            {
                "fields": (
                    "queue",
                    "expire_seconds",
                    "priority",
                    "exchange",
                    "routing_key",
                    "headers",
                ),
                "classes": ("extrapretty", "wide", "collapse"),
            },
        ),
        (
            "History",
            {
                "fields": ("declared_in_code", "last_run", "run_history", "audit_trail"),
                "classes": ("extrapretty", "wide"),
            },
        ),
    )
    readonly_fields: ClassVar[AdminOption] = (
        "pause",
        "last_run_at",
        "crontab_translation",
        "next_runs",
        "last_run",
        "run_history",
        "audit_trail",
        "declared_in_code",
        "runs_left",
    )

    def get_fieldsets(self, request: HttpRequest, obj: PeriodicTask | None = None) -> Any:
        if obj is not None:
            return self.fieldsets
        # A task being added has no runs and no history yet; its preview follows the form.
        adding = []
        for title, options in self.fieldsets:
            fields = [
                name
                for name in options["fields"]
                if name not in ("last_run_at", "crontab_translation", "runs_left", "pause")
            ]
            if title != "History":
                adding.append((title, {**options, "fields": fields}))
        return adding

    def get_queryset(self, request: HttpRequest) -> QuerySet[PeriodicTask]:
        # The latest run of each periodic task, read from its state row (kept up to date as
        # results are stored): a primary-key lookup per row, never a search of the history.
        state = ScheduleState.objects.filter(periodic_task_name=OuterRef("name"))
        queryset: QuerySet[PeriodicTask] = super().get_queryset(request)
        return queryset.select_related("options__paused_by", "declared").annotate(
            last_status=Subquery(state.values("status")[:1]),
            last_started=Subquery(state.values("started_at")[:1]),
            last_done=Subquery(state.values("done_at")[:1]),
            last_result_pk=Subquery(state.values("result_id")[:1]),
        )

    # --- URLs and views --------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        info = (self.opts.app_label, self.opts.model_name)
        urls: list[URLPattern] = [
            path(
                "<path:object_id>/run-now/",
                self.admin_site.admin_view(require_POST(self.run_now_view)),
                name="{}_{}_run_now".format(*info),
            ),
            # Not admin_view: a JSON endpoint answers 401/403 in JSON rather than sending the
            # request to the login page. The same CSRF check and no caching, though.
            path(
                "params-check/",
                csrf_protect(never_cache(self.params_check_view)),
                name="{}_{}_params_check".format(*info),
            ),
            # Before the stock URLs: their "<object_id>/" would take "preview/" for an id.
            path(
                "preview/",
                self.admin_site.admin_view(require_POST(self.preview_view)),
                name="{}_{}_preview".format(*info),
            ),
            path(
                "<path:object_id>/preview/",
                self.admin_site.admin_view(require_POST(self.preview_view)),
                name="{}_{}_preview_change".format(*info),
            ),
        ]
        return urls + super().get_urls()

    def preview_view(self, request: HttpRequest, object_id: str | None = None) -> JsonResponse:
        """What the form's values as posted would do, saved (the form's live preview)."""
        obj = None
        if object_id is not None:
            obj = self.get_object(request, unquote(object_id))
            if obj is None:
                return JsonResponse(
                    {"detail": f"no periodic task with id {object_id!r}"}, status=404
                )
            allowed = self.has_change_permission(request, obj)
        else:
            allowed = self.has_add_permission(request)
        if not allowed:
            verb = "change" if obj is not None else "add"
            return JsonResponse({"detail": f"You may not {verb} periodic tasks."}, status=403)
        form_class = self.get_form(request, obj, change=obj is not None)
        form = form_class(request.POST, instance=obj if obj is not None else self.model())
        return form_preview_response(form, stored=obj, now=now())

    def run_now_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"no periodic task with id {object_id!r}")
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        self.run_named(request, [obj.name])
        return HttpResponseRedirect(
            reverse(
                "admin:django_celery_beat_periodictask_change",
                args=[obj.pk],
                current_app=self.admin_site.name,
            )
        )

    def params_check_view(self, request: HttpRequest) -> JsonResponse:
        """The typed parameter inputs' check as staff type: `{"task": ..., "params": {...}}`
        checked by `task_validate`, as saving checks it. 200 with the checked, defaulted
        parameters; 400 with the messages by field (`params` by parameter); nothing is saved."""
        if not request.user.is_authenticated:
            return JsonResponse({"detail": "not signed in"}, status=401)
        may_edit = self.has_add_permission(request) or self.has_change_permission(request)
        if not self.admin_site.has_permission(request) or not may_edit:
            return JsonResponse(
                {"detail": "permission denied: adding or changing periodic tasks"}, status=403
            )
        if request.method != "POST":
            return JsonResponse({"detail": "POST the task and its parameters"}, status=405)
        try:
            body = read_json(request.body)
        except RequestDataTooBig:
            return JsonResponse(
                {"detail": f"the body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"},
                status=413,
            )
        except MalformedJSON as exc:
            return JsonResponse({"body": [str(exc)]}, status=400)
        if not isinstance(body, dict):
            return JsonResponse({"body": ["must be a JSON object"]}, status=400)
        task = body.get("task")
        if not isinstance(task, str) or not task:
            return JsonResponse({"task": ["is required: the name of a catalog task"]}, status=400)
        try:
            checked = task_validate(task=task, params=body.get("params", {}))
        except ScheduleError as exc:
            errors: dict[str, Any] = dict(exc.errors)
            if exc.param_errors:
                errors["params"] = exc.param_errors
            return JsonResponse(errors, status=400)
        return JsonResponse({"task": checked.task, "params": checked.params})

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = dict(extra_context or {})
        catalog = load_catalog()
        extra_context["catalog_params_help"] = {"": str(params_help(None))} | {
            entry.name: str(params_help(entry)) for entry in catalog
        }
        # What the typed parameter inputs are built from, and where they are checked.
        extra_context["catalog_params_schemas"] = {entry.name: entry.schema() for entry in catalog}
        extra_context["params_check_url"] = reverse(
            "admin:django_celery_beat_periodictask_params_check", current_app=self.admin_site.name
        )
        if object_id is not None:
            extra_context["run_now_url"] = reverse(
                "admin:django_celery_beat_periodictask_run_now",
                args=[object_id],
                current_app=self.admin_site.name,
            )
        # The live preview is for those who may save what they edit.
        may_save = (
            self.has_change_permission(request) if object_id else self.has_add_permission(request)
        )
        if may_save:
            name, args = ("preview_change", [object_id]) if object_id else ("preview", [])
            extra_context["schedule_preview_url"] = reverse(
                f"admin:django_celery_beat_periodictask_{name}",
                args=args,
                current_app=self.admin_site.name,
            )
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ScheduleError as exc:
            # The form runs the services' checks, so only a race (another save in between)
            # gets here; the admin's transaction has rolled back: nothing was saved.
            self.message_user(request, f"Nothing was saved: {exc}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    # --- Writes: each one call of a service ------------------------------------------------------

    def save_model(
        self, request: HttpRequest, obj: PeriodicTask, form: forms.Form, change: bool
    ) -> None:
        assert isinstance(form, PeriodicTaskScheduleForm)
        data = form.cleaned_data
        schedule_save(
            periodic_task=obj,
            schedule=form.schedule_phrase,
            tz=data["timezone"],
            **form.policies(),
            actor=request.user,
            source=Source.ADMIN,
        )

    def delete_model(self, request: HttpRequest, obj: PeriodicTask) -> None:
        schedule_delete(name=obj.name, actor=request.user, source=Source.ADMIN)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        with transaction.atomic():
            for name in queryset.values_list("name", flat=True):
                schedule_delete(name=name, actor=request.user, source=Source.ADMIN)

    def _set_enabled(
        self, request: HttpRequest, queryset: QuerySet[PeriodicTask], *, enabled: bool
    ) -> None:
        names = list(queryset.values_list("name", flat=True))
        verb = "enabled" if enabled else "disabled"
        try:
            changed = schedule_set_enabled_bulk(
                names=names, enabled=enabled, actor=request.user, source=Source.ADMIN
            )
        except ScheduleError as exc:  # a task outside the catalog: none is enabled
            self.message_user(request, f"Nothing was {verb}: {exc}", messages.ERROR)
            return
        unchanged = len(names) - changed
        note = f" ({unchanged} already {verb})" if unchanged else ""
        self.message_user(request, f"{_tasks(changed)} {verb}{note}.", messages.SUCCESS)

    @admin.action(description="Pause selected tasks (why, until when)…", permissions=["change"])
    def pause_tasks(
        self, request: HttpRequest, queryset: QuerySet[PeriodicTask]
    ) -> TemplateResponse | None:
        rows = list(queryset.order_by("name").values_list("pk", "name"))
        return pause_step(
            self,
            request,
            names=[name for _, name in rows],
            selected=rows,
            action="pause_tasks",
            title="Pause periodic tasks",
        )

    @admin.action(description="Resume selected tasks", permissions=["change"])
    def resume_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        names = list(queryset.values_list("name", flat=True))
        try:
            resumed = schedules_resume(names=names, actor=request.user, source=Source.ADMIN)
        except ScheduleError as exc:  # a task outside the catalog: none is resumed
            self.message_user(request, f"Nothing was resumed: {exc}", messages.ERROR)
            return
        unchanged = len(names) - len(resumed)
        note = f" ({unchanged} not paused)" if unchanged else ""
        self.message_user(request, f"{_tasks(len(resumed))} resumed{note}.", messages.SUCCESS)

    @admin.action(description="Enable selected tasks", permissions=["change"])
    def enable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        self._set_enabled(request, queryset, enabled=True)

    @admin.action(description="Disable selected tasks", permissions=["change"])
    def disable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        self._set_enabled(request, queryset, enabled=False)

    @admin.action(description="Toggle activity of selected tasks", permissions=["change"])
    def toggle_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        states = dict(queryset.values_list("name", "enabled"))
        try:
            with transaction.atomic():  # both halves or neither
                enabled = schedule_set_enabled_bulk(
                    names=[name for name, on in states.items() if not on],
                    enabled=True,
                    actor=request.user,
                    source=Source.ADMIN,
                )
                disabled = schedule_set_enabled_bulk(
                    names=[name for name, on in states.items() if on],
                    enabled=False,
                    actor=request.user,
                    source=Source.ADMIN,
                )
        except ScheduleError as exc:  # a task outside the catalog: nothing changes
            self.message_user(request, f"Nothing was toggled: {exc}", messages.ERROR)
            return
        self.message_user(
            request, f"{_tasks(enabled)} enabled, {_tasks(disabled)} disabled.", messages.SUCCESS
        )

    @admin.action(description="Run selected tasks now", permissions=["change"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        self.run_named(request, list(queryset.values_list("name", flat=True)))

    # --- Columns and read-only fields ------------------------------------------------------------

    @admin.display(description="Name / task", ordering="name")
    def name_and_task(self, obj: PeriodicTask) -> str:
        outside = obj.task not in load_catalog()
        return format_html(
            '{}<span class="scheduler-sub{}">{}{}</span>{}{}',
            obj.name,
            " scheduler-outside" if outside else "",
            obj.task,
            f" — {OUTSIDE_CATALOG}" if outside else "",
            self._declared_note(obj),
            self._pause_note(obj),
        )

    def _pause_note(self, obj: PeriodicTask) -> str:
        """ "paused by alice until 2027-03-01 09:00 CET: deploy freeze" (in the schedule's zone)."""
        pause = pause_of(obj)
        if pause is None:
            return ""
        return format_html(
            '<span class="scheduler-sub scheduler-paused">{}</span>', pause.text(_zone_of(obj))
        )

    @admin.display(description="Paused")
    def pause(self, obj: PeriodicTask) -> str:
        pause = pause_of(obj)
        if pause is None:
            return "no" if obj.enabled or obj.pk is None else "no (disabled, without a note)"
        return format_html(
            '{}<br><span class="help">since {}</span>',
            pause.text(_zone_of(obj)),
            f"{localtime(pause.at, _zone_of(obj)):%Y-%m-%d %H:%M %Z}",
        )

    def _declared_note(self, obj: PeriodicTask) -> str:
        """ "defined in code: <file>", and the fields staff changed since the last sync."""
        declared = declared_in(obj)
        if declared is None:
            return ""
        return format_html(
            '<span class="scheduler-sub scheduler-declared">defined in code: {}{}</span>',
            declared.origin,
            f" — changed here: {', '.join(declared.drift)}" if declared.drift else "",
        )

    @admin.display(description="Defined in code")
    def declared_in_code(self, obj: PeriodicTask) -> str:
        declared = declared_in(obj)
        if declared is None:
            return "no: made here or from the API/CLI; sync leaves it alone"
        if not declared.drift:
            return format_html("{}: in step with the code", declared.origin)
        rows = format_html_join(
            "",
            "<li>{}: {} here, {} in code</li>",
            ((n, h, c) for n, (h, c) in declared.drift.items()),
        )
        return format_html(
            "{}: changed here since the last sync (kept by <code>scheduler sync</code>; the "
            '"Reset to code" action puts it back)<ul>{}</ul>',
            declared.origin,
            rows,
        )

    @admin.action(description="Reset selected to code (declared schedules)", permissions=["change"])
    def reset_to_code(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        names = list(queryset.filter(declared__isnull=False).values_list("name", flat=True))
        if not names:
            self.message_user(
                request, "None of the selected tasks is declared in code.", messages.WARNING
            )
            return
        report = schedules_reset_to_code(names=names, actor=request.user, source=Source.ADMIN)
        for error in report.errors:
            self.message_user(
                request, f"{error.name} was not reset: {error.message}", messages.ERROR
            )
        reset = [c.name for c in report.changes if c.applied]
        if reset:
            self.message_user(request, f"Reset to code: {', '.join(reset)}.", messages.SUCCESS)
        elif not report.errors:
            self.message_user(request, "Already as the code declares them.", messages.INFO)

    @admin.display(description="On", boolean=True, ordering="enabled")
    def is_enabled(self, obj: PeriodicTask) -> bool:
        return bool(obj.enabled)

    @admin.display(description="Schedule")
    def schedule_summary(self, obj: PeriodicTask) -> str:
        options = options_of(obj)
        zone_name = options.timezone if options is not None else ""
        if obj.clocked is not None:
            # The time itself: a relative phrase ("in 5 minutes") means nothing a day later.
            zone = zone_named(zone_name) if zone_name else None
            at = localtime(obj.clocked.clocked_time, zone)
            return format_html(
                '<span class="scheduler-nowrap">once, at {}</span>', f"{at:%Y-%m-%d %H:%M %Z}"
            )
        policies = _policies_line(options)
        if options is not None and options.phrase:
            # A long zone (America/Argentina/Buenos_Aires) breaks after its slashes only.
            zone_parts = format_html_join(
                SafeString("/<wbr>"), "{}", ((part,) for part in zone_name.split("/"))
            )
            return format_html(
                '{}<span class="scheduler-sub">{}</span>{}', options.phrase, zone_parts, policies
            )
        return format_html("{}{}", str(obj.scheduler or ""), policies)

    @admin.display(description="Last run", ordering="last_status")
    def last_status(self, obj: PeriodicTask) -> str:
        status = getattr(obj, "last_status", None)
        if not status:
            return format_html('<a href="{}">{}</a>', history_url(obj.name), "never")
        started, done = getattr(obj, "last_started", None), getattr(obj, "last_done", None)
        at = done or started
        return format_html(
            '<a href="{}" class="scheduler-last-{}">{}</a><span class="scheduler-sub">{}{}</span>',
            history_url(obj.name),
            status.lower(),
            status,
            f"{localtime(at):%m-%d %H:%M}" if at else "",
            f" · {duration}" if (duration := format_duration(started, done)) else "",
        )

    @admin.display(description="Next run")
    def next_run(self, obj: PeriodicTask) -> str:
        at = schedule_next_run(obj, now=now())
        if at is None:
            return ""
        options = options_of(obj)
        zone = zone_named(options.timezone) if options is not None else None
        return format_html(
            '<span class="scheduler-nowrap">{}</span>', f"{localtime(at, zone):%m-%d %H:%M %Z}"
        )

    @admin.display(description="Run history")
    def run_history(self, obj: PeriodicTask) -> str:
        if obj.pk is None:
            return ""
        return format_html('<a href="{}">Runs</a>', history_url(obj.name))

    @admin.display(description="Last run")
    def last_run(self, obj: PeriodicTask) -> str:
        status = getattr(obj, "last_status", None)
        result_pk = getattr(obj, "last_result_pk", None)
        if not status or result_pk is None:
            return "No run recorded yet."
        done = getattr(obj, "last_done", None)
        duration = format_duration(getattr(obj, "last_started", None), done)
        link = reverse("admin:django_celery_results_taskresult_change", args=[result_pk])
        return format_html(
            '<a href="{}">{}</a>{}{}',
            link,
            status,
            f", finished {localtime(done):%Y-%m-%d %H:%M:%S %Z}" if done else "",
            f", took {duration}" if duration else "",
        )

    @admin.display(description="Next runs")
    def next_runs(self, obj: PeriodicTask) -> str:
        if obj.pk is None:
            return render_schedule_preview(None)
        task_overlap = overlap_resolved(obj.task, None).value
        return render_schedule_preview(schedule_preview(obj, now=now(), task_overlap=task_overlap))

    @admin.display(description="Audit trail")
    def audit_trail(self, obj: PeriodicTask) -> str:
        if obj.pk is None:
            return ""
        entries = list(
            AuditEntry.objects.filter(periodic_task=obj).select_related("actor")[
                : AUDIT_ENTRIES_SHOWN + 1
            ]
        )
        if not entries:
            return "No changes recorded."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    f"{localtime(entry.created_at):%Y-%m-%d %H:%M:%S %Z}",
                    entry.get_action_display(),
                    entry.actor or entry.actor_name,  # a command line's OS user
                    entry.get_source_display(),
                    _changes(entry.changes),
                )
                for entry in entries[:AUDIT_ENTRIES_SHOWN]
            ),
        )
        more = (
            format_html("<p>Only the latest {} changes are shown.</p>", AUDIT_ENTRIES_SHOWN)
            if len(entries) > AUDIT_ENTRIES_SHOWN
            else ""
        )
        return format_html(
            '<table class="scheduler-audit"><thead><tr><th>When</th><th>Action</th>'
            "<th>Who</th><th>Via</th><th>Changes</th></tr></thead><tbody>{}</tbody></table>{}",
            rows,
            more,
        )

    # Shown when a user may view but not change: the form's own fields are then read-only
    # fields, looked up here by name.
    def schedule(self, obj: PeriodicTask) -> str:
        options = options_of(obj)
        return options.phrase if options is not None else ""

    def timezone(self, obj: PeriodicTask) -> str:
        options = options_of(obj)
        return options.timezone if options is not None else ""

    def overlap(self, obj: PeriodicTask) -> str:
        options = options_of(obj)
        policy = options.overlap if options is not None else OverlapPolicy.DEFAULT
        if policy != OverlapPolicy.DEFAULT:
            return str(OverlapPolicy(policy).label)
        current = overlap_resolved(obj.task, None).value
        return f"{OverlapPolicy.DEFAULT.label} (currently: {current})"

    def catchup(self, obj: PeriodicTask) -> str:
        options = options_of(obj)
        if options is None:
            return ""
        return catchup_summary(options.catchup, options.catchup_window)

    def catchup_window(self, obj: PeriodicTask) -> str:
        options = options_of(obj)
        window = options.catchup_window if options is not None else None
        return duration_written(window) if window is not None else "no limit"

    def jitter(self, obj: PeriodicTask) -> str:
        options = options_of(obj)
        return duration_written(options.jitter) if options is not None else "0"

    def max_runs(self, obj: PeriodicTask) -> str:
        options = options_of(obj)
        limit = options.max_runs if options is not None else None
        return str(limit) if limit is not None else "no limit"

    def pause_after_failures(self, obj: PeriodicTask) -> str:
        options = options_of(obj)
        failures = options.pause_after_failures if options is not None else None
        return f"after {failures} failed runs in a row" if failures is not None else "never"

    @admin.display(description="Runs left")
    def runs_left(self, obj: PeriodicTask) -> str:
        options = options_of(obj)
        if options is None or options.max_runs is None:
            return "no limit"
        return runs_left_summary(options.remaining_runs, options.max_runs)


def _policies_line(options: ScheduleOptions | None) -> str:
    """The list's line of policies under the schedule: catch-up, and the runs left."""
    if options is None:
        return ""
    parts = [f"catch-up: {catchup_summary(options.catchup, options.catchup_window)}"]
    if options.max_runs is not None:
        parts.append(runs_left_summary(options.remaining_runs, options.max_runs))
    return format_html('<span class="scheduler-sub">{}</span>', " · ".join(parts))


def _tasks(count: int) -> str:
    return f"{count} task" if count == 1 else f"{count} tasks"


def _changes(changes: dict[str, Any]) -> str:
    def short(value: Any) -> str:
        text = json.dumps(value, ensure_ascii=False, default=str)
        return text if len(text) <= 80 else text[:77] + "..."

    return format_html_join(
        "",
        "<div><strong>{}</strong>: {} &rarr; {}</div>",
        ((name, short(old), short(new)) for name, (old, new) in sorted(masked(changes).items())),
    )
