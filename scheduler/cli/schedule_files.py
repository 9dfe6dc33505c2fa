"""Schedules as files for `scheduler export` and `scheduler import`: YAML or JSON of the shape

    schedules:
      - name: nightly backup
        task: scheduler.backup_database
        schedule: every day at 2am
        ...
    alert_channels:
      - name: ops hook
        kind: webhook
        config: {url: "https://ops.example.com/hook", secret_env: OPS_HOOK_SECRET}
        enabled: true
    alert_rules:
      - name: backups failing
        trigger: consecutive_failures
        ...

and where each entry sits in a file ("line 12"), so that an error names it. The alert sections
are written when there is something in them; a file may have any of the three.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from scheduler.services.imports import ImportEntry

SECTIONS = ("schedules", "alert_channels", "alert_rules")


class ScheduleFileError(ValueError):
    pass


@dataclass(frozen=True)
class ScheduleFile:
    """The entries of each section; None for a section the file does not have."""

    schedules: list[ImportEntry] | None
    channels: list[ImportEntry] | None
    rules: list[ImportEntry] | None


def schedules_document(
    schedules: list[dict[str, Any]],
    *,
    format: str,
    channels: Sequence[dict[str, Any]] = (),
    rules: Sequence[dict[str, Any]] = (),
) -> str:
    document: dict[str, Any] = {"schedules": schedules}
    if channels:
        document["alert_channels"] = list(channels)
    if rules:
        document["alert_rules"] = list(rules)
    if format == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def schedules_read(text: str, *, source: str) -> ScheduleFile:
    """The entries of a file by section, each with its line (YAML, which JSON is too) or index."""
    try:
        document = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise ScheduleFileError(f"{source}: not YAML or JSON: {exc}") from exc
    if not isinstance(document, dict) or not document:
        raise ScheduleFileError(
            f"{source}: expected a mapping with a list under 'schedules', 'alert_channels' or "
            "'alert_rules'"
        )
    unknown = [str(key) for key in document if key not in SECTIONS]
    if unknown:
        raise ScheduleFileError(
            f"{source}: unknown section {unknown[0]!r} (sections: {', '.join(SECTIONS)})"
        )
    sections: list[list[ImportEntry] | None] = []
    for key in SECTIONS:
        if key not in document:
            sections.append(None)
            continue
        items = document[key] if document[key] is not None else []
        if not isinstance(items, list):
            raise ScheduleFileError(f"{source}: '{key}' must be a list")
        lines = _item_lines(root, key)
        sections.append(
            [
                ImportEntry(
                    values=item,
                    where=f"{source}, " + (f"line {lines[i]}" if i < len(lines) else f"{key}[{i}]"),
                )
                for i, item in enumerate(items)
            ]
        )
    return ScheduleFile(*sections)


def _item_lines(root: Any, section: str) -> list[int]:
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if getattr(key, "value", None) == section and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []
