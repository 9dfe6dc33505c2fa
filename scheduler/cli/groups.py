"""The schedules of an agent or a tournament as a group, from `manage.py scheduler`:
`pause|resume|run --agent SLUG | --tournament ID` (the objects' admin pages' "Pause all
schedules", through the same services), and `clear`: disable, or delete, every periodic task a
filter matches, listed first (exit 1) until `--confirm` says yes.

Each app registers how its objects' schedules are found (scheduler/services/owner_groups.py); an
unknown slug or id is one line on stderr with exit code 1, and nothing changes.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from django.core.management.base import CommandError
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from config.queues import QUEUES
from scheduler import selectors
from scheduler.cli import output as out
from scheduler.cli.actor import ActorCommand
from scheduler.cli.commands import Verbs
from scheduler.models import Source
from scheduler.services import (
    owner_kinds,
    owner_schedule_names,
    owner_schedules_pause,
    owner_schedules_resume,
    owner_schedules_run,
    schedule_set_enabled_bulk,
    schedules_delete,
)

# Who owns schedules, as options: `pause --agent SLUG`, `clear --tournament ID`.
OWNER_OPTIONS = {"agent": "--agent", "tournament": "--tournament"}


def add_owner_arguments(parser: argparse.ArgumentParser, *, what: str) -> None:
    """`--agent SLUG` and `--tournament ID`: the schedules an object owns (`what`: 'pause all'
    -> 'pause all the schedules of this agent')."""
    owner = parser.add_mutually_exclusive_group()
    owner.add_argument(
        "--agent", metavar="SLUG", help=f"{what} the schedules of this agent (slug or id)"
    )
    owner.add_argument(
        "--tournament",
        metavar="ID",
        help=f"{what.split()[0]} the periodic task of this tournament (id or name)",
    )


def add_clear_verb(verbs: Verbs) -> None:
    clear = verbs.add_parser(
        "clear",
        help="disable (or --delete) every periodic task matching the filters (none: all of "
        "them); without --confirm, list them and exit 1",
    )
    clear.add_argument("--confirm", action="store_true", help="required: yes, change them")
    clear.add_argument("--delete", action="store_true", help="delete them instead")
    clear.add_argument("--task", metavar="NAME", help="only those running this task")
    clear.add_argument("--queue", help="only those on this queue")
    clear.add_argument("--name-contains", metavar="TEXT", help="only those named so (any case)")
    add_owner_arguments(clear, what="only")


def owner_given(options: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, key) of `--agent` / `--tournament`, or None for a periodic task's NAME; exactly
    one of them."""
    given = [(kind, options[kind]) for kind in OWNER_OPTIONS if options.get(kind) is not None]
    if len(given) + (options.get("name") is not None) != 1:
        raise CommandError(
            "give the periodic task's NAME, or --agent SLUG, or --tournament ID: one of them"
        )
    if given and given[0][0] not in owner_kinds():
        raise CommandError(f"{OWNER_OPTIONS[given[0][0]]}: no {given[0][0]}s in this project")
    return given[0] if given else None


def _clear_selection(options: Mapping[str, Any]) -> list[PeriodicTask]:
    """The periodic tasks `clear`'s filters choose (all of them with none), by name."""
    queue = options["queue"]
    if queue is not None and queue not in QUEUES:
        raise CommandError(f"--queue: unknown queue {queue!r} (queues: {', '.join(QUEUES)})")
    names = None
    for kind in OWNER_OPTIONS:
        if options.get(kind) is not None:
            names = owner_schedule_names(owner=kind, key=options[kind])
    return list(
        selectors.periodic_tasks_matching(
            task=options["task"],
            queue=queue,
            name_contains=options["name_contains"],
            names=names,
        )
    )


