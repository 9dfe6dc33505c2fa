"""`--json` on every verb (and every action of a verb) of `manage.py scheduler`: its whole
output is one JSON document. The table below must name every verb the command has."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from celery import states
from django.core.management import call_command
from django.core.management.base import CommandError

from agents.services import agent_schedule_create
from config.celery import app
from scheduler.management.commands import scheduler as scheduler_command
from scheduler.models import Incident
from tests.alert_setup import alerting
from tests.factories import make_agent, make_channel, make_dead_letter, make_incident, make_rule
from tests.scheduler.cli.helpers import create, scheduler, stored_result

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("alerting")]
__all__ = ["alerting"]


def verbs_of_the_command() -> set[str]:
    """Every verb, and every action of a verb ('alerts add')."""
    parser = scheduler_command.Command().create_parser("manage.py", "scheduler")
    names: set[str] = set()
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for verb, sub in action.choices.items():
            names.add(verb)
            for inner in sub._actions:
                if isinstance(inner, argparse._SubParsersAction):
                    names.update(f"{verb} {name}" for name in inner.choices)
    return names


class World:
    """What the verbs act on: two schedules, an agent's, a failed run, dead letters, an alert
    rule with its channel and an open incident."""

    def __init__(self, tmp_path: Path) -> None:
        create("job", "every 5 minutes")
        scheduler("create", "cleanup", "every day at 3am", "--task", "scheduler.cleanup_results")
        agent = make_agent("Poster")
        agent_schedule_create(
            agent=agent,
            name="poster: morning",
            task="agents.post",
            schedule="every day at 9am",
            params={"agent": agent.slug, "topic": "news"},
        )
        stored_result(
            status=states.FAILURE,
            task_name="scheduler.cleanup_results",
            periodic_task_name="cleanup",
            task_id="failed-1",
        )
        self.letters = [str(make_dead_letter().pk), str(make_dead_letter().pk)]
        make_channel("ops")
        make_incident(make_rule("failures"))
        incident = Incident.objects.get()
        self.incident = str(incident.pk)
        self.file = tmp_path / "schedules.json"
        self.file.write_text(scheduler("export", "--json"))


def a_worker_for(task_id: str) -> scheduler_command.Command:
    """A stand-in worker: on the first poll, the run `task_id` succeeds."""
    command = scheduler_command.Command()
    command.sleep = lambda seconds: app.backend.mark_as_done(task_id, {"pong": True})
    return command


# verb -> (its arguments, given the world; whether it exits non-zero after its document)
CASES: dict[str, tuple[Callable[[World], list[str]], bool]] = {
    "available": (lambda w: ["available"], False),
    "parse": (lambda w: ["parse", "every day at 9am"], False),
    "create": (lambda w: ["create", "new", "hourly", "--task", "scheduler.ping"], False),
    "update": (lambda w: ["update", "job", "--schedule", "hourly"], False),
    "list": (lambda w: ["list"], False),
    "show": (lambda w: ["show", "job"], False),
    "enable": (lambda w: ["enable", "job"], False),
    "disable": (lambda w: ["disable", "job"], False),
    "delete": (lambda w: ["delete", "job"], False),
    "pause": (lambda w: ["pause", "job", "--note", "deploy"], False),
    "resume": (lambda w: ["resume", "--agent", "poster"], False),
    "pause-on-failure": (lambda w: ["pause-on-failure", "job", "3"], False),
    "clear": (lambda w: ["clear", "--name-contains", "job", "--confirm"], False),
    "sync": (lambda w: ["sync", "--dry-run"], True),
    "export": (lambda w: ["export"], False),
    "import": (lambda w: ["import", str(w.file)], False),
    "run": (lambda w: ["run", "job"], False),
    "backfill": (
        lambda w: ["backfill", "cleanup", "--from", "2025-01-01", "--to", "2025-01-03"],
        False,
    ),
    "backfills": (lambda w: ["backfills"], False),
    "retry": (lambda w: ["retry", "failed-1"], False),
    "run-task": (lambda w: ["run-task", "scheduler.ping"], False),
    "history": (lambda w: ["history"], False),
    "clear-history": (lambda w: ["clear-history", "--confirm"], False),
    "logs": (lambda w: ["logs"], False),
    "dead-letters": (lambda w: ["dead-letters"], False),
    "requeue": (lambda w: ["requeue", w.letters[0]], False),
    "discard": (lambda w: ["discard", w.letters[1]], False),
    "status": (lambda w: ["status"], False),
    "health": (lambda w: ["health"], True),  # no worker, no beat: unhealthy
    "test": (lambda w: ["test", "--timeout", "5"], False),
    "queue": (lambda w: ["queue", "list"], False),
    "queue list": (lambda w: ["queue", "list"], False),
    "queue pause": (lambda w: ["queue", "pause", "webhooks", "--note", "partner down"], False),
    "queue resume": (lambda w: ["queue", "resume", "webhooks"], False),
    "queue purge": (lambda w: ["queue", "purge", "webhooks", "--confirm", "webhooks"], False),
    "worker": (lambda w: ["worker", "list"], False),  # no worker answers: an empty list
    "worker list": (lambda w: ["worker", "list"], False),
    "alerts": (lambda w: ["alerts"], False),
    "alerts add": (lambda w: ["alerts", "add", "slow", "--trigger", "failed"], False),
    "alerts update": (lambda w: ["alerts", "update", "failures", "--threshold", "2"], False),
    "alerts remove": (lambda w: ["alerts", "remove", "failures"], False),
    "alerts watch": (lambda w: ["alerts", "watch", "--once"], False),
    "channels": (lambda w: ["channels"], False),
    "channels add": (lambda w: ["channels", "add", "pager", "--kind", "record"], False),
    "channels update": (lambda w: ["channels", "update", "ops", "--disabled"], False),
    "channels remove": (lambda w: ["channels", "remove", "ops"], False),
    "channels test": (lambda w: ["channels", "test", "ops", "--wait", "0"], False),
    "incidents": (lambda w: ["incidents", "--all"], False),
    "incidents show": (lambda w: ["incidents", "show", w.incident], False),
    "incidents ack": (lambda w: ["incidents", "ack", w.incident, "--note", "on it"], False),
    "incidents silence": (lambda w: ["incidents", "silence", w.incident, "--for", "1h"], False),
    "incidents resolve": (lambda w: ["incidents", "resolve", w.incident], False),
}


# They need a worker that answers (or a run that runs): test_workers.py and test_control.py
# give them one.
ON_A_REAL_WORKER = {
    "revoke",
    "worker grow",
    "worker shrink",
    "worker autoscale",
    "worker shutdown",
}


def test_the_table_names_every_verb_of_the_command():
    assert verbs_of_the_command() - set(CASES) - ON_A_REAL_WORKER == set()


@pytest.mark.parametrize("verb", sorted(CASES))
def test_json_prints_one_document(verb, tmp_path, monkeypatch):
    world = World(tmp_path)
    arguments, fails = CASES[verb]
    command: Any = "scheduler"
    if verb == "test":
        monkeypatch.setattr(scheduler_command, "task_enqueue", lambda task: "ping-1")
        command = a_worker_for("ping-1")
    stdout = StringIO()

    try:
        call_command(command, *arguments(world), "--json", stdout=stdout, stderr=StringIO())
    except CommandError:
        if not fails:
            raise

    document = json.loads(stdout.getvalue())
    assert isinstance(document, dict | list)
