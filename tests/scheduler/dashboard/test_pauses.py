"""The dashboard's schedule rows show a pause (who, why, until when) and offer Resume, on the page
and in the summary its script redraws them from; Pause and Resume post to the pause API."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission

from scheduler.services import schedule_pause
from tests.clients import client_for
from tests.factories import UserFactory, make_schedule

pytestmark = pytest.mark.django_db


def _staff(*codenames: str) -> Any:
    user = UserFactory.create(is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def test_a_paused_row_says_who_why_and_until_when_and_offers_resume():
    user = _staff("view_dashboard", "change_periodictask")
    make_schedule(name="paused one")
    make_schedule(name="running one")
    schedule_pause(name="paused one", note="deploy <freeze>", until="2h", actor=user)
    client = client_for(user)

    html = client.get("/dashboard/").content.decode()
    summary = client.get("/dashboard/summary.json").json()

    periodic = html[html.index('id="periodic-body"') : html.index('id="upcoming-title"')]
    paused_row = re.search(r'<tr data-schedule-id="\d+" data-enabled="false">.*?</tr>', periodic)
    assert paused_row is not None
    row = paused_row.group(0)
    assert f"paused by {user.get_username()} until <time datetime=" in row
    assert ": deploy &lt;freeze&gt;</div>" in row
    assert 'data-action="resume"' in row
    assert periodic.count('data-action="pause"') == 1
    rows = {row["name"]: row for row in summary["periodic"]["rows"]}
    assert rows["running one"]["pause"] is None
    assert rows["paused one"]["pause"]["note"] == "deploy <freeze>"
    assert rows["paused one"]["pause"]["paused_by"] == user.get_username()
