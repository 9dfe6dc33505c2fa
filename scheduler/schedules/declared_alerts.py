"""Alert channels and rules declared in code, beside the schedules (declared.py explains
declarations). An app lists them in `<app>/upkeep.py`:

    CHANNELS = [
        DeclaredChannel(
            name="ops hook",
            kind="webhook",
            config={"url": "https://ops.example.com/hooks/scheduler", "secret_env": "OPS_SECRET"},
        ),
    ]
    ALERT_RULES = [
        DeclaredRule(
            name="backups failing",
            trigger="consecutive_failures",
            target_type="schedule",
            target="system: back up the database",
            threshold=2,
            channels=("ops hook",),
        ),
    ]

`manage.py scheduler sync` makes the channels and rules match (channels first: rules name
them), with drift as for schedules. A secret is never declared: a channel's config names the
environment variable that holds it (a webhook's "secret_env"). Reading declarations touches no
database.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import time
from types import ModuleType
from typing import Any, TypeVar

from django.apps import apps

from scheduler.schedules.declared import DeclarationError, _origin_of

# The fields a declaration sets and sync compares with the row, in display order.
CHANNEL_FIELDS = ("kind", "config", "enabled")
RULE_FIELDS = (
    "trigger",
    "target_type",
    "target",
    "threshold",
    "duration",
    "channels",
    "repeat_interval",
    "quiet_start",
    "quiet_end",
    "quiet_timezone",
    "description",
    "enabled",
)


@dataclass(frozen=True)
class DeclaredChannel:
    """One alert channel as code declares it (the arguments of `channel_save`)."""

    name: str
    kind: str
    config: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool = True
    # Where it is declared ("scheduler/upkeep.py").
    origin: str = ""

    def fields(self) -> dict[str, Any]:
        """The declared value of each of CHANNEL_FIELDS, as JSON."""
        config = dict(self.config) if isinstance(self.config, Mapping) else self.config
        return {"kind": self.kind, "config": config, "enabled": self.enabled}


@dataclass(frozen=True)
class DeclaredRule:
    """One alert rule as code declares it (the fields of `RuleInput`). Quiet times are a
    `datetime.time` or its text ("22:00")."""

    name: str
    trigger: str
    target_type: str = "all"
    target: str = ""
    threshold: int | None = None
    duration: int | None = None
    channels: Sequence[str] = ()
    repeat_interval: int = 4 * 3600
    quiet_start: time | str | None = None
    quiet_end: time | str | None = None
    quiet_timezone: str = "UTC"
    enabled: bool = True
    description: str = ""
    origin: str = ""

    def fields(self) -> dict[str, Any]:
        """The declared value of each of RULE_FIELDS, as JSON (as written: sync compares the
        values the rule service keeps, which drops a threshold or duration the trigger ignores)."""
        return rule_json({name: getattr(self, name) for name in RULE_FIELDS}, self.channels)


def time_of_day(value: time | str | None) -> time | None:
    """A quiet time as declared or written in a file; ValueError when it is not one."""
    if value is None or isinstance(value, time):
        return value
    if isinstance(value, str):
        return time.fromisoformat(value.strip())
    raise ValueError(f"not a time of day: {value!r}")


def _time_text(value: Any) -> Any:
    try:
        moment = time_of_day(value)
    except ValueError:
        return value  # differs from every row; the check names it
    return moment.isoformat() if moment is not None else None


def rule_json(values: Mapping[str, Any], channels: Any) -> dict[str, Any]:
    """A rule's RULE_FIELDS as JSON from `values` (a declaration's, a row's, the rule service's
    cleaned fields) and its channels' names, so that all three compare."""
    fields = {name: values.get(name) for name in RULE_FIELDS}
    fields["quiet_start"] = _time_text(fields["quiet_start"])
    fields["quiet_end"] = _time_text(fields["quiet_end"])
    if isinstance(channels, Iterable) and not isinstance(channels, str):
        fields["channels"] = sorted({str(name).strip() for name in channels})
    else:
        fields["channels"] = channels
    return fields


def rule_row_fields(rule: Any) -> dict[str, Any]:
    """What an AlertRule holds now, field by field as a declaration states it."""
    values = {name: getattr(rule, name) for name in RULE_FIELDS if name != "channels"}
    return rule_json(values, [channel.name for channel in rule.channels.all()])


def channel_row_fields(channel: Any) -> dict[str, Any]:
    """What an AlertChannel holds now, field by field as a declaration states it."""
    return {"kind": channel.kind, "config": dict(channel.config or {}), "enabled": channel.enabled}


@dataclass(frozen=True)
class AlertDeclarations:
    channels: list[DeclaredChannel] = field(default_factory=list)
    rules: list[DeclaredRule] = field(default_factory=list)


Declared = TypeVar("Declared", DeclaredChannel, DeclaredRule)


def _upkeep_modules(only: str | None) -> Iterator[tuple[ModuleType, str]]:
    for config in apps.get_app_configs():
        if only is not None and config.label != only:
            continue
        name = f"{config.name}.upkeep"
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        yield module, _origin_of(module)


def _listed(
    module: ModuleType, origin: str, attribute: str, kind: type[Declared]
) -> list[Declared]:
    found: list[Declared] = []
    for declared in getattr(module, attribute, ()):
        if not isinstance(declared, kind):
            raise DeclarationError(repr(declared), origin, attribute, f"not a {kind.__name__}")
        found.append(declared if declared.origin else replace(declared, origin=origin))
    return found


def app_alert_declarations(*, only: str | None = None) -> AlertDeclarations:
    """Every installed app's `upkeep.CHANNELS` and `upkeep.ALERT_RULES`, in INSTALLED_APPS
    order (`only`: one app's)."""
    found = AlertDeclarations()
    for module, origin in _upkeep_modules(only):
        found.channels.extend(_listed(module, origin, "CHANNELS", DeclaredChannel))
        found.rules.extend(_listed(module, origin, "ALERT_RULES", DeclaredRule))
    return found


def declared_alerts() -> AlertDeclarations:
    """Every app's alert declarations; a channel or rule declared twice is an error naming both."""
    found = app_alert_declarations()
    _check_unique(found.channels)
    _check_unique(found.rules)
    return found


def _check_unique(declared: Iterable[DeclaredChannel | DeclaredRule]) -> None:
    seen: dict[str, str] = {}
    for item in declared:
        if item.name in seen:
            raise DeclarationError(
                item.name, item.origin, "name", f"declared again (first in {seen[item.name]})"
            )
        seen[item.name] = item.origin
