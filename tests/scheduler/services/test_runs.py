"""How long a publish of a run keeps trying to reach the broker (services/runs.py)."""

from __future__ import annotations

import pytest
from django.conf import settings

from scheduler.services.runs import publish_retry_policy


def test_a_publish_stops_retrying_once_its_budget_has_passed() -> None:
    policy = publish_retry_policy(budget=0.5)
    give_up = policy.pop("errback")
    assert policy == settings.CELERY_TASK_PUBLISH_RETRY_POLICY
    refused = ConnectionError("Timeout connecting to server")
    give_up(refused, 0.2)  # inside the budget: kombu sleeps and tries again
    with pytest.raises(ConnectionError, match="Timeout connecting"):
        give_up(refused, 0.6)  # the next try would start past it: the caller gets the error
