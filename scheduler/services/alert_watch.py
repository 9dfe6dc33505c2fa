"""The alert engine's second way in: conditions of the fleet that must hold for a while (beat
without a leader, a queue without a worker or too deep, a schedule without a success), checked
every ALERTS_WATCH_INTERVAL seconds by one process (scheduler/system/alert_watch.py), and the
notifications open incidents still owe (held back by a silence or a quiet window, or repeats).

When a condition started holding is kept in Redis per (rule, subject), so that whichever
process watches next measures from the same moment; it is forgotten when the condition stops.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from django.conf import settings
from django_celery_beat.models import PeriodicTask

from config.queues import QUEUES
from scheduler.core.formatting import duration_text
from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.models import AlertRule, Incident, ScheduleState
from scheduler.observability.health import beat_heartbeat
from scheduler.observability.queues import queue_depths
from scheduler.observability.worker_heartbeats import worker_queues, workers_seen_within
from scheduler.protocol import (
    ALERT_NO_SUCCESS_CHECKED_KEY,
    BEAT_LEADER_KEY,
    OBJECT_HEADER,
    RunState,
)
from scheduler.services.incidents import (
    LAST_SUCCESS_KEY,
    SINCE_KEY,
    Match,
    incident_match,
    incident_recover,
    notify_owed,
    rules_active,
)

Trigger = AlertRule.Trigger
Target = AlertRule.Target

# A schedule's last success is looked for at most this often (it reads every schedule watched).
NO_SUCCESS_EVERY = 60.0


@dataclass
class WatchReport:
    opened: int = 0
    recovered: int = 0
    notified: int = 0
    # (rule id, subject) of the incidents open when the round began: only those can recover, so
    # a condition that keeps not holding costs no query.
    open_at_start: set[tuple[int, str]] = field(default_factory=set)

    def as_dict(self) -> dict[str, int]:
        return {"opened": self.opened, "recovered": self.recovered, "notified": self.notified}


def alert_watch(*, now: float | None = None) -> WatchReport:
    """Check every state rule once, then send what open incidents owe."""
    now = time.time() if now is None else now
    rules = rules_active()
    report = WatchReport(
        open_at_start=set(
            Incident.objects.filter(resolved_at__isnull=True).values_list("rule_id", "subject")
        )
    )
    checks = {
        Trigger.BEAT_NO_LEADER: _watch_beat,
        Trigger.NO_WORKER: _watch_workers,
        Trigger.QUEUE_DEPTH: _watch_depths,
    }
    for rule in rules:
        check = checks.get(cast("Trigger", rule.trigger))
        if check is not None:
            check(rule, now, report)
    no_success = [rule for rule in rules if rule.trigger == Trigger.NO_SUCCESS]
    if no_success and _due(ALERT_NO_SUCCESS_CHECKED_KEY, now, NO_SUCCESS_EVERY):
        for rule in no_success:
            _watch_no_success(rule, now, report)
    moment = datetime.fromtimestamp(now, tz=UTC)
    for incident in Incident.objects.filter(resolved_at__isnull=True).select_related("rule"):
        report.notified += notify_owed(incident, moment)
    return report


def _due(key: str, now: float, every: float) -> bool:
    """Whether `every` seconds passed since this check last ran anywhere (and mark it run)."""
    return bool(get_redis().set(redis_key(key), str(now), nx=True, px=int(every * 1000)))


def _held_since(rule: AlertRule, subject: str, holds: bool, now: float) -> float | None:
    """When the condition of (rule, subject) started holding; None when it does not."""
    key, name = redis_key(SINCE_KEY), f"{rule.pk}|{subject}"
    if not holds:
        get_redis().hdel(key, name)
        return None
    pipe = get_redis().pipeline(transaction=False)
    pipe.hsetnx(key, name, str(now))
    pipe.hget(key, name)
    value = cast("bytes | None", pipe.execute()[1])
    return float(value) if value else now


def _judge(
    rule: AlertRule,
    subject: str,
    *,
    since: float | None,
    now: float,
    title: str,
    details: dict[str, Any],
    report: WatchReport,
) -> None:
    """Open (or attach to) the incident when the condition held long enough; else recover."""
    if since is not None and now - since >= (rule.duration or 0):
        moment = datetime.fromtimestamp(now, tz=UTC)
        incident = incident_match(
            Match(rule=rule, subject=subject, title=title, details=details), now=moment
        )
        if incident.opened_at == moment:
            report.opened += 1
    elif since is None and (rule.pk, subject) in report.open_at_start:
        report.recovered += len(incident_recover([rule], subject, why="condition cleared"))


def _watch_beat(rule: AlertRule, now: float, report: WatchReport) -> None:
    # The leader holds its lock (BEAT_LEADER_KEY) for BEAT_LEADER_TTL and renews it every tick:
    # when nobody holds it, nobody publishes runs.
    leader = cast("bytes | None", get_redis().get(redis_key(BEAT_LEADER_KEY)))
    since = _held_since(rule, "beat", leader is None, now)
    heartbeat = beat_heartbeat() if since is not None else None
    lasted = duration_text(now - since) if since is not None else ""
    _judge(
        rule,
        "beat",
        since=since,
        now=now,
        title=f"beat has had no leader for {lasted}",
        details={
            "last_heartbeat": (heartbeat or {}).get("at"),
            "last_leader": (heartbeat or {}).get("leader", ""),
        },
        report=report,
    )


def _queues_of(rule: AlertRule) -> list[str]:
    return [rule.target_key] if rule.target_type == Target.QUEUE else list(QUEUES)


def _watch_workers(rule: AlertRule, now: float, report: WatchReport) -> None:
    alive = workers_seen_within(settings.WORKER_HEALTH_WINDOW)
    consumed = worker_queues()
    for queue in _queues_of(rule):
        # A worker that never said what it consumes is taken to consume everything.
        serving = [name for name in alive if queue in consumed.get(name, {queue})]
        since = _held_since(rule, f"queue:{queue}", not serving, now)
        lasted = duration_text(now - since) if since is not None else ""
        _judge(
            rule,
            f"queue:{queue}",
            since=since,
            now=now,
            title=f"no worker has consumed queue {queue!r} for {lasted}",
            details={"queue": queue, "workers_alive": sorted(alive)},
            report=report,
        )


def _watch_depths(rule: AlertRule, now: float, report: WatchReport) -> None:
    depths = queue_depths()
    limit = rule.threshold or 0
    for queue in _queues_of(rule):
        depth = depths.get(queue, 0)
        since = _held_since(rule, f"queue:{queue}", depth > limit, now)
        _judge(
            rule,
            f"queue:{queue}",
            since=since,
            now=now,
            title=f"queue {queue!r} holds {depth} messages (over {limit})",
            details={"queue": queue, "depth": depth, "threshold": limit},
            report=report,
        )


def _schedules_of(rule: AlertRule) -> list[str]:
    rows = PeriodicTask.objects.filter(enabled=True)
    if rule.target_type == Target.SCHEDULE:
        rows = rows.filter(name=rule.target_key)
    elif rule.target_type == Target.TASK:
        rows = rows.filter(task=rule.target_key)
    elif rule.target_type != Target.ALL:
        header = f'"{OBJECT_HEADER}": "{rule.target_type}:{rule.target_key}"'
        rows = rows.filter(headers__contains=header)
    return list(rows.values_list("name", flat=True))


def _watch_no_success(rule: AlertRule, now: float, report: WatchReport) -> None:
    names = _schedules_of(rule)
    if not names:
        return
    redis_seen = cast("list[bytes | None]", get_redis().hmget(redis_key(LAST_SUCCESS_KEY), names))
    stored = dict(
        ScheduleState.objects.filter(
            periodic_task_name__in=names, status=RunState.SUCCESS
        ).values_list("periodic_task_name", "done_at")
    )
    baseline = rule.updated_at.timestamp()
    for name, seen in zip(names, redis_seen, strict=True):
        done = stored.get(name)
        last = max(
            baseline,
            float(seen) if seen else 0.0,
            done.timestamp() if done else 0.0,
        )
        late = now - last >= (rule.duration or 0)
        subject = f"schedule:{name}"
        if not late and (rule.pk, subject) not in report.open_at_start:
            continue
        since = last if late else None
        _judge(
            rule,
            subject,
            since=since,
            now=now,
            title=f"schedule {name!r} has not succeeded for {duration_text(now - last)}",
            details={"last_success": datetime.fromtimestamp(last, tz=UTC).isoformat()},
            report=report,
        )
