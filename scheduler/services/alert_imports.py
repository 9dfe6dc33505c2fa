"""The alert channels and rules of a file `scheduler import` applies (the `alert_channels:` and
`alert_rules:` sections `scheduler export` writes), inside the import's transaction: all of the
file, schedules included, or nothing.

Channels go first, since rules name them; rules come after the schedules, which they may
watch. A section the file leaves out is left alone, even with `prune`; with `prune`, the
channels or rules a section does not name are disabled, never deleted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scheduler.models import AlertChannel, AlertRule
from scheduler.schedules.declared_alerts import (
    CHANNEL_FIELDS,
    RULE_FIELDS,
    DeclaredChannel,
    channel_row_fields,
    rule_json,
    rule_row_fields,
    time_of_day,
)
from scheduler.services.alerts import (
    AlertNotFound,
    RuleInput,
    channel_config_clean,
    channel_save,
    rule_clean,
    rule_save,
)
from scheduler.services.declared_alerts import alert_disable, channel_problems
from scheduler.services.errors import ScheduleError, User

if TYPE_CHECKING:
    from scheduler.services.imports import ImportEntry

_NONE = type(None)
_CHANNEL_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "kind": (str,),
    "config": (dict,),
    "enabled": (bool,),
}
_RULE_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "trigger": (str,),
    "target_type": (str,),
    "target": (str,),
    "threshold": (int, _NONE),
    "duration": (int, _NONE),
    "channels": (list,),
    "repeat_interval": (int,),
    "quiet_start": (str, _NONE),
    "quiet_end": (str, _NONE),
    "quiet_timezone": (str,),
    "description": (str,),
    "enabled": (bool,),
}


@dataclass(frozen=True)
class AlertChange:
    """What an import does to one channel or rule: create, update (`fields`), disable (pruned)
    or nothing (unchanged)."""

    what: str  # "channel" or "rule"
    name: str
    action: str
    fields: tuple[str, ...] = ()


@dataclass
class _Import:
    actor: User
    source: str
    changes: list[AlertChange]
    errors: list[str]
    actor_name: str = ""

    def fields_checked(
        self, entry: ImportEntry, types: dict[str, tuple[type, ...]], seen: dict[str, str]
    ) -> Mapping[str, Any] | None:
        """The entry's values when their names and types are right, else None (errors added)."""
        values, where = entry.values, entry.where
        what = "a channel" if types is _CHANNEL_TYPES else "a rule"
        if not isinstance(values, Mapping):
            self.errors.append(f"{where}: {what} is a mapping of its fields")
            return None
        required = ("name", "kind") if types is _CHANNEL_TYPES else ("name", "trigger")
        errors = [f"{where}: {name}: missing" for name in required if name not in values]
        for key, value in values.items():
            if key not in types:
                errors.append(f"{where}: {key}: unknown field (fields: {', '.join(types)})")
            elif not isinstance(value, types[key]) or (
                isinstance(value, bool) and bool not in types[key]
            ):
                hint = " (write a time in quotes: '22:00')" if key.startswith("quiet_") else ""
                errors.append(
                    f"{where}: {key}: {type(value).__name__} is not a "
                    f"{types[key][0].__name__}{hint}"
                )
        name = values.get("name")
        if isinstance(name, str) and name in seen:
            errors.append(f"{where}: name: {name!r} is in the file twice (first at {seen[name]})")
        if isinstance(name, str):
            seen.setdefault(name, where)
        self.errors.extend(errors)
        return None if errors else values

    def failed(self, where: str, exc: ScheduleError) -> None:
        self.errors.extend(
            f"{where}: {name}: {' '.join(messages)}" for name, messages in exc.errors.items()
        )

    def channel(self, values: Mapping[str, Any], where: str) -> None:
        item = DeclaredChannel(
            name=values["name"],
            kind=values["kind"],
            config=values.get("config", {}),
            enabled=values.get("enabled", True),
        )
        problems = channel_problems(item)
        if problems:
            self.errors.extend(f"{where}: {name}: {message}" for name, message in problems)
            return
        try:
            wanted = item.fields()
            wanted["config"] = channel_config_clean(item.kind, wanted["config"])
            row = AlertChannel.objects.filter(name=item.name).first()
            current = channel_row_fields(row) if row is not None else None
            changed = tuple(
                field
                for field in CHANNEL_FIELDS
                if current is None or current[field] != wanted[field]
            )
            if changed:
                channel_save(
                    name=item.name,
                    **wanted,
                    actor=self.actor,
                    actor_name=self.actor_name,
                    source=self.source,
                )
        except ScheduleError as exc:
            self.failed(where, exc)
            return
        self._record("channel", item.name, current, changed)

    def rule(self, values: Mapping[str, Any], where: str) -> None:
        given = {key: value for key, value in values.items() if key != "channels"}
        try:
            for name in ("quiet_start", "quiet_end"):
                given[name] = time_of_day(values.get(name))
        except ValueError:
            self.errors.append(f"{where}: {name}: not a time of day: {values[name]!r} ('22:00')")
            return
        data = RuleInput(**given, channels=tuple(values.get("channels", ())))
        try:
            fields, _ = rule_clean(data)
            wanted = rule_json(fields, data.channels)
            row = AlertRule.objects.filter(name=data.name).prefetch_related("channels").first()
            current = rule_row_fields(row) if row is not None else None
            changed = tuple(
                field for field in RULE_FIELDS if current is None or current[field] != wanted[field]
            )
            if changed:
                rule_save(data, actor=self.actor, actor_name=self.actor_name, source=self.source)
        except ScheduleError as exc:
            self.failed(where, exc)
            return
        self._record("rule", data.name, current, changed)

    def _record(
        self, what: str, name: str, current: dict[str, Any] | None, changed: tuple[str, ...]
    ) -> None:
        if current is None:
            self.changes.append(AlertChange(what, name, "create"))
        elif changed:
            self.changes.append(AlertChange(what, name, "update", changed))
        else:
            self.changes.append(AlertChange(what, name, "unchanged"))

    def prune(self, what: str, rows: Sequence[AlertChannel | AlertRule]) -> None:
        for row in rows:
            if not row.enabled:
                continue
            try:
                alert_disable(row, actor=self.actor, actor_name=self.actor_name, source=self.source)
            except (ScheduleError, AlertNotFound) as exc:
                self.errors.append(f"{what} {row.name!r}: cannot be disabled: {exc}")
                continue
            self.changes.append(AlertChange(what, row.name, "disable", ("enabled",)))


def alerts_import(
    channels: Sequence[ImportEntry] | None,
    rules: Sequence[ImportEntry] | None,
    *,
    prune: bool,
    actor: User,
    source: str,
    actor_name: str = "",
) -> tuple[list[AlertChange], list[str]]:
    """Apply the file's channels, then its rules (None: the file has no such section); the
    caller rolls everything back when errors come back. Returns (changes, errors)."""
    work = _Import(actor=actor, source=source, changes=[], errors=[], actor_name=actor_name)
    if channels is not None:
        seen: dict[str, str] = {}
        for entry in channels:
            values = work.fields_checked(entry, _CHANNEL_TYPES, seen)
            if values is not None:
                work.channel(values, entry.where)
        if prune:
            work.prune(
                "channel", list(AlertChannel.objects.exclude(name__in=seen).order_by("name"))
            )
    if rules is not None:
        seen = {}
        for entry in rules:
            values = work.fields_checked(entry, _RULE_TYPES, seen)
            if values is not None:
                work.rule(values, entry.where)
        if prune:
            work.prune(
                "rule",
                list(
                    AlertRule.objects.exclude(name__in=seen)
                    .prefetch_related("channels")
                    .order_by("name")
                ),
            )
    return work.changes, work.errors
