"""The admin's "Pause", written once: the periodic task admin's action, and the agents' and the
tournaments' "Pause all schedules" (through `pause_step`). A second step asks why and until when
(as Django's delete confirmation asks), then pauses every periodic task named through
`schedules_pause`, audited as the user's; a bad "until" is shown on the form, nothing paused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from scheduler.models import Source
from scheduler.schedules.pauses import UNTIL_HELP
from scheduler.services import NOTE_MAX_LENGTH, ScheduleError, schedules_pause

PAUSE_TEMPLATE = "admin/scheduler/pause.html"


class PauseForm(forms.Form):
    note = forms.CharField(
        label="Why",
        required=False,
        max_length=NOTE_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Shown with the schedule wherever it is listed, and in its audit trail.",
    )
    until = forms.CharField(
        label="Until",
        required=False,
        max_length=64,
        widget=forms.TextInput(attrs={"class": "vTextField", "placeholder": "e.g. 2h"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        zone = timezone.get_current_timezone_name()
        self.fields["until"].help_text = f"{UNTIL_HELP.capitalize()}. Times are in {zone}."


def pause_step(
    admin_view: Any,
    request: HttpRequest,
    *,
    names: Iterable[str],
    selected: Sequence[tuple[Any, str]],
    action: str,
    title: str,
) -> TemplateResponse | None:
    """The second step of a pause action: the form (`selected`: (primary key, label) of the rows
    chosen, kept through the form) until it is posted valid, then the pause of every periodic
    task in `names`. None once done (the admin goes back to its list, with a message)."""
    posted = request.POST.get("post") == "yes"
    form = PauseForm(request.POST if posted else None)
    if form.is_valid():
        names = list(names)
        try:
            paused = schedules_pause(
                names=names,
                note=form.cleaned_data["note"],
                until=form.cleaned_data["until"] or None,
                tz=timezone.get_current_timezone_name(),
                actor=request.user,
                source=Source.ADMIN,
            )
        except ScheduleError as exc:
            for field, errors in exc.errors.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            noun = "schedule" if paused == 1 else "schedules"
            admin_view.message_user(request, f"{paused} {noun} paused.", messages.SUCCESS)
            return None
    context = {
        **admin_view.admin_site.each_context(request),
        "title": title,
        "opts": admin_view.model._meta,
        "selected": selected,
        "form": form,
        "action": action,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": admin_view.media + form.media,
    }
    request.current_app = admin_view.admin_site.name
    return TemplateResponse(request, PAUSE_TEMPLATE, context)
