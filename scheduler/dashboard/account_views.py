"""A signed-in person's own settings: the time zone pages show times in."""

from __future__ import annotations

from django import forms
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme

from scheduler.core.time_zones import known_zones
from scheduler.dashboard.timezones import browser_zone
from scheduler.models import UserPreference


class TimeZoneForm(forms.Form):
    time_zone = forms.ChoiceField(
        label="Show times in",
        required=False,
        help_text="“Your browser's zone” follows the device you are using.",
    )

    def __init__(self, *args: object, browser_zone: str | None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        browser = f"Your browser's zone ({browser_zone})" if browser_zone else "Your browser's zone"
        self.fields["time_zone"].choices = [("", browser)] + [  # type: ignore[attr-defined]
            (name, name) for name in sorted(known_zones())
        ]


@staff_member_required
def time_zone(request: HttpRequest) -> HttpResponse:
    browser = browser_zone(request)
    user_id = request.user.pk  # staff_member_required: a signed-in member of staff
    assert user_id is not None
    preference = UserPreference.objects.filter(user_id=user_id).first()
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = ""
    if request.method == "POST":
        form = TimeZoneForm(request.POST, browser_zone=browser)
        if form.is_valid():
            UserPreference.objects.update_or_create(
                user_id=user_id, defaults={"time_zone": form.cleaned_data["time_zone"]}
            )
            return HttpResponseRedirect(next_url or request.path)
        status = 400
    else:
        form = TimeZoneForm(
            initial={"time_zone": preference.time_zone if preference else ""},
            browser_zone=browser,
        )
        status = 200
    return render(
        request,
        "scheduler/time_zone.html",
        {"form": form, "next": next_url},
        status=status,
    )
