from __future__ import annotations

from typing import Any

import pytest

from tests.alert_setup import alerting


@pytest.fixture(autouse=True)
def recording_channels(alerting: list[Any]) -> list[Any]:
    """Every test here: deliveries in the test process, to the recording kind."""
    return alerting


__all__ = ["alerting"]
