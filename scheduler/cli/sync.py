"""How `manage.py scheduler sync` shows its plan: one line per periodic task, then each field
that differs (in the database -> in code), like a diff; or the same as JSON."""

from __future__ import annotations

import json
from typing import Any

from scheduler.services.declared import SyncReport

_MARKS = {"create": "+", "update": "~", "drift": "!", "disable": "-", "error": "x"}
_DONE = {"create": "created", "update": "updated", "disable": "disabled"}


def _value(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)


def sync_lines(report: SyncReport, *, dry_run: bool) -> list[str]:
    lines = []
    for change in report.changes:
        verb = change.action if dry_run or not change.applied else _DONE[change.action]
        lines.append(f"{_MARKS[change.action]} {verb} {change.name!r} ({change.origin})")
        for name, (have, want) in change.fields.items():
            lines.append(f"    {name}: {_value(have)} -> {_value(want)}")
        if change.message:
            lines.append(f"    {change.message}")
    unchanged = f"{report.unchanged} declared schedule(s) in sync."
    if report.in_sync:
        return [f"In sync: {unchanged}"]
    return [*lines, unchanged + (" Dry run: nothing was changed." if dry_run else "")]


def sync_json(report: SyncReport, *, dry_run: bool) -> dict[str, Any]:
    return {
        "dry_run": dry_run,
        "in_sync": report.in_sync,
        "unchanged": report.unchanged,
        "changes": [
            {
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
            for change in report.changes
        ],
    }
