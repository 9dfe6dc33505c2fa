"""The alert engine: rules matched against runs and against the state of beat, workers and
queues; an incident per (rule, subject) from its first match to its recovery; notifications
owed by incidents, queued to their channels.

Two ways in:
- `alert_event(event)`: subscribed to run events (`apps.py`), in the process that records them
  (a worker after the run's result is stored, beat for missed runs). Failures, streaks of
  failures, long runs, missed runs open incidents; a success closes them.
- `alert_watch()`: every ALERTS_WATCH_INTERVAL seconds in one process of the fleet (a thread in
  every worker and beat takes a Redis lock: scheduler/system/alert_watch.py). Beat without a
  leader, a queue without a worker or too deep, a schedule without a success: each is a
  condition that must hold for the rule's duration (when it started holding is kept in Redis),
  and its incident recovers when it stops holding. Notifications held back by a silence or a
  quiet window, and repeats, go out from here too.

One notification when an incident opens ("down"), one when it recovers (naming how long it
lasted), repeats only after the rule's repeat interval and never once acknowledged. A silence
holds back every notification until it ends; a quiet window holds back "down" and repeats.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from config.celery import app
from scheduler.catalog.declaring import load_catalog
from scheduler.core.channel_kinds import Notification
from scheduler.core.formatting import duration_text
from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.live.events import event_record
from scheduler.models import AlertChannel, AlertRule, AuditEntry, Incident, NotificationDelivery
from scheduler.protocol import (
    ALERT_LAST_SUCCESS_KEY,
    ALERT_SINCE_KEY,
    ALERT_STREAKS_KEY,
    EventPayload,
    EventType,
    RunState,
)
from scheduler.services.alerts import AlertNotFound, channel_kind
from scheduler.services.audit import audit_write
from scheduler.services.errors import ScheduleError

logger = logging.getLogger(__name__)

Trigger = AlertRule.Trigger
Target = AlertRule.Target
Kind = NotificationDelivery.Kind

DELIVERY_TASK = "scheduler.deliver_notification"
# Rules are read again at most this often per process (seconds); saves in this process at once.
RULES_TTL = 5.0
# Redis: failures in a row per (rule, subject); when a condition started holding; last success.
STREAKS_KEY = ALERT_STREAKS_KEY
SINCE_KEY = ALERT_SINCE_KEY
LAST_SUCCESS_KEY = ALERT_LAST_SUCCESS_KEY

# A schedule that paused itself after failed runs: its incident's subject is "paused:<name>",
# opened by the rules that watch its failures and recovered when it is resumed.
PAUSED = "paused"
_PAUSE_TRIGGERS = (Trigger.FAILED, Trigger.CONSECUTIVE_FAILURES)

_RECOVERED_BY_SUCCESS = (
    Trigger.FAILED,
    Trigger.CONSECUTIVE_FAILURES,
    Trigger.MISSED,
    Trigger.NO_SUCCESS,
)


# --- rules, cached per process ----------------------------------------------------------------


@dataclass
class _RuleCache:
    rules: list[AlertRule] = field(default_factory=list)
    loaded_at: float = -1e9
    lock: threading.Lock = field(default_factory=threading.Lock)


_cache = _RuleCache()


def rules_reload() -> None:
    """Forget the cached rules (a rule or channel was saved in this process)."""
    _cache.loaded_at = -1e9


def rules_active() -> list[AlertRule]:
    """The enabled rules with their channels, read again after RULES_TTL seconds."""
    now = time.monotonic()
    if now - _cache.loaded_at < RULES_TTL:
        return _cache.rules
    with _cache.lock:
        if now - _cache.loaded_at >= RULES_TTL:
            _cache.rules = list(AlertRule.objects.filter(enabled=True).prefetch_related("channels"))
            _cache.loaded_at = now
    return _cache.rules


def _rule_watches_run(rule: AlertRule, event: EventPayload) -> bool:
    if rule.target_type == Target.ALL:
        return True
    if rule.target_type == Target.SCHEDULE:
        return event["periodic_task_name"] == rule.target_key
    if rule.target_type == Target.TASK:
        return event["task_name"] == rule.target_key
    owner = event["object"]
    return owner is not None and (owner["type"], owner["id"]) == (
        rule.target_type,
        rule.target_key,
    )


def run_subject(event: EventPayload) -> str:
    """What a run's incident is about: its schedule, else its task."""
    if event["periodic_task_name"]:
        return f"schedule:{event['periodic_task_name']}"
    return f"task:{event['task_name']}"


