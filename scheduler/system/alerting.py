"""What alerting runs in the background: the delivery of one notification to its channel (the
body of `scheduler.deliver_notification`), and the watcher thread that runs the alert engine's
periodic checks (scheduler/services/alert_watch.py) in worker and beat processes, and resumes
the schedules whose pause ended (scheduler/services/pauses.py).

The watcher runs in every worker and every beat, and a Redis lock lets one of them check per
interval: the checks go on when beat is down (so "beat has no leader" can be told) and when
every worker of a queue is gone (so "no worker on a queue" can), as long as one process is up.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from scheduler.core.channel_kinds import DeliveryFailed
from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.models import NotificationDelivery
from scheduler.protocol import ALERT_WATCH_LOCK_KEY, PAUSES_RESUME_LOCK_KEY
from scheduler.services.alert_watch import alert_watch
from scheduler.services.alerts import channel_kind
from scheduler.services.errors import ScheduleError
from scheduler.services.incidents import delivery_payload
from scheduler.services.pauses import schedules_resume_due

logger = logging.getLogger(__name__)

Status = NotificationDelivery.Status


def retry_delay(attempt: int) -> float:
    """Seconds before attempt `attempt + 1`: ALERTS_RETRY_DELAY doubled each time, at most 5 min."""
    return float(min(settings.ALERTS_RETRY_DELAY * 2 ** (attempt - 1), 300))


def notification_deliver(task: Any, delivery_id: int) -> dict[str, Any]:
    """Send the logged delivery `delivery_id`; retried as ALERTS_DELIVERY_RETRIES says, every
    attempt's outcome written on its row (status, response code, error)."""
    delivery = (
        NotificationDelivery.objects.select_related("channel", "incident__rule")
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None:
        return {"delivery": delivery_id, "sent": False, "reason": "no such delivery"}
    if delivery.status == Status.SENT:
        return {"delivery": delivery_id, "sent": False, "reason": "already sent"}
    attempt = (task.request.retries or 0) + 1
    rows = NotificationDelivery.objects.filter(pk=delivery_id)
    try:
        kind = channel_kind(delivery.channel.kind)
        code = kind.send(delivery.channel.config, delivery_payload(delivery))
    except ScheduleError as exc:  # the kind is gone from the registry
        rows.update(status=Status.FAILED, attempts=attempt, error=str(exc))
        raise DeliveryFailed(str(exc), retryable=False) from exc
    except DeliveryFailed as exc:
        retries = settings.ALERTS_DELIVERY_RETRIES
        final = not exc.retryable or task.request.is_eager or attempt > retries
        rows.update(
            status=Status.FAILED if final else Status.PENDING,
            attempts=attempt,
            response_code=exc.response_code,
            error=str(exc)[:5000],
        )
        if final:
            raise
        raise task.retry(exc=exc, countdown=retry_delay(attempt), max_retries=retries) from exc
    rows.update(
        status=Status.SENT, attempts=attempt, response_code=code, error="", sent_at=timezone.now()
    )
    return {
        "delivery": delivery_id,
        "sent": True,
        "channel": delivery.channel.name,
        "kind": delivery.kind,
        "response_code": code,
        "attempts": attempt,
    }


class AlertWatcher(threading.Thread):
    """Every `interval` seconds, the alert engine's checks; every `resume_interval` seconds, the
    resume of the pauses that ended (`schedules_resume_due`); each in one process of the fleet.
    0 turns either off."""

    def __init__(self, interval: float, resume_interval: float = 0.0) -> None:
        super().__init__(name="alert-watcher", daemon=True)
        self.interval = interval
        self.resume_interval = resume_interval
        self.stopping = threading.Event()

    def run(self) -> None:
        steps = [step for step in (self.interval, self.resume_interval) if step > 0]
        if not steps:
            return
        start = time.monotonic()
        alerts_at = start + self.interval
        resume_at = start + self.resume_interval
        while not self.stopping.wait(min(steps)):
            now = time.monotonic()
            if self.resume_interval > 0 and now >= resume_at:
                resume_at = now + self.resume_interval
                self.resume_tick()
            if self.interval > 0 and now >= alerts_at:
                alerts_at = now + self.interval
                self.tick()

    def tick(self) -> bool:
        """One round, when this process won the lock for it; whether it did."""
        try:
            won = get_redis().set(
                redis_key(ALERT_WATCH_LOCK_KEY), "1", nx=True, px=max(int(self.interval * 900), 100)
            )
            if not won:
                return False
            report = alert_watch(now=time.time())
            if report.opened or report.recovered or report.notified:
                logger.info("alert watch: %s", report.as_dict())
            return True
        except Exception:
            logger.warning("the alert watch failed; trying again next round", exc_info=True)
            return False
        finally:
            close_old_connections()

    def resume_tick(self) -> bool:
        """Resume the schedules whose pause ended, when this process won the lock for this
        round; whether it did. The lock lapses before the next round, so some process of the
        fleet looks every `resume_interval` seconds: a pause ends within about that of its
        time, and a look that finds none ended costs one indexed read."""
        try:
            won = get_redis().set(
                redis_key(PAUSES_RESUME_LOCK_KEY),
                "1",
                nx=True,
                px=max(int(self.resume_interval * 900), 100),
            )
            if not won:
                return False
            resumed = schedules_resume_due()
            if resumed:
                logger.info("resumed by themselves (their pause ended): %s", ", ".join(resumed))
            return True
        except Exception:
            logger.warning("the resume of ended pauses failed; trying again", exc_info=True)
            return False
        finally:
            close_old_connections()

    def stop(self) -> None:
        self.stopping.set()


_watcher: AlertWatcher | None = None


def watcher_start(**_: Any) -> None:
    global _watcher
    interval, resume = settings.ALERTS_WATCH_INTERVAL, settings.SCHEDULE_RESUME_INTERVAL
    if _watcher is None and (interval > 0 or resume > 0):
        _watcher = AlertWatcher(interval, resume)
        _watcher.start()


def watcher_stop(**_: Any) -> None:
    global _watcher
    if _watcher is not None:
        _watcher.stop()
        _watcher = None
