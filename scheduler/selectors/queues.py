"""Reads of queues: each of ours (config/queues.py) with the messages waiting in it, whether
staff paused it (and who, when, why), and the live workers meant to consume it."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from config.queues import QUEUES
from scheduler.models import QueuePause
from scheduler.observability.queues import paused_queues, queue_depths
from scheduler.observability.worker_heartbeats import worker_queues, workers_seen_within


def queue_known(name: str) -> bool:
    return name in QUEUES


def queue_pause_shown(pause: QueuePause | None) -> dict[str, Any]:
    """A queue's pause as every interface shows it (`paused` False, the rest None: not paused)."""
    if pause is None:
        return {"paused": False, "paused_at": None, "paused_by": None, "note": None}
    by = pause.paused_by.get_username() if pause.paused_by is not None else pause.paused_by_name
    return {
        "paused": True,
        "paused_at": pause.paused_at,
        "paused_by": by or None,
        "note": pause.note,
    }


def queues_listed(*, depths: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Every queue of ours, in config/queues.py's order: name, purpose, depth (messages
    waiting), its pause (`queue_pause_shown`) and `workers`, the live workers started to
    consume it (a paused queue keeps them: they take it up again when it is resumed).

    `depths`: read already by the caller; else read here (Redis errors are raised).
    """
    depths = queue_depths() if depths is None else depths
    paused = paused_queues()
    alive = workers_seen_within(settings.WORKER_HEALTH_WINDOW)
    consumers = worker_queues()
    return [
        {
            "name": name,
            "purpose": spec.purpose,
            "depth": depths.get(name, 0),
            **queue_pause_shown(paused.get(name)),
            "workers": sorted(host for host in alive if name in consumers.get(host, ())),
        }
        for name, spec in QUEUES.items()
    ]
