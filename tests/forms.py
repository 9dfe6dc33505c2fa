"""Admin add forms as a browser posts them, inlines included, for the tests that fill them in."""

from __future__ import annotations

from typing import Any


def agent_form(**fields: Any) -> dict[str, Any]:
    """The agent form, with its empty schedules inline."""
    return {
        "name": "Helper",
        "slug": "helper",
        "kind": "chat",
        "brain": "rules",
        "brain_config": "{}",
        "is_active": "on",
        "owner": "",
        "webhook_url": "",
        "state": "{}",
        "schedules-TOTAL_FORMS": "0",
        "schedules-INITIAL_FORMS": "0",
        "schedules-MIN_NUM_FORMS": "0",
        "schedules-MAX_NUM_FORMS": "1000",
        **fields,
    }


def tournament_form(**fields: Any) -> dict[str, Any]:
    """The tournament form, with its empty entries inline."""
    return {
        "name": "Summer cup",
        "starts_at_0": "2026-07-01",
        "starts_at_1": "09:00:00",
        "ends_at_0": "2026-07-01",
        "ends_at_1": "17:00:00",
        "symbols": "acme, bolt crux",
        "initial_cash": "5000",
        "decision_interval": "120",
        "market_seed": "3",
        "entries-TOTAL_FORMS": "0",
        "entries-INITIAL_FORMS": "0",
        "entries-MIN_NUM_FORMS": "0",
        "entries-MAX_NUM_FORMS": "1000",
        **fields,
    }


# A catalog entry the admin tests register for themselves (tests/scheduler/admin/).
ECHO = "tests.admin_echo"


def periodic_task_form(**overrides: Any) -> dict[str, Any]:
    """What the periodic task add form posts when staff fill in a name, a task (ECHO: the
    admin tests register it) and a schedule; `None` leaves a field out."""
    data: dict[str, Any] = {
        "name": "nightly echo",
        "task": ECHO,
        "enabled": "on",
        "description": "",
        "kwargs": '{"times": 3}',
        "schedule": "every monday at 8am",
        "timezone": "Europe/London",
        "interval": "",
        "crontab": "",
        "solar": "",
        "clocked": "",
        "start_time_0": "",
        "start_time_1": "",
        "overlap": "",
        "catchup": "latest",
        "catchup_window": "",
        "jitter": "0",
        "max_runs": "",
        "pause_after_failures": "",
        "queue": "",
        "expires_0": "",
        "expires_1": "",
        "expire_seconds": "",
        "priority": "",
        "exchange": "",
        "routing_key": "",
        "headers": "{}",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}
