"""How `manage.py scheduler sync` shows its plan: one line per periodic task, alert channel or
alert rule, then each field that differs (in the database -> in code), like a diff; or the same
as JSON."""

from __future__ import annotations

import json
from typing import Any

from scheduler.services.declared import SyncChange, SyncReport

_MARKS = {"create": "+", "update": "~", "drift": "!", "disable": "-", "error": "x"}
_DONE = {"create": "created", "update": "updated", "disable": "disabled"}
# A schedule is named alone, as before alerts were declared; the others say what they are.
_LABELS = {"schedule": "", "channel": "channel ", "rule": "rule "}


def _value(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)


def _changes(report: SyncReport, alerts: SyncReport | None) -> list[SyncChange]:
    return [*report.changes, *(alerts.changes if alerts is not None else ())]


def sync_lines(report: SyncReport, *, dry_run: bool, alerts: SyncReport | None = None) -> list[str]:
    """`report`: the schedules'; `alerts`: the alert channels' and rules'."""
    lines = []
    for change in _changes(report, alerts):
        verb = change.action if dry_run or not change.applied else _DONE[change.action]
        label = _LABELS.get(change.what, f"{change.what} ")
        lines.append(f"{_MARKS[change.action]} {verb} {label}{change.name!r} ({change.origin})")
        for name, (have, want) in change.fields.items():
            lines.append(f"    {name}: {_value(have)} -> {_value(want)}")
        if change.message:
            lines.append(f"    {change.message}")
    unchanged = f"{report.unchanged} declared schedule(s) in sync."
    if alerts is not None:
        unchanged += f" {alerts.unchanged} declared alert channel(s) and rule(s) in sync."
    if report.in_sync and (alerts is None or alerts.in_sync):
        return [f"In sync: {unchanged}"]
    return [*lines, unchanged + (" Dry run: nothing was changed." if dry_run else "")]


def sync_json(
    report: SyncReport, *, dry_run: bool, alerts: SyncReport | None = None
) -> dict[str, Any]:
    """`unchanged` counts schedules, `unchanged_alerts` channels and rules; each change says
    what it is (`type`: schedule, channel or rule)."""
    return {
        "dry_run": dry_run,
        "in_sync": report.in_sync and (alerts is None or alerts.in_sync),
        "unchanged": report.unchanged,
        "unchanged_alerts": alerts.unchanged if alerts is not None else 0,
        "changes": [
            {
                "type": change.what,
                "name": change.name,
                "origin": change.origin,
                "action": change.action,
                "applied": change.applied,
                "fields": {
                    name: {"database": have, "code": want}
                    for name, (have, want) in change.fields.items()
                },
                "message": change.message,
            }
            for change in _changes(report, alerts)
        ],
    }
