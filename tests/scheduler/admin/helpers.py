"""What the periodic task and task result admins' tests share: the admin's URLs, the change
form as it posts back, a periodic task of the ECHO entry (conftest.py's `echo_entry`), the form's
errors and the page's messages, and runs stored for a periodic task."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from scheduler.models import AuditEntry, ScheduleOptions, Source
from scheduler.services import schedule_create
from scheduler.worker.schedule_state import schedule_states_rebuild
from tests.forms import ECHO, periodic_task_form

ADD_URL = reverse("admin:django_celery_beat_periodictask_add")
CHANGELIST_URL = reverse("admin:django_celery_beat_periodictask_changelist")
RESULTS_URL = reverse("admin:django_celery_results_taskresult_changelist")


def change_url(periodic_task: PeriodicTask) -> str:
    return reverse("admin:django_celery_beat_periodictask_change", args=[periodic_task.pk])


def run_now_url(periodic_task: PeriodicTask) -> str:
    return reverse("admin:django_celery_beat_periodictask_run_now", args=[periodic_task.pk])


def change_data(periodic_task: PeriodicTask, **overrides: Any) -> dict[str, Any]:
    """What the change form posts back untouched (its initial values), plus `overrides`."""
    options = ScheduleOptions.objects.get(periodic_task=periodic_task)
    data = periodic_task_form(
        name=periodic_task.name,
        task=periodic_task.task,
        kwargs=periodic_task.kwargs,
        description=periodic_task.description,
        schedule=options.phrase,
        timezone=options.timezone,
        interval=periodic_task.interval_id or "",
        crontab=periodic_task.crontab_id or "",
        clocked=periodic_task.clocked_id or "",
        overlap=options.overlap,
        catchup=options.catchup,
        catchup_window="" if options.catchup_window is None else str(options.catchup_window),
        jitter=str(options.jitter),
        max_runs="" if options.max_runs is None else str(options.max_runs),
        pause_after_failures=(
            "" if options.pause_after_failures is None else str(options.pause_after_failures)
        ),
        queue=periodic_task.queue or "",
        one_off="on" if periodic_task.one_off else None,
        enabled="on" if periodic_task.enabled else None,
    )
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def make_schedule(name: str = "echo", schedule: str = "every day at 2am", **kwargs: Any):
    """A periodic task of the ECHO entry unless `task` says otherwise, made by the command line."""
    kwargs.setdefault("task", ECHO)
    return schedule_create(name=name, schedule=schedule, source=Source.CLI, **kwargs)


def form_errors(response) -> dict[str, list[str]]:
    assert response.status_code == 200, response.status_code
    form = response.context["adminform"].form
    return {field: [str(e) for e in errors] for field, errors in form.errors.items()}


def page_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def nothing_saved() -> None:
    assert not PeriodicTask.objects.exists()
    assert not ScheduleOptions.objects.exists()
    assert not AuditEntry.objects.exists()


def results_for(task: PeriodicTask, *statuses: str) -> None:
    started = timezone.now() - timedelta(hours=1)
    for n, status in enumerate(statuses):
        task_id = f"{task.name}-{n}"
        TaskResult.objects.create(
            task_id=task_id,
            task_name=task.task,
            periodic_task_name=task.name,
            status=status,
            # As the results backend stores a kwargsrepr: a JSON string of the JSON arguments.
            task_kwargs=json.dumps(task.kwargs),
        )
        # date_created and date_done are automatic: set them as if the runs took 1.5 s each,
        # one after another.
        TaskResult.objects.filter(task_id=task_id).update(
            date_created=started + timedelta(minutes=n),
            date_started=started + timedelta(minutes=n),
            date_done=started + timedelta(minutes=n, seconds=1.5),
        )
    # Written past the result backend: the schedule's state is rebuilt, as retention does.
    schedule_states_rebuild(names=[task.name])
