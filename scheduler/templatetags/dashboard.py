"""Filters of the dashboard's templates; static/scheduler/lib/format.js formats the same way."""

from __future__ import annotations

import functools
from datetime import datetime, tzinfo
from typing import Any

from django import template
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.timezone import get_current_timezone, localtime

from scheduler.core.formatting import duration_text
from scheduler.protocol import FINISHED_STATES, RunState
from scheduler.selectors import error_summary

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """0.0421 -> '42 ms', 3.5 -> '3.5 s', 125 -> '2 min 5 s'; '—' when unknown."""
    if seconds is None or seconds == "":
        return "—"
    return duration_text(float(seconds))


@register.filter
def percent(fraction: float | None) -> str:
    """0.953 -> '95%'; '—' when there is nothing to rate."""
    if fraction is None:
        return "—"
    return f"{round(fraction * 100)}%"


# Celery's state names as staff read them; the badge's data-state keeps the raw name.
STATE_LABELS = {
    "PENDING": "queued",
    "RECEIVED": "received",
    "STARTED": "running",
    "SUCCESS": "success",
    "FAILURE": "failed",
    "RETRY": "retrying",
    "REVOKED": "revoked",
    "SKIPPED": "skipped",
    "BUFFERED": "buffered",
}


@register.filter
def error_line(text: str) -> str:
    """A stored error as one line of plain text (selectors.error_summary)."""
    return error_summary(text or "")


@register.filter
def run_control(state: str) -> str:
    """The stop a run in `state` offers: "terminate" while it runs, "revoke" before it has
    started, "" once it has finished (static/scheduler/dashboard/states.js says the same)."""
    if not state or state in FINISHED_STATES:
        return ""
    return "terminate" if state == RunState.STARTED else "revoke"


@register.filter
def state_label(state: str) -> str:
    return STATE_LABELS.get(state, state.lower() or "unknown")


def _spark_class(state: str) -> str:
    return {"SUCCESS": "s-success", "FAILURE": "s-failure"}.get(state, "s-other")


@register.simple_tag
def spark_bars(bars: list[dict[str, Any]], width: int) -> SafeString:
    """The bars of one sparkline, as SVG rects with a title each.

    Built as one string rather than in a template loop or `format_html_join`: the dashboard
    draws twenty bars for each of a hundred schedules, and their per-value overhead made the
    bars most of the page's time. Numbers need no escaping; the one text is escaped.
    """
    zone = get_current_timezone()
    return mark_safe(  # noqa: S308 (every text value is escaped; the rest are numbers)
        "".join(
            f'<rect class="{_spark_class(bar["state"])}" x="{float(bar["x"]):g}" '
            f'y="{float(bar["y"]):g}" width="{int(width)}" height="{float(bar["height"]):g}">'
            f"<title>{escape(state_label(bar['state']))} "
            f"{localtime(bar['at'], zone).strftime('%a %H:%M') if bar['at'] else ''} · "
            f"{duration(bar['duration'])}</title></rect>"
            for bar in bars
        )
    )


@register.simple_tag
def heat_cells(cells: list[dict[str, Any]], label: str = "", counts: bool = False) -> SafeString:
    """One row of the upcoming-runs heatmap: a cell per slot, shaded by its level, titled
    "<label> · Wed 14:30: 3 runs", showing the count when `counts`.

    One string, like `spark_bars`: two hundred schedules of 49 slots each are ten thousand
    cells, too many for a template loop on a page staff open all day.
    """
    zone = get_current_timezone()
    prefix = f"{escape(label)} · " if label else ""
    return mark_safe(  # noqa: S308 (the label is escaped; the rest are numbers and dates)
        "".join(
            f'<td class="cell h{int(cell["level"])}" title="{prefix}'
            f"{_slot_label(cell['at'], zone)}: {int(cell['count'])} "
            f'run{"" if cell["count"] == 1 else "s"}">'
            f"{int(cell['count']) if counts and cell['count'] else ''}</td>"
            for cell in cells
        )
    )


@register.simple_tag
def heat_row_title(row: dict[str, Any]) -> str:
    """A heatmap row's title: "nightly (scheduler.cleanup)" for one schedule; for a row of many,
    how many and the first names ("1200 schedules of agents.post: a, b, c, …")."""
    if row.get("schedules", 1) == 1:
        return f"{row['name']} ({row['task']})"
    names = ", ".join(row["names"])
    more = ", …" if row["schedules"] > len(row["names"]) else ""
    return f"{row['name']}: {names}{more}"


@functools.lru_cache(maxsize=1024)
def _slot_label(at: datetime, zone: tzinfo) -> str:
    # Every row of the heatmap has the same slots: each label is made once.
    return localtime(at, zone).strftime("%a %H:%M")


