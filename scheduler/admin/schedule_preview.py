"""The live preview of the periodic task form: what the schedule being edited will do, before
it is saved.

The form's script posts the form as it stands (debounced, as staff type) to the admin's
`preview/` URL (`<id>/preview/` on a change page). The values are read by the admin's own form,
so a bad value gets the message saving it would get (a 400 naming the field); the good ones
build an unsaved PeriodicTask with unsaved schedule rows and options, which
`scheduler.schedules.preview.schedule_preview` reads as it reads a saved one. Nothing is written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.http import JsonResponse, QueryDict
from django.utils.html import format_html, format_html_join
from django_celery_beat.models import PeriodicTask

from scheduler.catalog import overlap_resolved
from scheduler.models import ScheduleOptions
from scheduler.schedules.policies import CATCHUP_PRESETS, CatchUp, MisfirePolicy, OverlapPolicy
from scheduler.schedules.preview import (
    SchedulePreview,
    format_run,
    format_utc,
    schedule_preview,
)
from scheduler.schedules.rows import options_of
from scheduler.services import (
    ScheduleError,
    policies_check,
    schedule_fields_unsaved,
    schedule_parse,
)

STOCK_SCHEDULE_FIELDS = ("interval", "crontab", "solar", "clocked")
# The form fields a preview reads: an error on one of them is the preview's answer. Errors
# elsewhere (no name or task yet, parameters) do not stop it.
PREVIEW_FIELDS = frozenset(
    {
        "schedule",
        "timezone",
        *STOCK_SCHEDULE_FIELDS,
        "start_time",
        "expires",
        "one_off",
        "enabled",
        "overlap",
        "misfire",
        "catchup",
        "catchup_window",
        "jitter",
        "max_runs",
    }
)
NO_SCHEDULE_YET = "Write a schedule (or choose a stock one) to see its next runs here."
NO_SCHEDULE_YET_HTML = format_html('<p class="scheduler-preview-note">{}</p>', NO_SCHEDULE_YET)
# The services name the schedule's fields as the form does, but for the parameters.
_FORM_FIELD_OF = {"params": "kwargs"}


class ScheduleOptionsFields(forms.Form):
    """The schedule options a form may post without being fields of the admin's form: read
    with the bounds of their columns, and only when posted."""

    catchup = forms.ChoiceField(label="Catch-up", choices=CatchUp.choices, required=False)
    catchup_window = forms.IntegerField(
        label="Catch-up window (seconds)", min_value=0, required=False
    )
    jitter = forms.IntegerField(label="Jitter (seconds)", min_value=0, required=False)
    max_runs = forms.IntegerField(label="Max runs", min_value=1, required=False)


def form_preview_response(
    form: forms.ModelForm[PeriodicTask], *, stored: PeriodicTask | None, now: datetime
) -> JsonResponse:
    """The preview of the periodic task form `form` (bound to what was posted) as JSON: 200 with
    the preview, or 400 with the errors of the fields it reads, each with its label."""
    data = form.data
    assert isinstance(data, QueryDict)
    if not " ".join(data.get("schedule", "").split()) and not any(
        data.get(name) for name in STOCK_SCHEDULE_FIELDS
    ):
        zone = data.get("timezone", "")
        return JsonResponse(SchedulePreview(timezone=zone, notes=[NO_SCHEDULE_YET]).as_json())
    # Read before the form's instance gets the unsaved options below.
    stored_options = options_of(stored) if stored is not None else None
    form.is_valid()
    errors = {
        name: [str(message) for message in messages]
        for name, messages in form.errors.items()
        if name in PREVIEW_FIELDS
    }
    labels = {name: str(field.label or name) for name, field in form.fields.items()}
    extra = ScheduleOptionsFields(data)
    extra.is_valid()
    for name in extra.fields:
        if name not in form.fields and name in data and name in extra.errors:
            errors[name] = [str(message) for message in extra.errors[name]]
            labels[name] = str(extra.fields[name].label)
    if errors:
        return _errors_response(errors, labels)
    periodic_task = form.instance
    try:
        _set_unsaved_options(form, extra, stored_options=stored_options, now=now)
    except ScheduleError as exc:  # a relative one-off that has just become past
        service_errors = {_FORM_FIELD_OF.get(k, k): v for k, v in exc.errors.items()}
        return _errors_response(service_errors, labels)
    task_name = form.cleaned_data.get("task") or periodic_task.task
    # No task chosen yet: the task's default policy is not known.
    task_overlap = overlap_resolved(task_name, None).value if task_name else None
    preview = schedule_preview(periodic_task, now=now, task_overlap=task_overlap)
    return JsonResponse(preview.as_json())


def _errors_response(errors: dict[str, list[str]], labels: dict[str, str]) -> JsonResponse:
    return JsonResponse(
        {"errors": errors, "labels": {name: labels.get(name, name) for name in errors}},
        status=400,
    )


def _set_unsaved_options(
    form: forms.ModelForm[PeriodicTask],
    extra: ScheduleOptionsFields,
    *,
    stored_options: ScheduleOptions | None,
    now: datetime,
) -> None:
    """Give the form's instance the schedule rows and options saving the form would give it,
    unsaved (the options are read through the instance, as a saved row's are)."""
    data = form.cleaned_data
    periodic_task = form.instance
    tz: str = data["timezone"]
    # Set by the form's clean() when the phrase (or its zone) changed: saving resolves it.
    phrase: str | None = getattr(form, "schedule_phrase", None)
    if phrase is not None:
        parsed = schedule_parse(schedule=phrase, tz=tz, now=now)
        for name, value in schedule_fields_unsaved(parsed).items():
            setattr(periodic_task, name, value)
    elif stored_options is not None and not any(
        name in form.changed_data for name in STOCK_SCHEDULE_FIELDS
    ):
        phrase = stored_options.phrase  # unchanged: the stored rows still run it
    misfire = data.get("misfire") or MisfirePolicy.RUN_ONCE
    preset_catchup, preset_window = CATCHUP_PRESETS.get(misfire, (CatchUp.LATEST, None))

    # The form's policy fields are text ("1h", "30"): read as the services read them on save.
    policies = getattr(form, "policies", None)
    read: dict[str, Any] = {}
    if policies is not None:
        try:
            read = policies_check(policies(), tz=tz, now=now).options
        except ScheduleError:
            read = {}  # each bad field has its form error, shown above

    def option(name: str, default: Any) -> Any:
        """The admin form's field if it has one; else the value posted, if any."""
        if name in form.fields:
            value = read.get(name, data.get(name)) if policies is not None else data.get(name)
        elif name in form.data:
            value = extra.cleaned_data.get(name)
        else:
            return default
        return default if value in (None, "") else value

    max_runs = option("max_runs", None)
    remaining = max_runs
    if stored_options is not None and stored_options.max_runs == max_runs:
        remaining = stored_options.remaining_runs  # the count beat keeps, unchanged by the edit
    ScheduleOptions(
        periodic_task=periodic_task,
        phrase=phrase or "",
        timezone=tz,
        overlap=data.get("overlap") or OverlapPolicy.DEFAULT,
        misfire=misfire,
        catchup=option("catchup", preset_catchup),
        catchup_window=option("catchup_window", preset_window),
        jitter=option("jitter", 0),
        max_runs=max_runs,
        remaining_runs=remaining,
        paused_at=stored_options.paused_at if stored_options is not None else None,
        paused_until=stored_options.paused_until if stored_options is not None else None,
    )


# --- The preview as the page first shows it ------------------------------------------------------


def render_schedule_preview(preview: SchedulePreview | None) -> str:
    """The preview box of the form: `preview` rendered on the server (None: nothing to preview
    yet, on the add page); the form's script replaces its contents as staff edit."""
    body: str = _preview_body(preview) if preview is not None else NO_SCHEDULE_YET_HTML
    return format_html(
        '<div id="scheduler-preview" class="scheduler-preview" aria-live="polite">{}</div>',
        body,
    )


def _preview_body(preview: SchedulePreview) -> str:
    # The same parts, in the same order, as the form's script draws from the JSON.
    in_utc = preview.timezone == "UTC"
    parts = []
    if preview.runs:
        runs = format_html_join(
            "",
            '<li class="scheduler-preview-run">{}{}</li>',
            (
                (
                    format_run(run),
                    "" if in_utc else format_html(_UTC_SPAN, format_utc(run)),
                )
                for run in preview.runs
            ),
        )
        where = preview.timezone if in_utc else f"{preview.timezone} and in UTC"
        parts.append(format_html("<p>Next runs in {}:</p><ol>{}</ol>", where, runs))
    if preview.cutoff:
        parts.append(format_html('<p class="scheduler-preview-cutoff">{}</p>', preview.cutoff))
    if preview.warnings:
        warnings = format_html_join(
            "", '<li class="warning">{}</li>', ((w,) for w in preview.warnings)
        )
        parts.append(format_html('<ul class="messagelist">{}</ul>', warnings))
    parts.extend(format_html('<p class="scheduler-preview-note">{}</p>', n) for n in preview.notes)
    if preview.effects:
        effects = format_html_join("", "<li>{}</li>", ((e,) for e in preview.effects))
        parts.append(format_html('<ul class="scheduler-preview-effects">{}</ul>', effects))
    return format_html_join("", "{}", ((part,) for part in parts))


_UTC_SPAN = '<span class="scheduler-preview-utc"> = {}</span>'
