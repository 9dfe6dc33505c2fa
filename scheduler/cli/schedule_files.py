"""Schedules as files for `scheduler export` and `scheduler import`: YAML or JSON of the shape

    schedules:
      - name: nightly backup
        task: scheduler.backup_database
        schedule: every day at 2am
        ...

and where each schedule sits in a file ("line 12"), so that an error names it.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from scheduler.services.imports import ImportEntry


class ScheduleFileError(ValueError):
    pass


def schedules_document(schedules: list[dict[str, Any]], *, format: str) -> str:
    document = {"schedules": schedules}
    if format == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def schedules_read(text: str, *, source: str) -> list[ImportEntry]:
    """The entries of a file, each with its line (YAML, which JSON is too) or index."""
    try:
        document = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise ScheduleFileError(f"{source}: not YAML or JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("schedules"), list):
        raise ScheduleFileError(f"{source}: expected a mapping with a list under 'schedules'")
    lines = _item_lines(root)
    return [
        ImportEntry(
            values=item,
            where=f"{source}, " + (f"line {lines[i]}" if i < len(lines) else f"schedules[{i}]"),
        )
        for i, item in enumerate(document["schedules"])
    ]


def _item_lines(root: Any) -> list[int]:
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if getattr(key, "value", None) == "schedules" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []
