"""Fixtures of the beat scheduler's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.scheduler.beat.helpers import forget_beats


@pytest.fixture
def no_leader() -> Iterator[None]:
    """No leader lock or heartbeat of an earlier beat, before the test or after it (the in-process
    tests apply it to each of theirs: `pytest.mark.usefixtures("no_leader")`)."""
    forget_beats()
    yield
    forget_beats()
