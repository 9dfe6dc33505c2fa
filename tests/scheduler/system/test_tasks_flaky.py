"""`scheduler.flaky`: fails and succeeds in turn as its pattern says, counted per schedule."""

from __future__ import annotations

import uuid

import pytest

from scheduler.services import task_validate
from scheduler.services.errors import ScheduleError
from scheduler.system.tasks import FlakyFailure, flaky

pytestmark = pytest.mark.django_db


def test_it_follows_its_pattern_turn_by_turn() -> None:
    key = uuid.uuid4().hex
    outcomes = []
    for _ in range(5):
        result = flaky.apply(kwargs={"pattern": "FFS", "key": key}, throw=False)
        outcomes.append("F" if isinstance(result.result, FlakyFailure) else "S")
    assert outcomes == ["F", "F", "S", "F", "F"]


def test_each_key_counts_its_own_turns() -> None:
    first = flaky.apply(kwargs={"key": uuid.uuid4().hex}, throw=False)
    second = flaky.apply(kwargs={"key": uuid.uuid4().hex}, throw=False)
    assert isinstance(first.result, FlakyFailure)
    assert isinstance(second.result, FlakyFailure)
    assert "fails, as the pattern 'FS' says" in str(first.result)


@pytest.mark.parametrize("pattern", ["", "FX", "F" * 21])
def test_a_bad_pattern_is_refused(pattern: str) -> None:
    with pytest.raises(ScheduleError, match="pattern"):
        task_validate(task="scheduler.flaky", params={"pattern": pattern})
