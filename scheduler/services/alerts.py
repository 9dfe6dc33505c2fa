"""Writes of alert rules and channels, and of what staff do to an incident (acknowledge,
silence, resolve): every interface (admin, CLI, API, schedules as code) calls these.

A rule targets everything, a schedule, a catalog task, a queue, or a domain object another app
registers (`alert_target_register`: agents register "agent", tournaments "tournament"), and
fires on one trigger. A channel is a kind from the registry (SCHEDULER_ALERT_CHANNEL_KINDS,
classes found by dotted path: scheduler/core/channel_kinds.py says what a kind is) and its
settings. Bad input raises ScheduleError naming the field; nothing is saved.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django_celery_beat.models import PeriodicTask

from config.queues import QUEUES
from scheduler.catalog.declaring import load_catalog
from scheduler.core.channel_kinds import ChannelConfigError, ChannelKind
from scheduler.models import AlertChannel, AlertRule, AuditEntry, Incident
from scheduler.services.audit import actor_of, audit_write
from scheduler.services.errors import ScheduleError, User

Target = AlertRule.Target
Trigger = AlertRule.Trigger

NAME_MAX = 100
# Triggers read from runs (their events); the others from the state of beat, workers, queues.
RUN_TRIGGERS = frozenset(
    {
        Trigger.FAILED,
        Trigger.CONSECUTIVE_FAILURES,
        Trigger.MISSED,
        Trigger.LONG_RUN,
        Trigger.NO_SUCCESS,
    }
)
QUEUE_TRIGGERS = frozenset({Trigger.NO_WORKER, Trigger.QUEUE_DEPTH})
# Which of threshold (N) and duration (D, T) each trigger needs.
NEEDS_THRESHOLD = frozenset({Trigger.CONSECUTIVE_FAILURES, Trigger.QUEUE_DEPTH})
NEEDS_DURATION = frozenset(
    {Trigger.LONG_RUN, Trigger.NO_SUCCESS, Trigger.BEAT_NO_LEADER, Trigger.NO_WORKER}
)
DURATION_MAX = 366 * 24 * 3600


class AlertNotFound(LookupError):
    def __init__(self, what: str, key: object):
        self.what = what
        self.key = key
        super().__init__(f"no {what} {key!r}")


# --- targets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetKind:
    """How a rule's target of one kind is read: `resolve(text)` gives the key its runs carry
    (an object header's id) or raises ValueError saying what is wrong."""

    name: str
    label: str
    resolve: Callable[[str], str]


_targets: dict[str, TargetKind] = {}


def alert_target_register(name: str, label: str, resolve: Callable[[str], str]) -> None:
    """Let rules target a domain object of another app ("agent": an agent's slug -> its pk)."""
    _targets[name] = TargetKind(name, label, resolve)


def _resolve_schedule(text: str) -> str:
    if not PeriodicTask.objects.filter(name=text).exists():
        raise ValueError(f"no periodic task named {text!r}")
    return text


def _resolve_task(text: str) -> str:
    if text not in load_catalog():
        raise ValueError(f"{text!r} is not a task in the catalog")
    return text


def _resolve_queue(text: str) -> str:
    if text not in QUEUES:
        raise ValueError(f"no queue named {text!r} (queues: {', '.join(sorted(QUEUES))})")
    return text


alert_target_register("schedule", "Schedule", _resolve_schedule)
alert_target_register("task", "Catalog task", _resolve_task)
alert_target_register("queue", "Queue", _resolve_queue)


def target_key(target_type: str, target: str) -> str:
    """The key runs of `target` carry; ScheduleError when it names nothing."""
    if target_type == Target.ALL:
        if target:
            raise ScheduleError.on("target", "a rule on everything takes no target")
        return ""
    kind = _targets.get(target_type)
    if kind is None:
        known = ", ".join(["all", *sorted(_targets)])
        raise ScheduleError.on("target_type", f"unknown target type {target_type!r} ({known})")
    if not target:
        raise ScheduleError.on("target", f"name the {kind.label.lower()} the rule watches")
    try:
        return kind.resolve(target)
    except ValueError as exc:
        raise ScheduleError.on("target", str(exc)) from None


# --- channel kinds -------------------------------------------------------------------------


@functools.cache
def _kind_at(path: str) -> ChannelKind:
    return cast("ChannelKind", import_string(path)())


def channel_kinds() -> dict[str, str]:
    """Kind name -> dotted path of its class (SCHEDULER_ALERT_CHANNEL_KINDS)."""
    return dict(settings.SCHEDULER_ALERT_CHANNEL_KINDS)


def channel_kind(name: str) -> ChannelKind:
    """The kind `name` (loaded once per process); ScheduleError when unknown or not loadable."""
    path = channel_kinds().get(name)
    if path is None:
        known = ", ".join(sorted(channel_kinds()))
        raise ScheduleError.on("kind", f"unknown channel kind {name!r} (kinds: {known})")
    try:
        return _kind_at(path)
    except (ImportError, TypeError) as exc:
        raise ScheduleError.on("kind", f"channel kind {name!r} cannot be loaded: {exc}") from None


def channel_config_clean(kind: str, config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise ScheduleError.on("config", "must be a JSON object")
    try:
        return channel_kind(kind).validate(config)
    except ChannelConfigError as exc:
        raise ScheduleError.on("config", f"{exc.field}: {exc.message}") from None


def _name(value: str, what: str) -> str:
    name = (value or "").strip()
    if not name:
        raise ScheduleError.on("name", f"a {what} needs a name")
    if len(name) > NAME_MAX:
        raise ScheduleError.on("name", f"at most {NAME_MAX} characters")
    return name


def _audit(
    name: str,
    action: str,
    *,
    actor: User,
    source: str,
    changes: dict[str, Any],
    actor_name: str = "",
) -> None:
    audit_write(
        None,
        name=name[:200],
        action=action,
        actor=actor,
        actor_name=actor_name,
        source=source,
        changes=changes,
    )


def channel_save(
    *,
    name: str,
    kind: str,
    config: Any = None,
    enabled: bool = True,
    actor: User = None,
    actor_name: str = "",
    source: str,
    create: bool | None = None,
) -> AlertChannel:
    """Create or update the channel `name` (create=True: must be new; False: must exist)."""
    name = _name(name, "channel")
    cleaned = channel_config_clean(kind, config if config is not None else {})
    with transaction.atomic():
        channel = AlertChannel.objects.select_for_update().filter(name=name).first()
        if create is True and channel is not None:
            raise ScheduleError.on("name", f"a channel named {name!r} exists")
        if create is False and channel is None:
            raise AlertNotFound("channel", name)
        before = _channel_fields(channel) if channel else {}
        channel = channel or AlertChannel(name=name)
        channel.kind, channel.config, channel.enabled = kind, cleaned, enabled
        channel.save()
        after = _channel_fields(channel)
        _audit(
            f"channel {name}",
            AuditEntry.Action.UPDATED if before else AuditEntry.Action.CREATED,
            actor=actor,
            actor_name=actor_name,
            source=source,
            changes={k: [before.get(k), v] for k, v in after.items() if before.get(k) != v},
        )
    return channel


def _channel_fields(channel: AlertChannel) -> dict[str, Any]:
    return {"kind": channel.kind, "config": channel.config, "enabled": channel.enabled}


def channel_delete(*, name: str, actor: User = None, actor_name: str = "", source: str) -> None:
    with transaction.atomic():
        deleted, _ = AlertChannel.objects.filter(name=name).delete()
        if not deleted:
            raise AlertNotFound("channel", name)
        _audit(
            f"channel {name}",
            AuditEntry.Action.DELETED,
            actor=actor,
            actor_name=actor_name,
            source=source,
            changes={},
        )


# --- rules ---------------------------------------------------------------------------------


@dataclass
class RuleInput:
    """A rule as an interface read it; `rule_save` checks every field."""

    name: str
    trigger: str
    target_type: str = Target.ALL
    target: str = ""
    threshold: int | None = None
    duration: int | None = None
    channels: Iterable[str] = ()
    repeat_interval: int = 4 * 3600
    quiet_start: time | None = None
    quiet_end: time | None = None
    quiet_timezone: str = "UTC"
    enabled: bool = True
    description: str = ""


def _positive(value: Any, field: str, *, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScheduleError.on(field, f"must be a whole number, not {value!r}")
    if not 0 < value <= maximum:
        raise ScheduleError.on(field, f"must be a positive number up to {maximum}, not {value}")
    return value


def rule_clean(data: RuleInput) -> tuple[dict[str, Any], list[AlertChannel]]:
    """The model fields of `data` and its channels, or ScheduleError naming every bad field."""
    errors: dict[str, list[str]] = {}

    def check(function: Callable[[], Any]) -> Any:
        try:
            return function()
        except ScheduleError as exc:
            for field, messages in exc.errors.items():
                errors.setdefault(field, []).extend(messages)
            return None

    trigger = data.trigger
    if trigger not in Trigger.values:
        errors["trigger"] = [f"unknown trigger {trigger!r} ({', '.join(Trigger.values)})"]
    fields: dict[str, Any] = {
        "name": check(lambda: _name(data.name, "rule")),
        "trigger": trigger,
        "target_type": data.target_type,
        "target": (data.target or "").strip(),
        "enabled": bool(data.enabled),
        "description": (data.description or "")[:500],
    }
    fields["target_key"] = check(lambda: target_key(data.target_type, fields["target"]))
    if trigger in QUEUE_TRIGGERS and data.target_type not in (Target.ALL, Target.QUEUE):
        errors.setdefault("target_type", []).append("this trigger watches queues: all or queue")
    if trigger in RUN_TRIGGERS and data.target_type == Target.QUEUE:
        errors.setdefault("target_type", []).append("a queue is a target of queue triggers only")
    if trigger == Trigger.BEAT_NO_LEADER and data.target_type != Target.ALL:
        errors.setdefault("target_type", []).append("beat has no target: use all")
    fields["threshold"] = fields["duration"] = None
    if trigger in NEEDS_THRESHOLD:
        fields["threshold"] = check(
            lambda: _positive(data.threshold, "threshold", maximum=1_000_000)
        )
    if trigger in NEEDS_DURATION or (trigger == Trigger.QUEUE_DEPTH and data.duration):
        fields["duration"] = check(
            lambda: _positive(data.duration, "duration", maximum=DURATION_MAX)
        )
    if trigger == Trigger.QUEUE_DEPTH and not data.duration:
        fields["duration"] = 0
    repeat = data.repeat_interval
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 0 <= repeat <= DURATION_MAX:
        errors.setdefault("repeat_interval", []).append(
            f"must be 0 (never) to {DURATION_MAX} seconds, not {repeat!r}"
        )
    fields["repeat_interval"] = repeat
    if (data.quiet_start is None) != (data.quiet_end is None):
        errors.setdefault("quiet_start", []).append("give both ends of the quiet window, or none")
    try:
        ZoneInfo(data.quiet_timezone or "UTC")
    # OSError: a directory of the zone database ("America"), or a name too long for a path.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        errors.setdefault("quiet_timezone", []).append(f"unknown zone {data.quiet_timezone!r}")
    fields.update(
        quiet_start=data.quiet_start,
        quiet_end=data.quiet_end,
        quiet_timezone=data.quiet_timezone or "UTC",
    )
    names = list(dict.fromkeys(name.strip() for name in data.channels if name.strip()))
    channels = list(AlertChannel.objects.filter(name__in=names))
    unknown = sorted(set(names) - {channel.name for channel in channels})
    if unknown:
        errors.setdefault("channels", []).append(f"no channel named {', '.join(unknown)}")
    if errors:
        raise ScheduleError(errors)
    return fields, channels


def rule_save(
    data: RuleInput,
    *,
    actor: User = None,
    actor_name: str = "",
    source: str,
    create: bool | None = None,
) -> AlertRule:
    """Create or update the rule named `data.name`."""
    fields, channels = rule_clean(data)
    with transaction.atomic():
        rule = AlertRule.objects.select_for_update().filter(name=fields["name"]).first()
        if create is True and rule is not None:
            raise ScheduleError.on("name", f"a rule named {fields['name']!r} exists")
        if create is False and rule is None:
            raise AlertNotFound("rule", fields["name"])
        before = rule_snapshot(rule) if rule else {}
        rule = rule or AlertRule()
        for field, value in fields.items():
            setattr(rule, field, value)
        rule.save()
        rule.channels.set(channels)
        after = rule_snapshot(rule)
        _audit(
            f"rule {rule.name}",
            AuditEntry.Action.UPDATED if before else AuditEntry.Action.CREATED,
            actor=actor,
            actor_name=actor_name,
            source=source,
            changes={k: [before.get(k), v] for k, v in after.items() if before.get(k) != v},
        )
    return rule


def rule_snapshot(rule: AlertRule) -> dict[str, Any]:
    """A rule's fields as JSON (audit, export, the API)."""
    return {
        "name": rule.name,
        "enabled": rule.enabled,
        "trigger": rule.trigger,
        "target_type": rule.target_type,
        "target": rule.target,
        "threshold": rule.threshold,
        "duration": rule.duration,
        "channels": sorted(channel.name for channel in rule.channels.all()) if rule.pk else [],
        "repeat_interval": rule.repeat_interval,
        "quiet_start": rule.quiet_start.isoformat() if rule.quiet_start else None,
        "quiet_end": rule.quiet_end.isoformat() if rule.quiet_end else None,
        "quiet_timezone": rule.quiet_timezone,
        "description": rule.description,
    }


def rule_delete(*, name: str, actor: User = None, actor_name: str = "", source: str) -> None:
    with transaction.atomic():
        deleted, _ = AlertRule.objects.filter(name=name).delete()
        if not deleted:
            raise AlertNotFound("rule", name)
        _audit(
            f"rule {name}",
            AuditEntry.Action.DELETED,
            actor=actor,
            actor_name=actor_name,
            source=source,
            changes={},
        )


# --- incidents: what staff do --------------------------------------------------------------


def _incident(incident_id: int) -> Incident:
    try:
        return Incident.objects.select_for_update().select_related("rule").get(pk=incident_id)
    except (Incident.DoesNotExist, ValueError, TypeError):
        raise AlertNotFound("incident", incident_id) from None


def incident_acknowledge(
    *, incident_id: int, actor: User, note: str = "", source: str, actor_name: str = ""
) -> Incident:
    """Somebody is on it: no more repeats (the recovery is still told)."""
    with transaction.atomic():
        incident = _incident(incident_id)
        if not incident.is_open:
            raise ScheduleError.on("incident", f"incident {incident_id} is already resolved")
        incident.acknowledged_by = actor_of(actor)
        incident.acknowledged_at = timezone.now()
        incident.acknowledge_note = (note or "").strip()[:2000]
        incident.save(update_fields=["acknowledged_by", "acknowledged_at", "acknowledge_note"])
        _audit(
            f"incident {incident.pk}",
            AuditEntry.Action.ACKNOWLEDGED,
            actor=actor,
            actor_name=actor_name,
            source=source,
            changes={"note": [None, incident.acknowledge_note]},
        )
    return incident


def incident_silence(
    *,
    incident_id: int,
    until: datetime | None,
    actor: User,
    source: str,
    actor_name: str = "",
) -> Incident:
    """No notification of it at all until `until` (None lifts the silence)."""
    if until is not None and until <= timezone.now():
        raise ScheduleError.on("until", "must be in the future")
    with transaction.atomic():
        incident = _incident(incident_id)
        if not incident.is_open:
            raise ScheduleError.on("incident", f"incident {incident_id} is already resolved")
        before = incident.silenced_until
        incident.silenced_until = until
        incident.save(update_fields=["silenced_until"])
        _audit(
            f"incident {incident.pk}",
            AuditEntry.Action.SILENCED,
            actor=actor,
            actor_name=actor_name,
            source=source,
            changes={
                "silenced_until": [
                    before.isoformat() if before else None,
                    until.isoformat() if until else None,
                ]
            },
        )
    return incident
