"""Fixtures of the services' tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def retention_settings(settings: Any) -> Any:
    """Each table's retention (days) set apart from the others', agents' messages kept forever."""
    settings.RESULTS_RETENTION_DAYS = 10
    settings.EVENTS_RETENTION_DAYS = 20
    settings.AUDIT_RETENTION_DAYS = 30
    settings.AGENT_MESSAGE_RETENTION_DAYS = 0
    settings.TOURNAMENT_HISTORY_RETENTION_DAYS = 90
    settings.RETENTION_BATCH_SIZE = 5000
    return settings
