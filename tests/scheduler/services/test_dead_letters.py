"""Requeueing and discarding dead letters: through the catalog's validation, once, audited, with
their events; many at once for the admin; and how long resolved letters are kept."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from kombu.exceptions import OperationalError

from config.celery import app as celery_app
from scheduler.models import AuditEntry, DeadLetter, Source, TaskEvent
from scheduler.services import (
    DeadLetterNotFound,
    DeadLetterResolved,
    ScheduleError,
    dead_letter_discard,
    dead_letter_requeue,
    dead_letters_discard,
    dead_letters_requeue,
    retention_clear,
    retention_overview,
    retention_run,
)
from scheduler.services import dead_letters as dead_letters_module
from tests.factories import UserFactory, make_dead_letter, make_schedule
from tests.queues import take_queued
from tests.scheduler.services.helpers import DAY, NOW

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> User:
    return UserFactory.create(username="ops")


def _unchanged(letter: DeadLetter) -> None:
    letter.refresh_from_db()
    assert letter.status == DeadLetter.Status.OPEN
    assert (letter.requeued_as, letter.resolved_at, letter.resolved_by) == ("", None, None)
    assert not AuditEntry.objects.exists()


# --- requeue -------------------------------------------------------------------------------------


def test_it_requeues_a_letter_as_a_new_run_on_its_queue(staff, django_capture_on_commit_callbacks):
    schedule = make_schedule(name="nightly sleep", task="scheduler.sleep", params={"seconds": 1})
    letter = make_dead_letter(periodic_task_name="nightly sleep", queue="agents")
    AuditEntry.objects.all().delete()  # the schedule's own

    with django_capture_on_commit_callbacks(execute=True):
        task_id = dead_letter_requeue(dead_letter_id=letter.pk, actor=staff, source=Source.ADMIN)

    message = take_queued("agents", task_id)
    assert message is not None
    assert task_id != letter.task_id
    assert json.loads(message["headers"]["kwargsrepr"]) == {"seconds": 0.25}
    assert message["headers"]["periodic_task_name"] == "nightly sleep"
    letter.refresh_from_db()
    assert (letter.status, letter.requeued_as, letter.resolved_by) == ("requeued", task_id, staff)
    assert letter.resolved_at is not None
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.source, entry.actor) == ("requeued", "admin", staff)
    assert (entry.periodic_task_name, entry.periodic_task) == ("nightly sleep", schedule)
    assert entry.changes["requeued_as"] == [None, task_id]
    assert entry.changes["failed_task_id"] == [None, letter.task_id]
    event = TaskEvent.objects.get(type="dead_letter.requeued")
    assert (event.task_id, event.payload["dead_letter_id"]) == (letter.task_id, letter.pk)
    assert event.payload["requeued_as"] == task_id


def test_the_audit_entry_of_a_run_without_a_schedule_is_under_its_task(
    django_capture_on_commit_callbacks,
):
    letter = make_dead_letter(queue="gone-since")

    with django_capture_on_commit_callbacks(execute=True):
        task_id = dead_letter_requeue(dead_letter_id=letter.pk, source=Source.CLI)

    # Its queue is no longer one of ours: the task's own.
    assert take_queued("default", task_id) is not None
    entry = AuditEntry.objects.get()
    assert (entry.periodic_task_name, entry.periodic_task, entry.actor) == (
        "scheduler.sleep",
        None,
        None,
    )


def test_a_task_removed_from_the_catalog_is_refused_and_nothing_changes(monkeypatch):
    letter = make_dead_letter(task_name="billing.send_invoices", kwargs={})

    with pytest.raises(ScheduleError) as refused:
        dead_letter_requeue(dead_letter_id=letter.pk)

    assert "unknown task 'billing.send_invoices'" in refused.value.errors["task"][0]
    _unchanged(letter)
    assert not TaskEvent.objects.exists()


def test_arguments_the_task_no_longer_accepts_are_refused_and_nothing_changes():
    letter = make_dead_letter(kwargs={"seconds": 60, "verbose": True})

    with pytest.raises(ScheduleError) as refused:
        dead_letter_requeue(dead_letter_id=letter.pk)

    assert "seconds" in refused.value.errors["params"][0]
    assert "verbose" in refused.value.errors["params"][0]
    _unchanged(letter)


def test_a_letter_resolved_already_or_unknown_is_refused():
    letter = make_dead_letter(status=DeadLetter.Status.DISCARDED)

    with pytest.raises(DeadLetterResolved, match=f"dead letter {letter.pk} was discarded already"):
        dead_letter_requeue(dead_letter_id=letter.pk)
    with pytest.raises(DeadLetterNotFound, match="no dead letter with id 999999"):
        dead_letter_requeue(dead_letter_id=999_999)
    with pytest.raises(DeadLetterNotFound):
        dead_letter_discard(dead_letter_id=999_999)


def test_of_two_requeues_at_once_one_queues_it(monkeypatch, django_capture_on_commit_callbacks):
    letter = make_dead_letter()
    validate = dead_letters_module.task_validate

    def someone_else_first(**kwargs: Any) -> Any:
        # The other request claims it between this one's read and its claim.
        DeadLetter.objects.filter(pk=letter.pk).update(status=DeadLetter.Status.REQUEUED)
        return validate(**kwargs)

    monkeypatch.setattr(dead_letters_module, "task_validate", someone_else_first)

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(DeadLetterResolved, match="requeued already"),
    ):
        dead_letter_requeue(dead_letter_id=letter.pk)

    assert callbacks == []  # nothing was queued
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_broker_that_refuses_the_message_leaves_the_letter_open(monkeypatch):
    letter = make_dead_letter()

    def down(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(celery_app, "send_task", down)

    with pytest.raises(OperationalError):
        dead_letter_requeue(dead_letter_id=letter.pk)

    _unchanged(letter)


# --- discard -------------------------------------------------------------------------------------


def test_it_discards_a_letter_once(staff):
    letter = make_dead_letter(task_name="billing.send_invoices")  # outside the catalog: fine

    discarded = dead_letter_discard(dead_letter_id=letter.pk, actor=staff, source=Source.API)

    assert discarded.status == DeadLetter.Status.DISCARDED
    letter.refresh_from_db()
    assert (letter.status, letter.resolved_by, letter.requeued_as) == ("discarded", staff, "")
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.source, entry.periodic_task_name) == (
        "discarded",
        "api",
        "billing.send_invoices",
    )
    assert TaskEvent.objects.filter(type="dead_letter.discarded", task_id=letter.task_id).exists()
    with pytest.raises(DeadLetterResolved):
        dead_letter_discard(dead_letter_id=letter.pk)
    assert AuditEntry.objects.count() == 1


# --- many at once --------------------------------------------------------------------------------


def test_many_at_once_each_is_requeued_or_refused_on_its_own(
    staff, django_capture_on_commit_callbacks
):
    good = make_dead_letter()
    invalid = make_dead_letter(kwargs={"seconds": -1})
    done_already = make_dead_letter(status=DeadLetter.Status.REQUEUED)

    with django_capture_on_commit_callbacks(execute=True):
        batch = dead_letters_requeue(
            dead_letter_ids=[good.pk, invalid.pk, done_already.pk, 999_999], actor=staff
        )

    assert list(batch.done) == [good.pk]
    assert take_queued("default", batch.done[good.pk]) is not None
    assert set(batch.refused) == {invalid.pk, done_already.pk, 999_999}
    assert batch.refused[invalid.pk].startswith("params: ")
    assert batch.refused[done_already.pk] == f"dead letter {done_already.pk} was requeued already"
    assert batch.refused[999_999] == "no dead letter with id 999999"


def test_many_at_once_stop_at_a_broker_that_is_down(monkeypatch):
    letters = [make_dead_letter() for _ in range(3)]

    def down(**kwargs: Any) -> str:
        raise OperationalError("connection refused")

    monkeypatch.setattr(dead_letters_module, "dead_letter_requeue", down)

    batch = dead_letters_requeue(dead_letter_ids=[letter.pk for letter in letters])

    assert batch.done == {}
    assert len(batch.refused) == 3
    assert all("could not be reached" in why for why in batch.refused.values())


def test_many_discarded_at_once(staff):
    letters = [make_dead_letter() for _ in range(2)]

    batch = dead_letters_discard(dead_letter_ids=[letter.pk for letter in letters], actor=staff)

    assert batch.done == {letters[0].pk: "", letters[1].pk: ""}
    assert set(DeadLetter.objects.values_list("status", flat=True)) == {"discarded"}


# --- retention -----------------------------------------------------------------------------------


def _resolved(days_ago: int, status: str = DeadLetter.Status.DISCARDED) -> DeadLetter:
    return make_dead_letter(
        status=status, failed_at=NOW - 400 * DAY, resolved_at=NOW - days_ago * DAY
    )


def test_resolved_letters_go_their_days_after_they_were_resolved(settings):
    settings.DEAD_LETTER_RETENTION_DAYS = 30
    old_open = make_dead_letter(failed_at=NOW - 400 * DAY)
    recent = _resolved(29)
    gone = [_resolved(31), _resolved(90, DeadLetter.Status.REQUEUED)]

    deleted = retention_run(now=NOW, tables=["dead letters"])

    assert deleted == {"dead letters": 2}
    assert set(DeadLetter.objects.values_list("pk", flat=True)) == {old_open.pk, recent.pk}
    assert not DeadLetter.objects.filter(pk__in=[letter.pk for letter in gone]).exists()


def test_open_letters_are_kept_even_by_a_clear_and_zero_days_keeps_every_letter(settings):
    settings.DEAD_LETTER_RETENTION_DAYS = 0
    kept_open = make_dead_letter(failed_at=NOW - 400 * DAY)
    _resolved(400)

    assert retention_run(now=NOW, tables=["dead letters"]) == {"dead letters": 0}
    assert retention_clear(tables=["dead letters"]) == {"dead letters": 1}
    assert list(DeadLetter.objects.values_list("pk", flat=True)) == [kept_open.pk]


def test_the_overview_says_how_long_resolved_letters_are_kept(settings):
    settings.DEAD_LETTER_RETENTION_DAYS = 30
    _resolved(3)

    [row] = [row for row in retention_overview(now=NOW) if row.label == "dead letters"]

    assert row.kept == "30 days after they were requeued or discarded"
    assert row.rows == 1
    assert row.oldest == NOW - 3 * DAY


def test_the_setting_defaults_to_thirty_days():
    assert django_settings.DEAD_LETTER_RETENTION_DAYS == 30
