"""What the alert API's tests share: channels of the tests' recording kind, delivered in the test
(no broker): tests/alert_setup.py's `alerting`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.alert_setup import alerting


@pytest.fixture
def recording(alerting: list[Any]) -> list[Any]:
    """Deliveries run in the test (no broker), to the tests' recording kind ("record")."""
    return alerting


__all__ = ["alerting", "recording"]
