"""The agents list (/agents/): what it says about each session's last message."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command

from agents.demo import DEMO_AGENT_SLUG
from agents.models import Session
from tests.clients import client_for
from tests.factories import user_with

pytestmark = pytest.mark.django_db


def _last_message_cell(page: str, session: Session) -> str:
    row = re.search(rf'<tr data-session-id="{session.pk}">(.*?)</tr>', page, flags=re.DOTALL)
    assert row is not None, page
    return row.group(1).rsplit("<td", 1)[-1]


def test_it_shows_the_greeting_of_the_demo_session_as_its_last_message():
    call_command("seed_demo", stdout=io.StringIO())
    session = Session.objects.get(agent__slug=DEMO_AGENT_SLUG)
    greeting = session.messages.get()
    client = client_for(user_with("scheduler.view_dashboard"))

    page = client.get("/agents/").content.decode()

    cell = _last_message_cell(page, session)
    assert "none yet" not in cell
    assert "<time datetime=" in cell
    assert session.last_message_at == greeting.created_at
