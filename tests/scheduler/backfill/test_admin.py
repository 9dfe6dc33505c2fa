"""The admin's "Backfill…" action (a form, the count of runs to confirm, then the backfill) and
the backfills' read-only admin with its progress."""

from __future__ import annotations

import pytest
from django.urls import reverse

from scheduler.models import AuditEntry, Backfill
from scheduler.services import backfill_publish, backfill_start
from tests.clients import client_for
from tests.factories import user_with
from tests.scheduler.admin.helpers import CHANGELIST_URL, page_messages

from .conftest import at, daily_at_nine, every_minute

pytestmark = pytest.mark.django_db

BACKFILLS = reverse("admin:scheduler_backfill_changelist")


def act(client, *periodic_tasks, **extra: str):
    data = {"action": "backfill", "_selected_action": [task.pk for task in periodic_tasks]}
    return client.post(CHANGELIST_URL, {**data, **extra}, follow=True)


def _nothing_written() -> None:
    assert not Backfill.objects.exists()
    assert not AuditEntry.objects.filter(changes__has_key="backfill").exists()


def test_it_asks_for_the_range_then_shows_the_count_then_backfills(
    admin, sent, django_capture_on_commit_callbacks
):
    periodic_task = daily_at_nine(tz="Europe/Paris")

    form = act(admin, periodic_task, index="0")
    assert form.templates[0].name == "admin/scheduler/periodictask/backfill.html"
    page = form.content.decode()
    assert 'name="start"' in page
    assert "In the schedule&#x27;s zone (Europe/Paris)" in page
    _nothing_written()

    preview = act(
        admin,
        periodic_task,
        step="preview",
        start="2025-01-01",
        end="2025-01-31 23:59",
        overlap="skip",
    )
    page = preview.content.decode()
    assert "31 runs of nightly report" in page
    assert "From Wed 2025-01-01 00:00:00 CET to Fri 2025-01-31 23:59:00 CET" in page
    assert "<li>Wed 2025-01-01 09:00:00 CET</li>" in page
    assert "… 21 more, the last at Fri 2025-01-31 09:00:00 CET" in page
    assert 'value="Backfill 31 runs"' in page
    _nothing_written()

    with django_capture_on_commit_callbacks(execute=True):
        done = act(
            admin,
            periodic_task,
            step="confirm",
            start="2025-01-01",
            end="2025-01-31 23:59",
            overlap="skip",
        )

    row = Backfill.objects.get()
    assert (row.total, row.overlap, row.source) == (31, "skip", "admin")
    assert done.redirect_chain[-1][0] == reverse("admin:scheduler_backfill_change", args=[row.pk])
    assert page_messages(done) == [
        f"Backfill {row.pk} of 'nightly report' started: 31 runs (overlap skip)."
    ]
    assert [message.name for message in sent] == ["scheduler.backfill"]
    assert AuditEntry.objects.get(changes__has_key="backfill").source == "admin"


@pytest.mark.parametrize(
    ("start", "end", "field", "message"),
    [
        ("2025-01-01", "2025-01-09 13:44", "end", "the range holds 12,345 runs; at most 10,000"),
        ("2025-01-02", "2025-01-01", "end", "is before from"),
        ("yesterday", "2025-01-01", "start", "&#x27;yesterday&#x27; is not an ISO 8601 date"),
    ],
)
def test_bad_input_is_an_error_on_its_field_and_writes_nothing(
    admin, sent, start, end, field, message
):
    periodic_task = every_minute(last_run_at=at("2025-01-01 00:00"))

    for step in ("preview", "confirm"):
        response = act(admin, periodic_task, step=step, start=start, end=end, overlap="buffer_all")

        form = response.context["form"]
        assert form.errors[field]
        assert message in response.content.decode()
    _nothing_written()
    assert sent == []


def test_it_backfills_one_schedule_at_a_time(admin, sent):
    first, second = daily_at_nine(), daily_at_nine(name="other")

    response = act(admin, first, second, index="0")

    assert page_messages(response) == ["Backfill one schedule at a time: 2 are selected."]
    _nothing_written()


def test_it_is_offered_only_to_staff_who_may_run_tasks(sent):
    periodic_task = daily_at_nine()
    editor = client_for(
        user_with("django_celery_beat.view_periodictask", "django_celery_beat.change_periodictask")
    )
    runner = client_for(user_with("django_celery_beat.view_periodictask", "scheduler.run_tasks"))

    refused = act(editor, periodic_task, step="confirm", start="2025-01-01", end="2025-01-03")
    offered = runner.get(CHANGELIST_URL)

    assert "backfill" not in dict(refused.context["action_form"].fields["action"].choices)
    assert "backfill" in dict(offered.context["action_form"].fields["action"].choices)
    _nothing_written()


def test_the_backfills_are_listed_and_shown_with_their_progress(admin, sent):
    daily_at_nine()
    backfill = backfill_start(name="nightly report", start="2025-01-01", end="2025-01-05")
    backfill_publish(backfill_id=backfill.pk)

    listing = admin.get(BACKFILLS).content.decode()
    page = admin.get(
        reverse("admin:scheduler_backfill_change", args=[backfill.pk])
    ).content.decode()

    for html in (listing, page):
        assert f'data-backfill="{backfill.pk}"' in html
        assert '<progress max="4" value="4"></progress>' in html
        assert "4/4 runs" in html
        assert "scheduler/backfills.js" in html
        assert 'id="backfills-config"' in html
    assert f'"backfill": "{backfill.pk}"' in page
    assert "nightly report" in listing
    assert (
        admin.post(reverse("admin:scheduler_backfill_delete", args=[backfill.pk])).status_code
        == 403
    )
