"""`manage.py scheduler worker list | grow | shrink | autoscale | shutdown`: the workers and
their pools, and the controls of one worker, through the same services as the dashboard and the
API (audited with source cli and the OS user who ran the command).

The command (scheduler/management/commands/scheduler.py) adds the verb with `add_worker_verbs`
and runs it through `WorkerVerbs`; a hostname no worker answers for, a worker that refuses and
bad numbers are one line on stderr with exit code 1, as every refusal of the command is.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from scheduler.cli import output as out
from scheduler.cli.actor import ActorCommand
from scheduler.cli.commands import Verbs
from scheduler.cli.parsing import CommandLineParser
from scheduler.cli.time_zone import DISPLAY_TZ_HELP
from scheduler.models import Source
from scheduler.observability.worker_pools import WorkerRow, worker_rows
from scheduler.services import (
    WorkerChange,
    WorkerNotFound,
    WorkerRefused,
    worker_autoscale,
    worker_pool_grow,
    worker_pool_shrink,
    worker_shutdown,
)

# What the command tells the user as one line (exit code 1), besides its own refusals.
REFUSALS = (WorkerNotFound, WorkerRefused)
HEADERS = ("HOSTNAME", "ANSWERED", "POOL", "PROCESSES", "AUTOSCALE", "QUEUES", "LAST SEEN")


def add_worker_verbs(verbs: Verbs) -> None:
    """`worker` and its own verbs."""
    worker = verbs.add_parser("worker", help="list workers; resize, autoscale or stop one")
    actions = worker.add_subparsers(
        dest="worker_action", required=True, metavar="ACTION", parser_class=CommandLineParser
    )
    listing = actions.add_parser("list", help="workers and their pools (`inspect stats`)")
    grow = actions.add_parser("grow", help="add N processes to a worker's pool")
    shrink = actions.add_parser("shrink", help="stop N idle processes of a worker's pool")
    autoscale = actions.add_parser(
        "autoscale", help="set the range a worker started with --autoscale scales its pool in"
    )
    shutdown = actions.add_parser(
        "shutdown", help="shut one worker down warm (it finishes its running tasks, then exits)"
    )
    for parser in (grow, shrink, autoscale, shutdown):
        parser.add_argument("hostname", help="the worker's hostname (see `worker list`)")
    for parser in (grow, shrink):
        parser.add_argument(
            "n", type=int, nargs="?", default=1, help="how many processes (default 1)"
        )
    autoscale.add_argument("max", type=int, help="the most pool processes")
    autoscale.add_argument(
        "min", type=int, nargs="?", help="the fewest pool processes (left out: kept)"
    )
    for parser in (listing, grow, shrink, autoscale, shutdown):
        parser.add_argument("--json", action="store_true", help="print JSON")
        # Given after the action; SUPPRESS: `worker --tz X list` keeps the X given before it.
        parser.add_argument(
            "--tz",
            dest="display_tz",
            metavar="ZONE",
            default=argparse.SUPPRESS,
            help=DISPLAY_TZ_HELP,
        )


def _last_seen(row: WorkerRow) -> datetime | None:
    return datetime.fromtimestamp(row.last_seen, UTC) if row.last_seen is not None else None


class WorkerVerbs(ActorCommand):
    """The verb's handler, for the command to inherit."""

    def _worker(self, options: dict[str, Any]) -> None:
        getattr(self, f"_worker_{options['worker_action']}")(options)

    def _worker_list(self, options: dict[str, Any]) -> None:
        rows = worker_rows(window=settings.WORKER_HEALTH_WINDOW)
        if options["json"]:
            self._json([row.as_dict() for row in rows])
            return
        if not rows:
            self._print("No worker answered, and none was heard from lately.")
            return
        self._print(
            out.table(
                HEADERS,
                (
                    (
                        row.hostname,
                        "yes" if row.pool is not None else "no",
                        row.pool.kind if row.pool else None,
                        row.pool.processes if row.pool else None,
                        (
                            f"{row.pool.autoscale.min}-{row.pool.autoscale.max}"
                            if row.pool and row.pool.autoscale
                            else None
                        ),
                        ",".join(row.queues),
                        out.when(_last_seen(row)),
                    )
                    for row in rows
                ),
            )
        )

    def _worker_grow(self, options: dict[str, Any]) -> None:
        self._worker_done(
            options,
            worker_pool_grow(
                hostname=options["hostname"],
                n=options["n"],
                source=Source.CLI,
                actor=self.actor.user,
                actor_name=self.actor.name,
            ),
        )

    def _worker_shrink(self, options: dict[str, Any]) -> None:
        self._worker_done(
            options,
            worker_pool_shrink(
                hostname=options["hostname"],
                n=options["n"],
                source=Source.CLI,
                actor=self.actor.user,
                actor_name=self.actor.name,
            ),
        )

    def _worker_autoscale(self, options: dict[str, Any]) -> None:
        self._worker_done(
            options,
            worker_autoscale(
                hostname=options["hostname"],
                max_processes=options["max"],
                min_processes=options["min"],
                source=Source.CLI,
                actor=self.actor.user,
                actor_name=self.actor.name,
            ),
        )

    def _worker_shutdown(self, options: dict[str, Any]) -> None:
        self._worker_done(
            options,
            worker_shutdown(
                hostname=options["hostname"],
                source=Source.CLI,
                actor=self.actor.user,
                actor_name=self.actor.name,
            ),
        )

    def _worker_done(self, options: dict[str, Any], change: WorkerChange) -> None:
        if options["json"]:
            self._json(change.as_dict())
            return
        changed = "; ".join(
            f"{name} {_shown(before)} -> {_shown(after)}"
            for name, (before, after) in change.changes.items()
        )
        self._print(f"{change.hostname}: {change.detail} ({changed}).")


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{key}={value[key]}" for key in sorted(value))
    return str(value)