class GroupVerbs(ActorCommand):
    """The group controls and `clear`, for the command to inherit (its `pause`, `resume` and
    `run` hand an `--agent` or `--tournament` to these)."""

    def _pause_group(self, options: dict[str, Any], owner: tuple[str, str]) -> None:
        names = owner_schedules_pause(
            owner=owner[0],
            key=owner[1],
            note=options["note"],
            until=options["until"],
            tz=timezone.get_current_timezone_name(),
            actor=self.actor.user,
            actor_name=self.actor.name,
            source=Source.CLI,
        )
        self._group_done(options, owner, "paused", names)

    def _resume_group(self, options: dict[str, Any], owner: tuple[str, str]) -> None:
        names = owner_schedules_resume(
            owner=owner[0],
            key=owner[1],
            actor=self.actor.user,
            actor_name=self.actor.name,
            source=Source.CLI,
        )
        self._group_done(options, owner, "resumed", names)

    def _run_group(self, options: dict[str, Any], owner: tuple[str, str]) -> None:
        if options["wait"]:
            raise CommandError(f"--wait waits for one run: not with {OWNER_OPTIONS[owner[0]]}")
        kind, key = owner
        runs = owner_schedules_run(
            owner=kind,
            key=key,
            actor=self.actor.user,
            actor_name=self.actor.name,
            source=Source.CLI,
        )
        what = f"{kind} {key!r}"
        lines = [f"Queued {len(runs)} run(s) of the schedules of {what}:"] if runs else []
        lines += [f"  {name}: task {task_id}" for name, task_id in runs.items()]
        self._done(
            options,
            lines or f"{what.capitalize()} has no schedules: nothing was run.",
            {"owner": {"type": kind, "key": key}, "action": "run", "runs": runs},
        )

    def _group_done(
        self, options: dict[str, Any], owner: tuple[str, str], done: str, names: list[str]
    ) -> None:
        """What a pause or resume of an object's schedules did: `names`, the schedules it
        changed (a resume: those that were paused)."""
        kind, key = owner
        what = f"{kind} {key!r}"
        if names:
            noun = "schedule" if len(names) == 1 else "schedules"
            text = f"{done.capitalize()} {len(names)} {noun} of {what}: {', '.join(names)}."
        elif done == "resumed":
            text = f"No paused schedule of {what}: nothing was resumed."
        else:
            text = f"{what.capitalize()} has no schedules: nothing was {done}."
        self._done(
            options,
            text,
            {"owner": {"type": kind, "key": key}, "action": done, "schedules": names},
        )

    def _clear(self, options: dict[str, Any]) -> None:
        delete = options["delete"]
        rows = [row for row in _clear_selection(options) if delete or row.enabled]
        names = [row.name for row in rows]
        verb = "delete" if delete else "disable"
        document = {
            "action": verb,
            "confirmed": bool(options["confirm"]),
            "schedules": names,
            "changed": 0,
        }
        if not names:
            self._done(options, f"No periodic task to {verb}: nothing matches.", document)
            return
        noun = "periodic task" if len(names) == 1 else "periodic tasks"
        if not options["confirm"]:
            if options["json"]:
                self._json(document)
            else:
                self._print(f"Would {verb} {len(names)} {noun}:")
                for row in rows:
                    self._print(f"  {row.name}  ({out.task_label(row)})")
            raise CommandError(
                f"{len(names)} {noun} would be {verb}d: nothing was changed; add --confirm to "
                f"{verb} them"
            )
        if delete:
            changed = len(
                schedules_delete(
                    names=names,
                    actor=self.actor.user,
                    actor_name=self.actor.name,
                    source=Source.CLI,
                )
            )
        else:
            changed = schedule_set_enabled_bulk(
                names=names,
                enabled=False,
                actor=self.actor.user,
                actor_name=self.actor.name,
                source=Source.CLI,
            )
        self._done(
            options,
            [f"{verb.capitalize()}d {changed} {noun}:", *(f"  {name}" for name in names)],
            {**document, "changed": changed},
        )
