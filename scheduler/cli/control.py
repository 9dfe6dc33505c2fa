"""`manage.py scheduler revoke ID [--terminate]` and `scheduler queue list | pause | resume |
purge NAME`: an operator's controls of runs and queues, through the same services as the admin,
the dashboard and the API (audited with source cli, under the OS user who ran the command).

The command (scheduler/management/commands/scheduler.py) adds these verbs with
`add_control_verbs` and runs them through `ControlVerbs`; an unknown task id or queue, a finished
run, or a purge without `--confirm NAME` is one line on stderr with exit code 1, and changes
nothing.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import CommandError

from scheduler import selectors
from scheduler.cli import output as out
from scheduler.cli.actor import ActorCommand
from scheduler.cli.commands import Verbs
from scheduler.cli.parsing import CommandLineParser
from scheduler.cli.time_zone import DISPLAY_TZ_HELP
from scheduler.models import Source
from scheduler.services import (
    QUEUE_NOTE_MAX_LENGTH,
    QueueControl,
    QueueNotFound,
    TaskNotFound,
    queue_check,
    queue_pause,
    queue_purge,
    queue_resume,
    task_revoke,
)

# What the command tells the user as one line (exit code 1), besides its own refusals.
REFUSALS = (QueueNotFound, TaskNotFound)
QUEUE_HEADERS = ("QUEUE", "WAITING", "STATE", "PAUSED BY", "SINCE", "NOTE", "WORKERS")


def add_control_verbs(verbs: Verbs) -> None:
    """`revoke` and `queue` (with its own verbs: list, pause, resume, purge)."""
    revoke = verbs.add_parser(
        "revoke", help="drop a queued run, or stop a running one with --terminate"
    )
    revoke.add_argument("task_id", metavar="ID", help="the run's task id")
    revoke.add_argument(
        "--terminate", action="store_true", help="stop the run if it is running (SIGTERM)"
    )
    revoke.add_argument("--json", action="store_true", help="print JSON")

    queue = verbs.add_parser("queue", help="list queues; pause, resume or purge one")
    actions = queue.add_subparsers(
        dest="queue_action", required=True, metavar="ACTION", parser_class=CommandLineParser
    )
    listing = actions.add_parser("list", help="queues with their depth and pauses")
    pause = actions.add_parser(
        "pause", help="stop consuming a queue on every worker (remembered across restarts)"
    )
    pause.add_argument("--note", default="", help=f"why (at most {QUEUE_NOTE_MAX_LENGTH} chars)")
    resume = actions.add_parser("resume", help="consume a paused queue again")
    purge = actions.add_parser("purge", help="remove every message waiting in a queue")
    purge.add_argument(
        "--confirm", metavar="NAME", help="the queue's name again: required, nothing is undone"
    )
    for parser in (pause, resume, purge):
        parser.add_argument("name", metavar="NAME", help="a queue's name (see `queue list`)")
    for parser in (listing, pause, resume, purge):
        parser.add_argument("--json", action="store_true", help="print JSON")
        # Also after the action (`queue list --tz UTC`); absent, it leaves `queue --tz` alone.
        parser.add_argument(
            "--tz",
            dest="display_tz",
            metavar="ZONE",
            default=argparse.SUPPRESS,
            help=DISPLAY_TZ_HELP,
        )


def _queue_as_dict(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "paused_at": out.iso(row["paused_at"])}


def _workers(count: int) -> str:
    return f"{count} worker{'' if count == 1 else 's'}"


class ControlVerbs(ActorCommand):
    """The verbs' handlers, for the command to inherit."""

    def _revoke(self, options: dict[str, Any]) -> None:
        outcome = task_revoke(
            task_id=options["task_id"],
            terminate=options["terminate"],
            actor=self.actor.user,
            actor_name=self.actor.name,
            source=Source.CLI,
        )
        if options["json"]:
            self._json(
                {
                    "task_id": outcome.task_id,
                    "status": outcome.status,
                    "state": outcome.state,
                    "task_name": outcome.task_name,
                    "periodic_task_name": outcome.periodic_task_name,
                }
            )
            return
        what = outcome.periodic_task_name or outcome.task_name or "unknown task"
        verb = "terminate" if outcome.terminate else "drop"
        self._print(
            f"Asked the workers to {verb} task {outcome.task_id} ({what}, {outcome.state.lower()})."
        )

    def _queue(self, options: dict[str, Any]) -> None:
        getattr(self, f"_queue_{options['queue_action']}")(options)

    def _queue_list(self, options: dict[str, Any]) -> None:
        rows = selectors.queues_listed()
        if options["json"]:
            self._json([_queue_as_dict(row) for row in rows])
            return
        self._print(
            out.table(
                QUEUE_HEADERS,
                (
                    (
                        row["name"],
                        row["depth"],
                        "paused" if row["paused"] else "consuming",
                        row["paused_by"] or "",
                        out.when(row["paused_at"]) if row["paused"] else "",
                        row["note"] or "",
                        len(row["workers"]),
                    )
                    for row in rows
                ),
            )
        )

    def _queue_shown(self, control: QueueControl, options: dict[str, Any]) -> None:
        if options["json"]:
            self._json(control.as_dict())
            return
        state = "Paused" if control.paused else "Resumed"
        told = f"{_workers(len(control.workers))} confirmed"
        if control.changed:
            self._print(f"{state} queue {control.queue}: {told}.")
        else:
            already = "paused" if control.paused else "not paused"
            self._print(f"Queue {control.queue} was {already} already: {told} again.")

    def _queue_pause(self, options: dict[str, Any]) -> None:
        control = queue_pause(
            queue=options["name"],
            note=options["note"],
            actor=self.actor.user,
            actor_name=self.actor.name,
            source=Source.CLI,
        )
        self._queue_shown(control, options)

    def _queue_resume(self, options: dict[str, Any]) -> None:
        control = queue_resume(
            queue=options["name"],
            actor=self.actor.user,
            actor_name=self.actor.name,
            source=Source.CLI,
        )
        self._queue_shown(control, options)

    def _queue_purge(self, options: dict[str, Any]) -> None:
        name = queue_check(options["name"])
        if options["confirm"] is None:
            raise CommandError(
                f"refusing to purge queue {name} without --confirm {name}: its waiting "
                "messages would be removed for good"
            )
        removed = queue_purge(
            queue=name,
            confirm=options["confirm"],
            actor=self.actor.user,
            actor_name=self.actor.name,
            source=Source.CLI,
        )
        if options["json"]:
            self._json({"queue": name, "purged": removed})
            return
        self._print(f"Purged queue {name}: {removed} message{'' if removed == 1 else 's'} removed.")