@register.simple_tag
def periodic_rows(
    rows: list[dict[str, Any]],
    *,
    can_change: bool,
    spark_width: int,
    spark_height: int,
    spark_bar: int,
) -> SafeString:
    """The rows of the dashboard's periodic-tasks table (static/scheduler/dashboard/periodic.js
    draws the same ones when the summary is read again).

    One string, like `spark_bars`: a hundred rows of a dozen values each through the template
    engine cost more than everything else the page reads.
    """
    zone = get_current_timezone()
    change_url = reverse("admin:django_celery_beat_periodictask_change", args=[0])
    html = []
    for task in rows:
        pk = int(task["id"])
        head, _, tail = change_url.rpartition("/0/")
        url = f"{head}/{pk}/{tail}"
        paused = "" if task["enabled"] else ' <span class="tag">paused</span>'
        streak = task.get("failure_streak") or 0
        if streak:
            paused += f' <span class="tag tag-failing">{int(streak)} failed in a row</span>'
        paused += _pause_line(task.get("pause"), zone)
        owner = task.get("owner")
        owned = f" · {escape(owner['type'])} {escape(owner['id'])}" if owner else ""
        actions = _actions_cell(pk, enabled=task["enabled"]) if can_change else ""
        html.append(
            f'<tr data-schedule-id="{pk}" data-enabled="{"true" if task["enabled"] else "false"}">'
            f'<td><a href="{escape(url)}">{escape(task["name"])}</a>{paused}'
            f'<div class="muted mono">{escape(task["task"])}{owned}</div></td>'
            f"<td>{escape(task['schedule'])}</td>"
            f'<td class="nowrap">{_next_run_cell(task["next_run"], zone)}</td>'
            f'<td class="nowrap">{_last_run_cell(task, zone)}</td>'
            f'<td><svg class="spark" width="{spark_width}" height="{spark_height}" '
            f'viewBox="0 0 {spark_width} {spark_height}" role="img" '
            f'aria-label="last {len(task["runs"])} runs">'
            f"{spark_bars(task['sparkline'], spark_bar)}</svg></td>"
            f'<td class="num">{percent(task["success_rate"])}</td>'
            f'<td class="num">{duration(task["p50"])}</td>'
            f'<td class="num">{duration(task["p95"])}</td>'
            f"{actions}</tr>"
        )
    return mark_safe("".join(html))  # noqa: S308 (every text value is escaped)


def _pause_line(pause: dict[str, Any] | None, zone: tzinfo) -> str:
    """ "paused by alice until Wed 13:04: deploy freeze", under the name (periodic.js: the same);
    no "by" when no signed-in user paused it (the system, whose note says so, or the CLI)."""
    if not pause:
        return ""
    by = f" by {escape(pause['paused_by'])}" if pause["paused_by"] else ""
    until = "until resumed"
    if pause["until"]:
        at = localtime(datetime.fromisoformat(pause["until"]), zone)
        until = f'until <time datetime="{at.isoformat()}">{at.strftime("%a %H:%M")}</time>'
    note = f": {escape(pause['note'])}" if pause["note"] else ""
    return f'<div class="muted pause-line">paused{by} {until}{note}</div>'


def _next_run_cell(next_run: datetime | None, zone: tzinfo) -> str:
    if not next_run:
        return '<span class="muted">—</span>'
    local = localtime(next_run, zone)
    return f'<time datetime="{local.isoformat()}">{local.strftime("%a %H:%M")}</time>'


def _last_run_cell(task: dict[str, Any], zone: tzinfo) -> str:
    """The last run's status badge and time; "never" when it has neither."""
    status = task["last_status"]
    last = (
        f'<span class="badge badge-{escape(status.lower())}">{escape(state_label(status))}</span>'
        if status
        else ""
    )
    if task["last_run_at"]:
        when = localtime(task["last_run_at"], zone).strftime("%a %H:%M")
        last += f' <span class="muted">{when}</span>'
    elif not status:
        last += ' <span class="muted">never</span>'
    else:
        last += " "
    return last


def _actions_cell(pk: int, *, enabled: bool) -> str:
    """Run now, and Pause or Resume: for staff who can change schedules."""
    toggle = (
        f'<button type="button" class="btn" data-action="pause" data-id="{pk}">Pause</button>'
        if enabled
        else f'<button type="button" class="btn" data-action="resume" data-id="{pk}">'
        "Resume</button>"
    )
    return (
        f'<td><div class="actions"><button type="button" class="btn" data-action="run" '
        f'data-id="{pk}">Run now</button>{toggle}</div></td>'
    )
