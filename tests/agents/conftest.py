"""Fixtures shared by the agents' tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.agents.chat_server import ChatServer, running_chat_server


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    """A fake OpenAI-compatible server on 127.0.0.1 (see tests/agents/chat_server.py)."""
    with running_chat_server() as server:
        yield server


@pytest.fixture
def celery_on(settings: Any) -> None:
    """CELERY_ENABLED: work is queued for a worker (after commit)."""
    settings.CELERY_ENABLED = True


@pytest.fixture
def celery_off(settings: Any) -> None:
    """CELERY_ENABLED off: work is done in the caller, without Celery."""
    settings.CELERY_ENABLED = False
