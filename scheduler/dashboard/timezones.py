"""Each person sees times in their own zone: the one they chose, else their browser's.

The browser's zone arrives in the `tz` cookie, which every page's header script sets from
`Intl.DateTimeFormat().resolvedOptions().timeZone`; a saved preference wins over it.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from scheduler.core.time_zones import valid_zone
from scheduler.models import UserPreference

BROWSER_COOKIE = "tz"


def preferred_zone(user: Any) -> str | None:
    if not getattr(user, "is_authenticated", False):
        return None
    chosen = UserPreference.objects.filter(user=user).values_list("time_zone", flat=True).first()
    return valid_zone(chosen)


def browser_zone(request: HttpRequest) -> str | None:
    # The script writes the name URL-encoded ("America%2FNew_York"); Django reads cookies raw.
    return valid_zone(unquote(request.COOKIES.get(BROWSER_COOKIE, "")))


def request_zone(request: HttpRequest) -> str:
    return (
        preferred_zone(getattr(request, "user", None))
        or browser_zone(request)
        or settings.TIME_ZONE
    )


class TimeZoneMiddleware:
    """Activates the person's zone for the request: templates, forms and the admin use it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = request_zone(request)
        request.time_zone = zone  # type: ignore[attr-defined]
        timezone.activate(zoneinfo.ZoneInfo(zone))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


def time_zone_context(request: HttpRequest) -> dict[str, str]:
    return {"user_time_zone": getattr(request, "time_zone", None) or settings.TIME_ZONE}
