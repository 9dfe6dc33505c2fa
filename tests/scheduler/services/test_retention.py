"""History retention: every growing table keeps its rows as long as its setting says, no longer.

The cleanup (scheduler/services/retention.py): what each table keeps, in batches and within a
time budget, the agents' messages and the tournaments' history, the latest run of each periodic
task kept pointing at a run that is left, and the settings. The daily task that runs it and the
schedule the migration creates for it are test_retention_cleanup.py's; where staff see it,
test_retention_overview.py's.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from celery import states
from celery.app.task import Context
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_celery_results.models import TaskResult

from agents.models import Agent, Message, Session
from config.celery import app
from config.settings.base import _retention_days
from scheduler.models import AuditEntry, ScheduleState, TaskEvent
from scheduler.services import history_clear, retention
from scheduler.services.retention import (
    RetentionPolicy,
    retention_policies,
    retention_register,
    retention_run,
)
from scheduler.worker.result_backend import DatabaseBackend
from tests.scheduler.services.helpers import DAY, NOW, ages, audit, event, result
from tournaments.models import Decision, Entry, EquitySnapshot, Tournament, Trade

pytestmark = pytest.mark.django_db


# --- what each table keeps -------------------------------------------------------------------


def test_it_deletes_from_each_table_only_what_is_older_than_its_own_setting(retention_settings):
    for days in (5, 15, 25, 35):
        result(days * DAY)
        event(days * DAY)
        audit(days * DAY)

    deleted = retention_run(now=NOW)

    assert ages(TaskResult, "date_done") == [5]
    assert ages(TaskEvent, "created_at") == [5, 15]
    assert ages(AuditEntry, "created_at") == [5, 15, 25]
    assert deleted["task results"] == 3
    assert deleted["task events"] == 2
    assert deleted["audit entries"] == 1
    assert deleted.complete


def test_a_table_set_to_zero_days_is_kept_forever(retention_settings):
    retention_settings.RESULTS_RETENTION_DAYS = 0
    result(10_000 * DAY)
    event(21 * DAY)

    deleted = retention_run(now=NOW)

    assert TaskResult.objects.count() == 1
    assert deleted["task results"] == 0
    assert deleted["task events"] == 1


def test_older_than_days_applies_to_every_table_named(retention_settings):
    for days in (2, 4):
        result(days * DAY)
        event(days * DAY)
        audit(days * DAY)

    deleted = retention_run(now=NOW, tables=["task results", "audit entries"], older_than_days=3)

    assert deleted == {"task results": 1, "audit entries": 1}
    assert ages(TaskResult, "date_done") == [2]
    assert ages(AuditEntry, "created_at") == [2]
    assert ages(TaskEvent, "created_at") == [2, 4]  # not named


def test_it_refuses_a_table_it_does_not_know():
    with pytest.raises(ValueError, match="no retention for 'results'"):
        retention_run(tables=["results"])


def test_it_deletes_in_batches_each_a_delete_of_its_own(retention_settings):
    for n in range(5):
        result((11 + n) * DAY)
    fresh = result(DAY)

    with CaptureQueriesContext(connection) as queries:
        deleted = retention_run(now=NOW, tables=["task results"], batch_size=2)

    assert deleted == {"task results": 5}
    assert list(TaskResult.objects.values_list("pk", flat=True)) == [fresh.pk]
    deletes = [
        query["sql"]
        for query in queries.captured_queries
        if query["sql"].startswith("DELETE") and "taskresult" in query["sql"]
    ]
    assert len(deletes) == 3  # 2 + 2 + 1


def test_batches_move_on_through_rows_of_the_same_age(retention_settings):
    # More rows at one instant than a batch holds: the next batch starts at that instant again.
    for _ in range(5):
        result(11 * DAY)

    assert retention_run(now=NOW, tables=["task results"], batch_size=2) == {"task results": 5}
    assert not TaskResult.objects.exists()


def test_batches_go_newest_first_so_the_oldest_rows_stay_until_the_last_batch(
    retention_settings, monkeypatch
):
    # The index entries of deleted rows stay until a vacuum: deleted newest first, they never
    # lie at the start of the index, where every "oldest row" read would walk them.
    for n in range(5):
        result((11 + n) * DAY)
    left_after_each_batch = []
    policy = retention._POLICIES["task results"]

    def spy(pks):
        left_after_each_batch.append(ages(TaskResult, "date_done"))
        if policy.after_batch is not None:
            policy.after_batch(pks)

    monkeypatch.setitem(
        retention._POLICIES, "task results", dataclasses.replace(policy, after_batch=spy)
    )

    retention_run(now=NOW, tables=["task results"], batch_size=2)

    assert left_after_each_batch == [[13, 14, 15], [15], []]


@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_table_that_lost_many_rows_is_vacuumed(retention_settings, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("VACUUM is PostgreSQL's")
    monkeypatch.setattr(retention, "VACUUM_AFTER_ROWS", 3)
    for n in range(3):
        result((11 + n) * DAY)

    def vacuums() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = %s",
                [TaskResult._meta.db_table],
            )
            return int(cursor.fetchone()[0])

    before = vacuums()
    retention_run(now=NOW, tables=["task results"])

    # The statistics collector reports with a delay of up to its flush interval.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
    assert vacuums() == before + 1


def test_a_spent_time_budget_stops_between_batches(retention_settings):
    result(11 * DAY)

    deleted = retention_run(now=NOW, time_budget=0)

    assert not deleted.complete
    assert TaskResult.objects.count() == 1


def test_each_app_registers_its_own_tables_in_cleanup_order():
    policies = {policy.label: policy for policy in retention_policies()}

    assert list(policies) == [
        "task results",
        "task events",
        "audit entries",
        "notification deliveries",
        "incidents",
        "dead letters",
        "agent messages",
        "tournament trades",
        "tournament equity snapshots",
        "tournament decisions",
    ]
    assert policies["agent messages"].setting == "AGENT_MESSAGE_RETENTION_DAYS"
    assert policies["incidents"].setting == "ALERTS_RETENTION_DAYS"
    assert policies["dead letters"].setting == "DEAD_LETTER_RETENTION_DAYS"
    assert {policies[label].setting for label in list(policies)[7:]} == {
        "TOURNAMENT_HISTORY_RETENTION_DAYS"
    }


def test_every_age_field_is_indexed_on_its_own():
    # The batches range on the field and read it in order: an index must lead with it.
    for policy in retention_policies():
        meta = policy.model._meta
        field = meta.get_field(policy.field)
        leading = {index.fields[0] for index in meta.indexes}
        assert getattr(field, "db_index", False) or policy.field in leading, policy.label


def test_tournament_rows_go_entry_by_entry_along_an_index_of_the_entry():
    by_entry = [policy for policy in retention_policies() if policy.partitions is not None]

    assert {policy.model for policy in by_entry} == {Decision, Trade, EquitySnapshot}
    for policy in by_entry:
        meta = policy.model._meta
        indexed = [list(index.fields) for index in meta.indexes] + [
            list(getattr(constraint, "fields", ())) for constraint in meta.constraints
        ]
        assert ["entry", policy.order] in indexed, policy.label


def test_registering_a_label_again_replaces_it():
    before = retention_policies()
    results = next(policy for policy in before if policy.label == "task results")
    try:
        retention_register(RetentionPolicy("task results", TaskResult, "date_done", "NOPE"))
        assert len(retention_policies()) == len(before)
        assert retention_policies()[0].days() is None  # a setting that is not there: kept
    finally:
        retention_register(results)
    assert retention_policies() == before


# --- agents and tournaments --------------------------------------------------------------------


def message(session: Session, age: timedelta, **fields: Any) -> Message:
    values: dict[str, Any] = {"role": "user", "content": "hi", **fields}
    return Message.objects.create(session=session, created_at=NOW - age, **values)


@pytest.fixture
def chat() -> Session:
    agent = Agent.objects.create(name="Helper", slug="helper")
    return Session.objects.create(agent=agent)


def test_agent_messages_are_kept_unless_the_deployment_asks(retention_settings, chat):
    message(chat, 4000 * DAY)

    assert retention_run(now=NOW)["agent messages"] == 0
    assert Message.objects.count() == 1


def test_agent_messages_go_when_asked_and_replies_lose_only_their_link(retention_settings, chat):
    retention_settings.AGENT_MESSAGE_RETENTION_DAYS = 30
    question = message(chat, 40 * DAY)
    answer = message(chat, 10 * DAY, role="assistant", reply_to=question)

    assert retention_run(now=NOW)["agent messages"] == 1

    answer.refresh_from_db()
    assert answer.reply_to is None
    assert list(Message.objects.all()) == [answer]
    assert Session.objects.filter(pk=chat.pk).exists()


def tournament(name: str, *, status: str, ended: timedelta) -> Entry:
    """An entry of a tournament that ended `ended` before NOW, with a round 200 days old."""
    ends_at = NOW - ended
    cup = Tournament.objects.create(
        name=name, status=status, starts_at=ends_at - 300 * DAY, ends_at=ends_at
    )
    agent = Agent.objects.create(name=name, slug=f"trader-{cup.pk}", kind=Agent.Kind.TRADER)
    entry = Entry.objects.create(
        tournament=cup, agent=agent, cash=Decimal(100), equity=Decimal(100)
    )
    at = NOW - 200 * DAY
    decision = Decision.objects.create(entry=entry, tick=1, created_at=at)
    Trade.objects.create(
        entry=entry,
        decision=decision,
        symbol="ACME",
        side="buy",
        quantity=1,
        price=Decimal(1),
        tick=1,
        executed_at=at,
    )
    EquitySnapshot.objects.create(
        entry=entry, at=at, tick=1, equity=Decimal(100), cash=Decimal(100)
    )
    return entry


def history_of(entry: Entry) -> tuple[int, int, int]:
    return (entry.decisions.count(), entry.trades.count(), entry.snapshots.count())


def test_tournament_history_goes_only_for_tournaments_that_ended_long_enough_ago(
    retention_settings,
):
    finished = tournament("Finished", status=Tournament.Status.FINISHED, ended=100 * DAY)
    cancelled = tournament("Cancelled", status=Tournament.Status.CANCELLED, ended=100 * DAY)
    recent = tournament("Recent", status=Tournament.Status.FINISHED, ended=10 * DAY)
    # Live past its end date (the transition has not run yet): still live, kept.
    live = tournament("Live", status=Tournament.Status.LIVE, ended=100 * DAY)

    deleted = retention_run(now=NOW)

    assert history_of(finished) == (0, 0, 0)
    assert history_of(cancelled) == (0, 0, 0)
    assert history_of(recent) == (1, 1, 1)
    assert history_of(live) == (1, 1, 1)
    assert deleted["tournament decisions"] == 2
    assert deleted["tournament trades"] == 2
    assert deleted["tournament equity snapshots"] == 2
    # The tournaments and their final standings stay.
    assert Tournament.objects.count() == 4
    assert Entry.objects.count() == 4


# --- the latest run of each periodic task ------------------------------------------------------


def store(task_id: str, state: str, *, name: str = "nightly") -> None:
    """Through the real result backend, which keeps `ScheduleState` as production does."""
    request = Context(
        id=task_id, task="scheduler.ping", periodic_task_name=name, hostname="worker@test"
    )
    DatabaseBackend(app=app).store_result(task_id, {"pong": True}, state, request=request)


def test_a_state_whose_latest_run_goes_points_at_the_run_before_it(retention_settings):
    long_run, short_run = str(uuid.uuid4()), str(uuid.uuid4())
    start = NOW - 40 * DAY
    with time_machine.travel(start, tick=False):
        store(long_run, states.STARTED)
    with time_machine.travel(start + timedelta(minutes=1), tick=False):
        store(short_run, states.STARTED)
        store(short_run, states.SUCCESS)
    # The first run outlived the second: it finished within the retention, the second did not.
    with time_machine.travel(NOW - DAY, tick=False):
        store(long_run, states.SUCCESS)
    assert ScheduleState.objects.get().task_id == short_run  # the run created last

    assert retention_run(now=NOW)["task results"] == 1

    state = ScheduleState.objects.get(periodic_task_name="nightly")
    kept = TaskResult.objects.get()
    assert (state.task_id, state.result_id, state.status) == (long_run, kept.pk, states.SUCCESS)


def test_a_state_with_no_run_left_is_removed(retention_settings):
    with time_machine.travel(NOW - 40 * DAY, tick=False):
        store("gone", states.SUCCESS)
        store("other", states.SUCCESS, name="weekly")
    with time_machine.travel(NOW - DAY, tick=False):
        store("recent", states.SUCCESS, name="weekly")

    retention_run(now=NOW)

    assert list(ScheduleState.objects.values_list("periodic_task_name", "task_id")) == [
        ("weekly", "recent")
    ]


def test_clearing_the_whole_history_removes_every_state():
    store("a", states.SUCCESS)

    assert history_clear() == 1

    assert not ScheduleState.objects.exists()


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "days"), [("30", 30), ("0", 0), ("", 0), (" 7 ", 7)])
def test_a_retention_setting_reads_days_and_empty_as_forever(text, days):
    assert _retention_days("RESULTS_RETENTION_DAYS", text) == days


@pytest.mark.parametrize("text", ["-1", "a week", "36501"])
def test_a_retention_setting_refuses_what_is_not_a_number_of_days(text):
    with pytest.raises(ImproperlyConfigured, match="RESULTS_RETENTION_DAYS"):
        _retention_days("RESULTS_RETENTION_DAYS", text)
