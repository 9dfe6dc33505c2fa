"""Getting in: the front door, the links between the admin and the dashboard, the time zone."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from scheduler.cli import UnknownZone, command_zone
from scheduler.dashboard.timezones import request_zone
from scheduler.models import UserPreference
from tests.factories import user_with

pytestmark = pytest.mark.django_db


def test_it_sends_the_front_door_to_the_dashboard_and_strangers_on_to_the_login() -> None:
    client = Client()

    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")

    response = client.get("/", follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0].startswith(reverse("admin:login"))


def test_it_links_the_admin_to_the_dashboard_and_back() -> None:
    client = Client()
    client.force_login(user_with(superuser=True))

    admin_page = client.get(reverse("admin:index")).content.decode()
    dashboard = reverse("dashboard")
    assert f'href="{dashboard}">Dashboard</a>' in admin_page
    # "View site" is the dashboard too, not a 404 at /.
    assert f'<a href="{dashboard}">View site</a>' in admin_page

    dashboard_page = client.get(dashboard).content.decode()
    assert f'href="{reverse("admin:index")}"' in dashboard_page


@pytest.mark.parametrize(
    ("saved", "cookie", "expected"),
    [
        ("", "", "UTC"),
        ("", "Europe/Paris", "Europe/Paris"),
        ("Asia/Tokyo", "Europe/Paris", "Asia/Tokyo"),
        ("", "Not/AZone", "UTC"),
        ("", "../../etc/passwd", "UTC"),
    ],
)
def test_it_uses_the_saved_zone_then_the_browsers_then_the_sites(
    saved: str, cookie: str, expected: str, rf: pytest.FixtureRequest
) -> None:
    user = user_with("scheduler.view_dashboard")
    if saved:
        UserPreference.objects.create(user=user, time_zone=saved)
    request = rf.get("/")  # type: ignore[attr-defined]
    request.user = user
    if cookie:
        request.COOKIES["tz"] = cookie
    assert request_zone(request) == expected


def test_it_shows_pages_and_the_admin_in_the_persons_zone() -> None:
    client = Client()
    client.force_login(user_with(superuser=True))
    client.cookies["tz"] = "America%2FNew_York"

    page = client.get(reverse("dashboard")).content.decode()
    assert 'data-time-zone="America/New_York"' in page
    assert ">America/New_York</a>" in page
    assert ">America/New_York</a>" in client.get(reverse("admin:index")).content.decode()


def test_it_saves_a_chosen_zone_over_the_browsers_and_refuses_an_unknown_one() -> None:
    user = user_with(superuser=True)
    client = Client()
    client.force_login(user)
    client.cookies["tz"] = "Europe/Paris"
    url = reverse("time-zone")

    page = client.get(url).content.decode()
    assert "Your browser&#x27;s zone (Europe/Paris)" in page

    response = client.post(url, {"time_zone": "Nowhere/Special"})
    assert response.status_code == 400
    assert "Nowhere/Special" in response.content.decode()
    assert not UserPreference.objects.filter(user=user).exists()

    response = client.post(url, {"time_zone": "Asia/Tokyo", "next": reverse("dashboard")})
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")
    assert 'data-time-zone="Asia/Tokyo"' in client.get(reverse("dashboard")).content.decode()

    # Back to following the browser.
    client.post(url, {"time_zone": ""})
    assert UserPreference.objects.get(user=user).time_zone == ""
    assert 'data-time-zone="Europe/Paris"' in client.get(reverse("dashboard")).content.decode()


def test_it_never_redirects_off_site_after_saving() -> None:
    client = Client()
    client.force_login(user_with(superuser=True))
    response = client.post(
        reverse("time-zone"), {"time_zone": "UTC", "next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("time-zone")


def test_it_leaves_no_zone_active_after_the_request() -> None:
    client = Client()
    client.force_login(user_with(superuser=True))
    client.cookies["tz"] = "Asia/Kolkata"
    client.get(reverse("dashboard"))
    assert timezone.get_current_timezone_name() == "UTC"
    assert timezone.localtime(datetime(2026, 1, 1, tzinfo=UTC)).tzinfo == zoneinfo.ZoneInfo("UTC")


@pytest.mark.parametrize(
    ("explicit", "environ", "expected"),
    [
        (None, {}, ("UTC", None)),
        (None, {"TZ": "Europe/Paris"}, ("Europe/Paris", None)),
        (None, {"TZ": ":Europe/Paris"}, ("Europe/Paris", None)),
        ("Asia/Tokyo", {"TZ": "Europe/Paris"}, ("Asia/Tokyo", None)),
        (None, {"TZ": "UTC0"}, ("UTC", "TZ='UTC0' is not an IANA zone name: times are in UTC")),
    ],
)
def test_it_gives_commands_the_tz_option_then_the_environment(
    explicit: str | None, environ: dict[str, str], expected: tuple[str, str | None]
) -> None:
    assert command_zone(explicit, environ) == expected


def test_it_refuses_an_unknown_tz_option_by_name() -> None:
    with pytest.raises(UnknownZone, match="--tz: unknown time zone 'Mars/Olympus'"):
        command_zone("Mars/Olympus", {})
