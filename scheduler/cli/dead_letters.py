"""`manage.py scheduler dead-letters | requeue ID | discard ID`: runs that failed their last
retry, listed (arguments masked), requeued as a new run or discarded, through the same services
as the admin, the dashboard and the API (audited with source cli, as the OS user or `--as`).

The command (scheduler/management/commands/scheduler.py) adds these verbs with
`add_dead_letter_verbs` and runs them through `DeadLetterVerbs`; an unknown id or a letter
resolved already is one line on stderr with exit code 1, as every refusal of the command is.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from scheduler import selectors
from scheduler.cli import output as out
from scheduler.cli.actor import ActorCommand
from scheduler.cli.commands import Verbs
from scheduler.models import DeadLetter, Source
from scheduler.services import (
    DeadLetterNotFound,
    DeadLetterResolved,
    dead_letter_discard,
    dead_letter_requeue,
)

# What the command tells the user as one line (exit code 1), besides its own refusals.
REFUSALS = (DeadLetterNotFound, DeadLetterResolved)
LIMIT_MAX = 10_000
HEADERS = ("ID", "FAILED", "STATUS", "TASK", "PERIODIC TASK", "ATTEMPTS", "ERROR", "TASK ID")


def add_dead_letter_verbs(verbs: Verbs) -> None:
    """`dead-letters`, `requeue` and `discard`."""
    listing = verbs.add_parser(
        "dead-letters", help="runs that failed their last retry, newest first"
    )
    listing.add_argument(
        "--status",
        choices=selectors.DEAD_LETTER_STATUSES,
        default=DeadLetter.Status.OPEN.value,
        help="which letters (default: open)",
    )
    listing.add_argument("--task", metavar="NAME", help="only those of this task")
    listing.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    listing.add_argument("--json", action="store_true", help="print JSON")

    requeue = verbs.add_parser(
        "requeue", help="run a dead letter again as a new task (checked by the catalog again)"
    )
    requeue.add_argument("id", type=int, help="the dead letter's id (see `dead-letters`)")
    discard = verbs.add_parser("discard", help="close a dead letter without running it again")
    discard.add_argument("id", type=int, help="the dead letter's id (see `dead-letters`)")


def _as_dict(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "failed_at": out.iso(row["failed_at"]),
        "resolved_at": out.iso(row["resolved_at"]),
    }


def _label(letter: DeadLetter) -> str:
    return f"dead letter {letter.pk} ({letter.task_name}, task {letter.task_id})"


class DeadLetterVerbs(ActorCommand):
    """The verbs' handlers, for the command to inherit."""

    def _dead_letters(self, options: dict[str, Any]) -> None:
        limit = options["limit"]
        if not 1 <= limit <= LIMIT_MAX:
            raise CommandError(f"--limit {limit} is out of range 1-{LIMIT_MAX}")
        letters = selectors.dead_letters_listed(status=options["status"], task=options["task"])
        rows = selectors.dead_letters_shown(letters[:limit])
        if options["json"]:
            self._json([_as_dict(row) for row in rows])
            return
        if not rows:
            self._print(f"No dead letters ({options['status']}).")
            return
        self._print(
            out.table(
                HEADERS,
                (
                    (
                        row["id"],
                        out.when(row["failed_at"]),
                        row["status"],
                        row["task_name"],
                        row["periodic_task_name"],
                        row["attempts"],
                        row["error_summary"],
                        row["task_id"],
                    )
                    for row in rows
                ),
            )
        )

    def _requeue(self, options: dict[str, Any]) -> None:
        task_id = dead_letter_requeue(
            dead_letter_id=options["id"],
            actor=self.actor.user,
            actor_name=self.actor.name,
            source=Source.CLI,
        )
        letter = selectors.dead_letter_by_id(options["id"])
        if options["json"]:
            self._json(_resolved_as_dict(options["id"], letter, requeued_as=task_id))
            return
        what = _label(letter) if letter is not None else f"dead letter {options['id']}"
        self._print(f"Requeued {what} as task {task_id}.")

    def _discard(self, options: dict[str, Any]) -> None:
        letter = dead_letter_discard(
            dead_letter_id=options["id"],
            actor=self.actor.user,
            actor_name=self.actor.name,
            source=Source.CLI,
        )
        if options["json"]:
            self._json(_resolved_as_dict(options["id"], letter, requeued_as=None))
            return
        self._print(f"Discarded {_label(letter)}.")


def _resolved_as_dict(
    dead_letter_id: int, letter: DeadLetter | None, *, requeued_as: str | None
) -> dict[str, Any]:
    return {
        "id": dead_letter_id,
        "status": letter.status if letter is not None else None,
        "task_name": letter.task_name if letter is not None else None,
        "failed_task_id": letter.task_id if letter is not None else None,
        "requeued_as": requeued_as,
    }
