"""Celery signal receivers: each translates one worker event into one call of our code."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import heartbeat_sent, worker_ready, worker_shutdown

from scheduler.workers import forget_worker, record_worker_seen

logger = logging.getLogger(__name__)


@worker_ready.connect
def _worker_ready(sender: Any = None, **kwargs: Any) -> None:
    _record(sender.hostname)


@heartbeat_sent.connect
def _heartbeat_sent(sender: Any = None, **kwargs: Any) -> None:
    _record(sender.eventer.hostname)


@worker_shutdown.connect
def _worker_shutdown(sender: Any = None, **kwargs: Any) -> None:
    try:
        forget_worker(sender.hostname)
    except Exception:  # shutting down: Redis may already be gone
        logger.debug("could not remove worker %s from the live set", sender.hostname)


def _record(hostname: str) -> None:
    # A heartbeat must never take the worker down: a Redis hiccup only delays liveness.
    try:
        record_worker_seen(hostname)
    except Exception:
        logger.warning("could not record heartbeat of worker %s", hostname, exc_info=True)