def _subject_label(subject: str) -> str:
    kind, _, name = subject.partition(":")
    return f"{kind} {name!r}" if name else kind


# --- incidents --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    rule: AlertRule
    subject: str
    title: str
    details: dict[str, Any]
    object: tuple[str, str] | None = None


def incident_match(match: Match, *, now: datetime | None = None) -> Incident:
    """Open the incident of (rule, subject), or attach this match to the open one."""
    now = now or timezone.now()
    rule, subject = match.rule, match.subject
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                rule=rule,
                subject=subject,
                title=match.title[:500],
                opened_at=now,
                last_match_at=now,
                details=match.details,
                object_type=match.object[0] if match.object else "",
                object_id=match.object[1] if match.object else "",
            )
            _incident_event(incident, EventType.INCIDENT_OPENED, match.title)
            _notify(incident, Kind.DOWN, now)
            return incident
    except IntegrityError:  # one is open: this match belongs to it
        pass
    Incident.objects.filter(rule=rule, subject=subject, resolved_at__isnull=True).update(
        match_count=F("match_count") + 1, last_match_at=now, details=match.details
    )
    incident = Incident.objects.select_related("rule").get(
        rule=rule, subject=subject, resolved_at__isnull=True
    )
    notify_owed(incident, now)
    return incident


def incident_recover(
    rules: Iterable[AlertRule], subject: str, *, now: datetime | None = None, why: str = ""
) -> list[Incident]:
    """Close the open incidents of `rules` about `subject`, telling who heard they opened."""
    now = now or timezone.now()
    by_id = {rule.pk: rule for rule in rules}
    if not by_id:
        return []
    closed = []
    for incident in Incident.objects.filter(
        rule_id__in=by_id, subject=subject, resolved_at__isnull=True
    ):
        with transaction.atomic():
            if not Incident.objects.filter(pk=incident.pk, resolved_at__isnull=True).update(
                resolved_at=now
            ):
                continue  # another process closed it first
            incident.resolved_at = now
            incident.rule = by_id[incident.rule_id]
            lasted = duration_text((now - incident.opened_at).total_seconds())
            message = f"{incident.title}: recovered after {lasted}" + (f" ({why})" if why else "")
            _incident_event(incident, EventType.INCIDENT_RESOLVED, message)
            _notify(incident, Kind.RECOVERED, now)
        closed.append(incident)
    return closed


def incident_resolve(
    *, incident_id: int, actor: Any = None, actor_name: str = "", source: str
) -> Incident:
    """Close an incident by hand (its recovery is told as any other), audited as `actor`'s.

    AlertNotFound for an unknown id; ScheduleError when it is resolved already (by hand, or by
    the engine a moment before)."""
    from_db = Incident.objects.select_related("rule").filter(pk=incident_id).first()
    if from_db is None:
        raise AlertNotFound("incident", incident_id)
    if not from_db.is_open:
        raise ScheduleError.on("incident", f"incident {incident_id} is already resolved")
    with transaction.atomic():
        closed = incident_recover([from_db.rule], from_db.subject, why=f"closed via {source}")
        if not closed:  # another process closed it first
            raise ScheduleError.on("incident", f"incident {incident_id} is already resolved")
        incident = closed[0]
        resolved_at = incident.resolved_at.isoformat() if incident.resolved_at else None
        audit_write(
            None,
            name=f"incident {incident.pk}",
            action=AuditEntry.Action.UPDATED,
            actor=actor,
            actor_name=actor_name,
            source=source,
            changes={"resolved_at": [None, resolved_at]},
        )
    return incident


def _incident_event(incident: Incident, type: str, message: str) -> None:
    kind, _, name = incident.subject.partition(":")
    event_record(
        type=type,
        periodic_task_name=name if kind in ("schedule", PAUSED) else "",
        task_name=name if kind == "task" else "",
        state=RunState.SUCCESS if type == EventType.INCIDENT_RESOLVED else RunState.FAILURE,
        message=message,
        payload={
            "incident": incident.pk,
            "rule": incident.rule.name,
            "subject": incident.subject,
            "trigger": incident.rule.trigger,
        },
        object_type=incident.object_type,
        object_id=incident.object_id,
    )


