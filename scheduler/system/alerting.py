"""What alerting runs in the background: the delivery of one notification to its channel (the
body of `scheduler.deliver_notification`), and the watcher thread that runs the alert engine's
periodic checks (scheduler/services/alert_watch.py) in worker and beat processes.

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
from scheduler.protocol import ALERT_WATCH_LOCK_KEY
from scheduler.services.alert_watch import alert_watch
from scheduler.services.alerts import channel_kind
from scheduler.services.errors import ScheduleError
from scheduler.services.incidents import delivery_payload

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
    """Every `interval` seconds, the alert engine's checks, in one process of the fleet."""

    def __init__(self, interval: float) -> None:
        super().__init__(name="alert-watcher", daemon=True)
        self.interval = interval
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
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

    def stop(self) -> None:
        self.stopping.set()


_watcher: AlertWatcher | None = None


def watcher_start(**_: Any) -> None:
    global _watcher
    if _watcher is None and settings.ALERTS_WATCH_INTERVAL > 0:
        _watcher = AlertWatcher(settings.ALERTS_WATCH_INTERVAL)
        _watcher.start()


def watcher_stop(**_: Any) -> None:
    global _watcher
    if _watcher is not None:
        _watcher.stop()
        _watcher = None
