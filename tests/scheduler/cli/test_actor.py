"""Who a command-line action is by: the OS user (by name, AuditEntry.actor_name), or `--as USER`,
a Django user who must be active staff with the permission the API asks for the same action.
An unknown user, or one without the permission, exits 1 and changes nothing.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from typing import Any

import pytest
from celery import states
from django.core.management.base import CommandError
from django_celery_beat.models import PeriodicTask

from agents.services import agent_schedule_create
from scheduler import permissions
from scheduler.models import AuditEntry, DeadLetter, Incident, Source
from tests.alert_setup import alerting
from tests.factories import (
    UserFactory,
    make_agent,
    make_channel,
    make_dead_letter,
    make_incident,
    make_rule,
    permission_named,
    user_with,
)
from tests.scheduler.cli.helpers import create, scheduler, scheduler_json, stored_result

pytestmark = pytest.mark.django_db
__all__ = ["alerting"]


@pytest.fixture(autouse=True)
def alice(monkeypatch: pytest.MonkeyPatch) -> str:
    """The OS user running the commands."""
    monkeypatch.setattr(getpass, "getuser", lambda: "alice")
    return "alice"


# --- the OS user ---------------------------------------------------------------------------------


def test_without_as_the_os_user_is_recorded_by_name():
    create("job")
    scheduler("disable", "job")

    entries = list(AuditEntry.objects.filter(periodic_task_name="job").order_by("id"))
    show = scheduler("show", "job")
    trail = scheduler_json("show", "job", "--json")["audit"]

    assert [(entry.action, entry.actor, entry.actor_name) for entry in entries] == [
        ("created", None, "alice"),
        ("disabled", None, "alice"),
    ]
    assert "via cli       by alice" in show
    assert {(row["actor"], row["actor_name"]) for row in trail} == {(None, "alice")}


def test_a_pause_from_the_command_line_says_who_paused_it():
    create("job")

    scheduler("pause", "job", "--note", "deploy")

    entry = AuditEntry.objects.get(action="paused")
    assert entry.actor_name == "alice"
    assert entry.changes["paused_by"] == [None, "alice"]


def test_an_os_user_the_system_cannot_name_is_recorded_as_nobody(monkeypatch):
    def no_name() -> str:
        raise OSError("no login name")

    monkeypatch.setattr(getpass, "getuser", no_name)

    create("job")

    assert AuditEntry.objects.get().actor_name == ""


# --- --as USER -----------------------------------------------------------------------------------


def test_as_a_user_with_the_permission_records_that_user():
    bob = user_with(permissions.ADD_SCHEDULE, permissions.CHANGE_SCHEDULE)
    bob_name = bob.get_username()

    create("job", "0 9 * * *", "--as", bob_name)
    scheduler("pause", "job", "--as", bob_name)

    created, paused = AuditEntry.objects.order_by("id")
    assert (created.actor, created.actor_name) == (bob, "alice")
    assert paused.actor == bob
    assert scheduler_json("show", "job", "--json")["pause"]["paused_by"] == bob_name


@pytest.mark.usefixtures("alerting")
def test_as_works_on_an_action_of_a_verb_on_either_side():
    make_channel("ops")
    carol = user_with(permissions.ADD_ALERT_RULE, permissions.DELETE_ALERT_RULE)

    scheduler("alerts", "add", "failures", "--trigger", "failed", "--as", carol.get_username())
    scheduler("alerts", "--as", carol.get_username(), "remove", "failures")

    assert [entry.actor for entry in AuditEntry.objects.filter(source=Source.CLI)] == [carol, carol]


AS_REFUSALS = [
    ("ghost", "--as: no user named 'ghost'"),
    ("not-staff", "--as: 'not-staff' is not an active member of staff"),
    ("inactive", "--as: 'inactive' is not an active member of staff"),
    ("viewer", "needs the permission django_celery_beat.add_periodictask; nothing was changed"),
]


@pytest.mark.parametrize(("username", "message"), AS_REFUSALS)
def test_as_an_unknown_or_unfit_user_exits_1_and_changes_nothing(username, message):
    adder = permission_named(permissions.ADD_SCHEDULE)
    UserFactory.create(username="not-staff", is_staff=False).user_permissions.add(adder)
    UserFactory.create(username="inactive", is_active=False).user_permissions.add(adder)
    UserFactory.create(username="viewer").user_permissions.add(
        permission_named(permissions.VIEW_DASHBOARD)
    )

    with pytest.raises(CommandError) as error:
        create("job", "0 9 * * *", "--as", username)

    assert message in str(error.value)
    assert error.value.returncode == 1
    assert not PeriodicTask.objects.filter(name="job").exists()
    assert not AuditEntry.objects.exists()


def test_reading_as_a_member_of_staff_needs_no_permission_but_an_unknown_user_is_refused():
    create("job")
    reader = user_with()

    listed = scheduler_json("list", "--json", "--as", reader.get_username())

    assert [row["name"] for row in listed] == ["job"]
    with pytest.raises(CommandError, match="--as: no user named 'ghost'"):
        scheduler("list", "--as", "ghost")


def test_a_dry_run_needs_no_permission():
    create("job")
    reader = user_with()

    with pytest.raises(CommandError, match="would be disabled"):
        scheduler("clear", "--as", reader.get_username())

    assert PeriodicTask.objects.get(name="job").enabled


# Each writing verb: what it needs (as the API asks it), the world it runs in, its arguments,
# and what shows that it changed something.
def _schedule() -> None:
    create("job")


def _failed_run() -> None:
    stored_result(status=states.FAILURE, task_name="scheduler.cleanup_results", task_id="failed-1")


def _agent() -> None:
    agent = make_agent("Poster")
    agent_schedule_create(
        agent=agent,
        name="poster: morning",
        task="agents.post",
        schedule="every day at 9am",
        params={"agent": agent.slug, "topic": "news"},
    )


def _incident() -> None:
    make_channel("ops")
    make_incident(make_rule())


VERBS: list[tuple[str, list[str], Callable[[], Any]]] = [
    (permissions.ADD_SCHEDULE, ["create", "new", "hourly", "--task", "scheduler.ping"], list),
    (permissions.CHANGE_SCHEDULE, ["update", "job", "--schedule", "hourly"], _schedule),
    (permissions.CHANGE_SCHEDULE, ["disable", "job"], _schedule),
    (permissions.CHANGE_SCHEDULE, ["run", "job"], _schedule),
    (permissions.CHANGE_SCHEDULE, ["pause", "--agent", "poster"], _agent),
    (permissions.CHANGE_SCHEDULE, ["clear", "--confirm"], _schedule),
    (permissions.DELETE_SCHEDULE, ["delete", "job"], _schedule),
    (permissions.DELETE_SCHEDULE, ["clear", "--confirm", "--delete"], _schedule),
    (permissions.RUN_TASKS, ["run-task", "scheduler.ping"], list),
    (permissions.RUN_TASKS, ["retry", "failed-1"], _failed_run),
    (permissions.RUN_TASKS, ["discard", "DEAD"], list),
    (permissions.MANAGE_ALERTS, ["incidents", "resolve", "INCIDENT"], _incident),
    (permissions.DELETE_RESULTS, ["clear-history", "--confirm"], _failed_run),
]


@pytest.mark.usefixtures("alerting")
@pytest.mark.parametrize(("permission", "arguments", "world"), VERBS)
def test_each_writing_verb_needs_its_permission_of_an_as_user(permission, arguments, world):
    world()
    letter = make_dead_letter()
    incident = Incident.objects.first()
    arguments = [str(letter.pk) if argument == "DEAD" else argument for argument in arguments]
    arguments = [
        str(incident.pk) if argument == "INCIDENT" and incident else argument
        for argument in arguments
    ]
    without = user_with(permissions.VIEW_DASHBOARD)
    holder = user_with(permission)
    before = (
        AuditEntry.objects.count(),
        list(PeriodicTask.objects.values_list("name", "enabled")),
        DeadLetter.objects.filter(status="open").count(),
    )

    with pytest.raises(CommandError, match=f"needs the permission {permission}"):
        scheduler(*arguments, "--as", without.get_username())
    unchanged = (
        AuditEntry.objects.count(),
        list(PeriodicTask.objects.values_list("name", "enabled")),
        DeadLetter.objects.filter(status="open").count(),
    )
    scheduler(*arguments, "--as", holder.get_username())

    assert unchanged == before
    if arguments[0] != "clear-history":  # it deletes results: nothing is audited
        latest = AuditEntry.objects.order_by("-id").first()
        assert latest is not None
        assert (latest.actor, latest.actor_name, latest.source) == (holder, "alice", Source.CLI)