# --- notifications ----------------------------------------------------------------------------


def in_quiet_window(rule: AlertRule, now: datetime) -> bool:
    if rule.quiet_start is None or rule.quiet_end is None:
        return False
    local = now.astimezone(ZoneInfo(rule.quiet_timezone or "UTC")).time()
    start, end = rule.quiet_start, rule.quiet_end
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def _silenced(incident: Incident, now: datetime) -> bool:
    return incident.silenced_until is not None and incident.silenced_until > now


def notify_owed(incident: Incident, now: datetime) -> int:
    """The "down" an incident still owes (held back before), or its repeat when it is due."""
    if not incident.is_open:
        return 0
    if incident.notified_at is None:
        return _notify(incident, Kind.DOWN, now)
    repeat = incident.rule.repeat_interval
    if (
        repeat
        and incident.acknowledged_at is None
        and incident.notified_at + timedelta(seconds=repeat) <= now
    ):
        return _notify(incident, Kind.REPEAT, now)
    return 0


def _notify(incident: Incident, kind: str, now: datetime) -> int:
    """Queue `kind` of `incident` to its rule's channels, unless held back; how many."""
    rule = incident.rule
    if _silenced(incident, now):
        return 0
    if kind == Kind.RECOVERED:
        if incident.notified_at is None:  # nobody heard it went down
            return 0
    elif in_quiet_window(rule, now):
        return 0
    channels = [channel for channel in rule.channels.all() if channel.enabled]
    notification = incident_notification(incident, kind, now)
    for channel in channels:
        delivery_queue(channel, notification, incident=incident)
    if kind != Kind.RECOVERED:
        Incident.objects.filter(pk=incident.pk).update(notified_at=now)
        incident.notified_at = now
    return len(channels)


def incident_notification(incident: Incident, kind: str, now: datetime) -> Notification:
    rule = incident.rule
    end = incident.resolved_at or now
    lasted = (end - incident.opened_at).total_seconds()
    tag = {"down": "DOWN", "repeat": "STILL DOWN", "recovered": "RECOVERED"}[str(kind)]
    lines = [incident.title, f"Rule: {rule.name} ({rule.get_trigger_display()})"]
    if kind == Kind.RECOVERED:
        lines.append(f"Recovered after {duration_text(lasted)}.")
    else:
        lines.append(f"Open since {incident.opened_at.isoformat(timespec='seconds')}.")
        lines.append(f"Matches so far: {incident.match_count}.")
    error = incident.details.get("error")
    if error:
        lines.append(f"Last error: {error}")
    url = f"{settings.SITE_URL}/admin/scheduler/incident/{incident.pk}/change/"
    if settings.SITE_URL:
        lines.append(url)
    return Notification(
        kind=str(kind),
        subject=f"[{tag}] {incident.title}"[:500],
        message="\n".join(lines),
        channel="",
        incident={
            "id": incident.pk,
            "rule": rule.name,
            "trigger": rule.trigger,
            "subject": incident.subject,
            "title": incident.title,
            "opened_at": incident.opened_at.isoformat(),
            "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
            "duration_seconds": round(lasted, 3),
            "match_count": incident.match_count,
            "details": incident.details,
            "url": url if settings.SITE_URL else "",
        },
    )


