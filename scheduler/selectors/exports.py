"""Schedules as a file (`manage.py scheduler export`): every periodic task, alert channel and
alert rule, or those whose name matches, in the shape of a declaration, so that `scheduler
import` applies it elsewhere and a team keeps its schedules in git. Values of secret parameters
are masked, as everywhere they are shown; a channel's config holds no secret (it names the
environment variable that does)."""

from __future__ import annotations

import fnmatch
from typing import Any
from zoneinfo import ZoneInfo

from django_celery_beat.models import PeriodicTask

from scheduler.core.masking import masked
from scheduler.models import AlertChannel, AlertRule
from scheduler.schedules.declared import DECLARED_FIELDS, row_fields
from scheduler.schedules.declared_alerts import channel_row_fields, rule_row_fields
from scheduler.schedules.rows import options_of
from scheduler.selectors.schedules import periodic_tasks_listed


def exported_schedule(periodic_task: PeriodicTask) -> str | None:
    """The schedule as a phrase that reads back to the same runs: the phrase staff wrote, the
    cron fields or the interval of a stock row, the moment of a one-off (a relative phrase such
    as 'in 5 minutes' would move); None for a solar schedule, which no phrase says."""
    options = options_of(periodic_task)
    if periodic_task.clocked is not None:
        zone = options.timezone if options is not None else "UTC"
        return periodic_task.clocked.clocked_time.astimezone(ZoneInfo(zone)).strftime(
            "%Y-%m-%d %H:%M"
        )
    if options is not None and options.phrase:
        return str(options.phrase)
    if periodic_task.crontab is not None:
        row = periodic_task.crontab
        fields = (row.minute, row.hour, row.day_of_month, row.month_of_year, row.day_of_week)
        return " ".join(str(field) for field in fields)
    if periodic_task.interval is not None:
        return f"every {periodic_task.interval.every} {periodic_task.interval.period}"
    return None


def schedules_exported(*, match: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """(the schedules as declarations, the names left out with why), by name; `match` is a
    shell pattern of names ('tournaments: *')."""
    exported: list[dict[str, Any]] = []
    left_out: list[str] = []
    for periodic_task in periodic_tasks_listed():
        if match is not None and not fnmatch.fnmatchcase(periodic_task.name, match):
            continue
        schedule = exported_schedule(periodic_task)
        if schedule is None:
            left_out.append(f"{periodic_task.name}: a solar schedule cannot be written as a phrase")
            continue
        fields = row_fields(periodic_task)
        fields["schedule"] = schedule
        fields["params"] = masked(fields["params"])
        exported.append({"name": periodic_task.name, **{n: fields[n] for n in DECLARED_FIELDS}})
    return exported, left_out


def _short_time(text: str | None) -> str | None:
    # "22:00", as people write it, when the time has no seconds.
    return text[:5] if text and text.endswith(":00") and len(text) == 8 else text


def alerts_exported(
    *, match: str | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the alert channels, the alert rules) as declarations, by name; `match` is a shell
    pattern of names."""
    channels = [
        {"name": channel.name, **channel_row_fields(channel)}
        for channel in AlertChannel.objects.order_by("name")
        if match is None or fnmatch.fnmatchcase(channel.name, match)
    ]
    rules = []
    for rule in AlertRule.objects.order_by("name").prefetch_related("channels"):
        if match is not None and not fnmatch.fnmatchcase(rule.name, match):
            continue
        fields = rule_row_fields(rule)
        fields["quiet_start"] = _short_time(fields["quiet_start"])
        fields["quiet_end"] = _short_time(fields["quiet_end"])
        rules.append({"name": rule.name, **fields})
    return channels, rules
