"""Incidents on the pages, with the Django test client: the dashboard's "Open incidents" panel
(shown only while one is open, its buttons only for who may act), the incidents page (open ones
first, search, status, pages by cursor), and the alert settings every live page's script gets.
The scripts themselves run in a real browser: test_browser_alerts.py.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from scheduler.dashboard import incident_views
from scheduler.models import Incident
from scheduler.services import incident_acknowledge, incident_silence
from scheduler.services.incidents import incident_recover
from tests.clients import client_for
from tests.factories import (
    make_incident,
    make_rule,
    make_session,
    make_tournament,
    user_with,
)

pytestmark = pytest.mark.django_db

VIEW_DASHBOARD = "scheduler.view_dashboard"
MANAGE_ALERTS = "scheduler.manage_alerts"
START = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)


def _config(page: str, name: str) -> dict[str, Any]:
    match = re.search(rf'<script id="{name}" type="application/json">(.*?)</script>', page)
    assert match, f"no {name} on the page"
    return json.loads(match.group(1))


def _panel(page: str) -> str:
    start = page.index('id="incidents"')
    return page[start : page.index("</section>", start)]


# --- The panel -----------------------------------------------------------------------------


def test_the_panel_shows_open_incidents_at_the_top_with_their_state() -> None:
    rule = make_rule(channels=())
    handled = make_incident(rule, "schedule:nightly", "schedule 'nightly' failed")
    make_incident(rule, "schedule:hourly", "schedule 'hourly' failed <b>x</b>")
    user = user_with(VIEW_DASHBOARD, MANAGE_ALERTS)
    incident_acknowledge(incident_id=handled.pk, actor=user, note="on it", source="api")
    incident_silence(
        incident_id=handled.pk, until=timezone.now() + timedelta(hours=1), actor=user, source="api"
    )

    page = client_for(user).get("/dashboard/").content.decode()

    panel = _panel(page)
    assert page.index('id="incidents"') < page.index('id="counters"')
    assert " hidden>" not in panel.split(">")[0] + ">"
    assert 'id="incidents-count">2<' in panel
    assert "schedule &#x27;hourly&#x27; failed &lt;b&gt;x&lt;/b&gt;" in panel
    assert panel.index("hourly") < panel.index("nightly")  # newest first
    assert "failures" in panel
    assert f"acknowledged by {user.get_username()}: on it" in panel
    assert "silenced until" in panel
    assert 'href="/dashboard/incidents/"' in panel
    # Acknowledge only where nobody has; Silence on every row.
    assert panel.count('data-incident-action="acknowledge"') == 1
    assert panel.count('data-incident-action="silence"') == 2
    config = _config(page, "dashboard-config")
    assert config["can_manage_alerts"] is True
    assert config["alerts"] == {
        "task_url": "/dashboard/tasks/__id__/",
        "incidents_url": "/dashboard/incidents/",
    }
    assert "/static/scheduler/dashboard.js" in page


def test_the_panel_offers_no_buttons_to_who_may_not_act() -> None:
    make_incident(make_rule(channels=()))

    page = client_for(user_with(VIEW_DASHBOARD)).get("/dashboard/").content.decode()

    assert "data-incident-action" not in _panel(page)
    assert _config(page, "dashboard-config")["can_manage_alerts"] is False


def test_the_panel_is_hidden_while_no_incident_is_open() -> None:
    rule = make_rule(channels=())
    incident = make_incident(rule)
    incident_recover([rule], incident.subject)

    page = client_for(user_with(VIEW_DASHBOARD)).get("/dashboard/").content.decode()

    assert re.search(r'<section [^>]*id="incidents"[^>]* hidden>', page)
    assert 'id="incidents-count">0<' in page


# --- The incidents page --------------------------------------------------------------------


def _history() -> dict[str, Incident]:
    rule = make_rule(channels=())
    other = make_rule("queues", "no_worker", duration=60, channels=())
    made = {}
    for k, (name, rule_of) in enumerate(
        [("old-a", rule), ("old-b", other), ("open-a", other), ("open-b", rule)]
    ):
        subject = f"schedule:{name}"
        made[name] = make_incident(
            rule_of, subject, f"{name} is down", at=START + timedelta(hours=k)
        )
        if name.startswith("old"):
            incident_recover([rule_of], subject, now=START + timedelta(hours=k, minutes=5))
    return made


def _rows(page: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr data-incident-id="(\d+)"', page)]


def test_the_incidents_page_lists_open_ones_first_then_the_latest() -> None:
    made = _history()

    response = client_for(user_with(VIEW_DASHBOARD)).get("/dashboard/incidents/")

    page = response.content.decode()
    assert response.status_code == 200
    assert _rows(page) == [made[name].pk for name in ["open-b", "open-a", "old-b", "old-a"]]
    assert "2 open" in page
    assert "5 min" in page  # how long a resolved one lasted
    assert 'data-status="resolved"' in page
    assert 'id="incidents-next"' not in page


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("q=old-b", ["old-b"]),
        ("q=QUEUES", ["open-a", "old-b"]),
        ("status=open", ["open-b", "open-a"]),
        ("status=resolved&q=failures", ["old-a"]),
        ("status=sideways", ["open-b", "open-a", "old-b", "old-a"]),
    ],
)
def test_the_incidents_page_searches(query: str, names: list[str]) -> None:
    made = _history()

    page = client_for(user_with(VIEW_DASHBOARD)).get(f"/dashboard/incidents/?{query}")

    assert _rows(page.content.decode()) == [made[name].pk for name in names]


def test_the_incidents_page_says_when_nothing_matches() -> None:
    _history()

    page = client_for(user_with(VIEW_DASHBOARD)).get("/dashboard/incidents/?q=<nothing>")

    text = page.content.decode()
    assert _rows(text) == []
    assert "No incident matches “&lt;nothing&gt;”." in text


def test_the_incidents_page_pages_by_cursor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(incident_views, "PAGE_SIZE", 3)
    made = _history()
    client = client_for(user_with(VIEW_DASHBOARD))

    first = client.get("/dashboard/incidents/?q=is+down").content.decode()
    following = re.search(r'id="incidents-next" href="([^"]+)"', first)
    assert following
    second = client.get("/dashboard/incidents/" + following.group(1).replace("&amp;", "&"))
    bad = client.get("/dashboard/incidents/?cursor=nonsense").content.decode()

    assert _rows(first) == [made[name].pk for name in ["open-b", "open-a", "old-b"]]
    assert "q=is+down" in following.group(1)
    text = second.content.decode()
    assert _rows(text) == [made["old-a"].pk]
    assert 'id="incidents-first"' in text
    assert 'id="incidents-next"' not in text
    assert "not one of this list: showing the first page" in bad
    assert len(_rows(bad)) == 3


def test_the_incidents_page_is_for_who_may_watch_the_dashboard() -> None:
    anonymous = Client().get("/dashboard/incidents/")
    staff = client_for(user_with()).get("/dashboard/incidents/")

    assert anonymous.status_code == 302
    assert anonymous["Location"] == "/admin/login/?next=/dashboard/incidents/"
    assert staff.status_code == 403


# --- Alerts on the other live pages --------------------------------------------------------


def test_the_chat_page_also_listens_to_its_agent_for_alerts() -> None:
    session = make_session()

    page = client_for(user_with(VIEW_DASHBOARD)).get(f"/agents/sessions/{session.pk}/")

    config = _config(page.content.decode(), "chat-config")
    assert config["alerts_query"] == f"object=agent:{session.agent_id}&backfill=0"
    assert config["alerts"]["incidents_url"] == "/dashboard/incidents/"


def test_the_tournament_page_gets_the_alert_links() -> None:
    tournament = make_tournament()

    page = client_for(user_with(VIEW_DASHBOARD)).get(f"/tournaments/{tournament.pk}/")

    config = _config(page.content.decode(), "tournament-config")
    assert config["alerts"]["task_url"] == "/dashboard/tasks/__id__/"