def delivery_queue(
    channel: AlertChannel, notification: Notification, *, incident: Incident | None = None
) -> NotificationDelivery:
    """Log one delivery of `notification` to `channel` and queue it once committed."""
    delivery = NotificationDelivery.objects.create(
        incident=incident,
        channel=channel,
        kind=notification.kind,
        subject=notification.subject,
        message=notification.message,
    )
    try:
        queue = getattr(channel_kind(channel.kind), "queue", "default")
    except ScheduleError as exc:  # the kind left the registry since the channel was saved
        delivery.status, delivery.error = NotificationDelivery.Status.FAILED, str(exc)
        delivery.save(update_fields=["status", "error"])
        return delivery

    def send() -> None:
        if not settings.CELERY_ENABLED:
            # No broker in this deployment: sent here, its failure logged on the delivery.
            load_catalog()
            app.tasks[DELIVERY_TASK].apply(kwargs={"delivery_id": delivery.pk}, throw=False)
            return
        try:
            result = app.send_task(
                DELIVERY_TASK,
                kwargs={"delivery_id": delivery.pk},
                queue=queue,
                kwargsrepr=json.dumps({"delivery_id": delivery.pk}),
            )
        except Exception as exc:
            logger.warning("could not queue notification %s", delivery.pk, exc_info=True)
            NotificationDelivery.objects.filter(pk=delivery.pk).update(
                status=NotificationDelivery.Status.FAILED,
                error=f"could not be queued: {type(exc).__name__}: {exc}",
            )
        else:
            NotificationDelivery.objects.filter(pk=delivery.pk).update(task_id=result.id)

    transaction.on_commit(send, robust=True)
    return delivery


def delivery_payload(delivery: NotificationDelivery) -> Notification:
    """The notification a logged delivery carries, as its channel kind receives it."""
    incident = delivery.incident
    body: dict[str, Any] = {}
    if incident is not None:
        body = incident_notification(incident, delivery.kind, delivery.created_at).incident
    return Notification(
        kind=delivery.kind,
        subject=delivery.subject,
        message=delivery.message,
        channel=delivery.channel.name,
        incident=body,
    )


def channel_test(*, name: str) -> NotificationDelivery:
    """Queue a test notification to the channel `name` (healthchecks' "send test")."""
    channel = AlertChannel.objects.filter(name=name).first()
    if channel is None:
        raise AlertNotFound("channel", name)
    notification = Notification(
        kind=Kind.TEST,
        subject=f"[TEST] agent scheduler: test notification to {channel.name}",
        message="A test notification: when you read this, the channel works.",
        channel=channel.name,
    )
    return delivery_queue(channel, notification)


def channel_send_test(
    *, name: str, actor: Any = None, actor_name: str = "", source: str
) -> NotificationDelivery:
    """`channel_test`, audited as `actor`'s: who sent a test to which channel, and its delivery."""
    with transaction.atomic():
        if not AlertChannel.objects.filter(name=name).exists():
            raise AlertNotFound("channel", name)
        entry = audit_write(
            None,
            name=f"channel {name}"[:200],
            action=AuditEntry.Action.TESTED,
            actor=actor,
            actor_name=actor_name,
            source=source,
            changes={},
        )
        delivery = channel_test(name=name)
        entry.changes = {"delivery": [None, delivery.pk]}
        entry.save(update_fields=["changes"])
    return delivery


# --- runs -------------------------------------------------------------------------------------


def alert_event(event: EventPayload) -> None:
    """Match one run event against the rules (subscribed to task.* in `apps.py`)."""
    rules = rules_active()
    if not rules:
        return
    kind = event["type"]
    if kind not in (EventType.TASK_FAILED, EventType.TASK_SUCCEEDED, EventType.TASK_MISSED):
        return
    watching = [rule for rule in rules if _rule_watches_run(rule, event)]
    if not watching:
        return
    subject = run_subject(event)
    if kind == EventType.TASK_MISSED:
        _matches(watching, event, subject, Trigger.MISSED, "missed a run")
    elif kind == EventType.TASK_FAILED:
        _failed(watching, event, subject)
    else:
        _succeeded(watching, event, subject)


def _run_match(rule: AlertRule, event: EventPayload, subject: str, what: str) -> Match:
    owner = event["object"]
    return Match(
        rule=rule,
        subject=subject,
        title=f"{_subject_label(subject)} {what}",
        details={
            "task_id": event["task_id"],
            "task_name": event["task_name"],
            "error": event["message"][:2000],
            "duration": event["duration"],
            "worker": event["worker"],
        },
        object=(owner["type"], owner["id"]) if owner else None,
    )


def _matches(
    rules: list[AlertRule], event: EventPayload, subject: str, trigger: str, what: str
) -> None:
    for rule in rules:
        if rule.trigger == trigger:
            incident_match(_run_match(rule, event, subject, what))


def _long(rule: AlertRule, event: EventPayload) -> bool:
    return event["duration"] is not None and event["duration"] > (rule.duration or 0)


