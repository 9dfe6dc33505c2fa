from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.agents.chat_server import ChatServer, running_chat_server


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    """A fake OpenAI-compatible server on 127.0.0.1 (see tests/agents/chat_server.py)."""
    with running_chat_server() as server:
        yield server