def _failed(rules: list[AlertRule], event: EventPayload, subject: str) -> None:
    streak_rules = [rule for rule in rules if rule.trigger == Trigger.CONSECUTIVE_FAILURES]
    streaks = _streaks_add(streak_rules, subject)
    for rule in rules:
        if rule.trigger == Trigger.FAILED:
            incident_match(_run_match(rule, event, subject, "failed"))
        elif rule.trigger == Trigger.CONSECUTIVE_FAILURES and streaks[rule.pk] >= (
            rule.threshold or 1
        ):
            what = f"failed {streaks[rule.pk]} times in a row"
            incident_match(_run_match(rule, event, subject, what))
        elif rule.trigger == Trigger.LONG_RUN and _long(rule, event):
            what = f"ran {duration_text(event['duration'] or 0)} (over {rule.duration} s)"
            incident_match(_run_match(rule, event, subject, what))


def _succeeded(rules: list[AlertRule], event: EventPayload, subject: str) -> None:
    _streaks_clear([r for r in rules if r.trigger == Trigger.CONSECUTIVE_FAILURES], subject)
    if event["periodic_task_name"] and any(r.trigger == Trigger.NO_SUCCESS for r in rules):
        get_redis().hset(redis_key(LAST_SUCCESS_KEY), event["periodic_task_name"], str(time.time()))
    recovering = [rule for rule in rules if rule.trigger in _RECOVERED_BY_SUCCESS]
    for rule in rules:
        if rule.trigger == Trigger.LONG_RUN:
            if _long(rule, event):
                what = f"ran {duration_text(event['duration'] or 0)} (over {rule.duration} s)"
                incident_match(_run_match(rule, event, subject, what))
            else:
                recovering.append(rule)
    incident_recover(recovering, subject, why=f"run {event['task_id']} succeeded")


def _streak_field(rule: AlertRule, subject: str) -> str:
    return f"{rule.pk}|{subject}"


def _streaks_add(rules: list[AlertRule], subject: str) -> dict[int, int]:
    if not rules:
        return {}
    pipe = get_redis().pipeline(transaction=False)
    for rule in rules:
        pipe.hincrby(redis_key(STREAKS_KEY), _streak_field(rule, subject), 1)
    return {rule.pk: int(count) for rule, count in zip(rules, pipe.execute(), strict=True)}


def _streaks_clear(rules: list[AlertRule], subject: str) -> None:
    if rules:
        get_redis().hdel(redis_key(STREAKS_KEY), *(_streak_field(r, subject) for r in rules))


# --- schedules paused by themselves -----------------------------------------------------------


def schedule_paused_alert(event: EventPayload, *, what: str) -> list[Incident]:
    """The schedule of `event` (its last failed run) paused itself: an incident on each rule
    that watches its failures ("a run failed", "N consecutive failures", whatever its N: the
    schedule makes no more runs to reach it), titled "schedule '<name>' <what>".

    Its own subject ("paused:<name>"), not the failures' one: told as an incident of its own
    ("down"), not as one more match of an incident already open about the failures.
    """
    rules = [
        rule
        for rule in rules_active()
        if rule.trigger in _PAUSE_TRIGGERS and _rule_watches_run(rule, event)
    ]
    name = event["periodic_task_name"]
    owner = event["object"]
    opened = []
    for rule in rules:
        match = Match(
            rule=rule,
            subject=f"{PAUSED}:{name}",
            title=f"schedule {name!r} {what}",
            details={
                "task_id": event["task_id"],
                "task_name": event["task_name"],
                "error": event["message"][:2000],
                "worker": event["worker"],
                "paused": True,
            },
            object=(owner["type"], owner["id"]) if owner else None,
        )
        opened.append(incident_match(match))
    return opened


def schedule_paused_recover(names: Iterable[str], *, why: str) -> list[Incident]:
    """Close the incidents of schedules that paused themselves, now resumed."""
    rules = [rule for rule in rules_active() if rule.trigger in _PAUSE_TRIGGERS]
    closed: list[Incident] = []
    if not rules:
        return closed
    for name in names:
        closed += incident_recover(rules, f"{PAUSED}:{name}", why=why)
    return closed
