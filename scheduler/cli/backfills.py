"""`manage.py scheduler backfill NAME --from ... --to ...` and `backfills`: a schedule's runs of a
range of time made now, through the same services as the admin and the API (audited with source
cli, as the OS user or `--as`), and the latest backfills with their progress.

Times without an offset are read in the schedule's zone ('2025-01-15', '2025-01-15 09:00'), as
the admin's form and the API read them; with one ('2025-01-15T09:00:00+00:00') as written. A
refusal names the option to fix (`--to: the range holds 12,345 runs; at most 10,000`), one line
on stderr with exit code 1, and nothing is written.
"""

from __future__ import annotations

import time
from typing import Any
from zoneinfo import ZoneInfo

from django.core.management.base import CommandError

from scheduler import selectors
from scheduler.cli import output as out
from scheduler.cli.actor import ActorCommand
from scheduler.cli.commands import Verbs
from scheduler.models import Backfill, Source
from scheduler.schedules.policies import OverlapPolicy
from scheduler.schedules.rows import periodic_task_schedule
from scheduler.services import (
    BACKFILL_MAX_RUNS,
    BackfillNotFound,
    BackfillPlan,
    ScheduleError,
    backfill_as_dict,
    backfill_plan,
    backfill_start,
)

REFUSALS = (BackfillNotFound,)
# The services' fields, as this command's options name them.
OPTION_OF = {"from": "--from", "to": "--to", "overlap": "--overlap"}
RUNS_SHOWN = 10
LIMIT_MAX = 1000
_POLL_SECONDS = 0.2
HEADERS = ("ID", "CREATED", "PERIODIC TASK", "FROM", "TO", "OVERLAP", "PROGRESS", "STATUS")


def add_backfill_verbs(verbs: Verbs) -> None:
    """`backfill` and `backfills`."""
    backfill = verbs.add_parser(
        "backfill",
        help=f"run a schedule's times between two moments now (at most {BACKFILL_MAX_RUNS:,} "
        "runs); a repeat makes no run twice",
    )
    backfill.add_argument("name", help="the periodic task")
    backfill.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="TIME",
        help="ISO 8601 date or time, in the schedule's zone unless it has an offset",
    )
    backfill.add_argument(
        "--to", dest="end", required=True, metavar="TIME", help="as --from; included"
    )
    backfill.add_argument(
        "--overlap",
        choices=OverlapPolicy.values,
        default=OverlapPolicy.BUFFER_ALL.value,
        help="what a backfilled run does while another run of the schedule runs "
        "(default: buffer_all, every run in order)",
    )
    backfill.add_argument(
        "--dry-run", action="store_true", help="count and list the runs, make none"
    )
    backfill.add_argument(
        "--wait", action="store_true", help="print its progress until every run is published"
    )
    backfill.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (300)")
    backfill.add_argument("--json", action="store_true", help="print JSON")

    listing = verbs.add_parser("backfills", help="the latest backfills and their progress")
    listing.add_argument("name", nargs="?", help="only those of this periodic task")
    listing.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    listing.add_argument("--json", action="store_true", help="print JSON")


def _refusal(exc: ScheduleError) -> CommandError:
    parts = [
        f"{OPTION_OF.get(field, field)}: {' '.join(messages)}"
        for field, messages in exc.errors.items()
    ]
    return CommandError(out.one_line("; ".join(parts)))


def _progress(backfill: Backfill) -> str:
    made = f", {backfill.existing} made before" if backfill.existing else ""
    return f"{backfill.published + backfill.existing}/{backfill.total} runs{made}"


class BackfillVerbs(ActorCommand):
    """The verbs' handlers, for the command to inherit."""

    # Waits sleep through this, so that tests can drive the clock.
    sleep = staticmethod(time.sleep)

    def _backfill(self, options: dict[str, Any]) -> None:
        arguments = {
            "name": options["name"],
            "start": options["start"],
            "end": options["end"],
            "overlap": options["overlap"],
        }
        try:
            if options["dry_run"]:
                self._show_plan(backfill_plan(**arguments), json=options["json"])
                return
            backfill = backfill_start(
                **arguments,
                actor=self.actor.user,
                actor_name=self.actor.name,
                source=Source.CLI,
            )
        except ScheduleError as exc:
            raise _refusal(exc) from exc
        if options["wait"]:
            backfill = self._follow_backfill(
                backfill, timeout=options["timeout"], quiet=options["json"]
            )
        if options["json"]:
            self._json(backfill_as_dict(backfill))
            return
        zone = _zone(backfill)
        self._print(
            f"Backfill {backfill.pk} of {backfill.periodic_task_name!r}: {backfill.total} runs "
            f"from {out.when(backfill.start, zone)} to {out.when(backfill.end, zone)} "
            f"(overlap {backfill.overlap})."
        )
        if not options["wait"]:
            self._print(
                "Publishing in the background: `manage.py scheduler backfills` shows its progress."
            )

    def _show_plan(self, plan: BackfillPlan, *, json: bool) -> None:
        if json:
            self._json({**plan.as_dict(shown=plan.total), "dry_run": True})
            return
        zone = plan.zone
        self._print(
            f"Would backfill {plan.periodic_task.name!r}: {plan.total} runs from "
            f"{out.when(plan.start, zone)} to {out.when(plan.end, zone)} "
            f"(overlap {plan.overlap}). Nothing was run."
        )
        for run in plan.times[:RUNS_SHOWN]:
            self._print(f"  {out.when(run, zone)}  ({run.astimezone(ZoneInfo(zone)):%a})")
        if plan.total > RUNS_SHOWN:
            self._print(
                f"  ... {plan.total - RUNS_SHOWN} more, the last at "
                f"{out.when(plan.times[-1], zone)}"
            )

    def _follow_backfill(self, backfill: Backfill, *, timeout: float, quiet: bool) -> Backfill:
        """Print its progress as it changes until it is over; a CommandError if it failed."""
        if not timeout > 0:
            raise CommandError(f"--timeout must be more than 0 seconds, not {timeout:g}")
        deadline = time.monotonic() + timeout
        said = ""
        while True:
            row = selectors.backfill_by_id(backfill.pk)
            if row is None:
                raise CommandError(f"backfill {backfill.pk} was deleted while it ran")
            line = f"{row.status}: {_progress(row)}"
            if line != said and not quiet:
                self._print(line)
                said = line
            if row.status == Backfill.Status.FAILED:
                raise CommandError(out.one_line(f"backfill {row.pk} failed: {row.error}"))
            if row.status == Backfill.Status.DONE:
                return row
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CommandError(
                    f"timed out after {timeout:g} s waiting for backfill {row.pk} "
                    f"({_progress(row)}): is a worker consuming queue 'maintenance'? See "
                    "`manage.py scheduler status`."
                )
            self.sleep(min(_POLL_SECONDS, remaining))

    def _backfills(self, options: dict[str, Any]) -> None:
        limit = options["limit"]
        if not 1 <= limit <= LIMIT_MAX:
            raise CommandError(f"--limit {limit} is out of range 1-{LIMIT_MAX}")
        rows = list(selectors.backfills_listed(periodic_task_name=options["name"])[:limit])
        if options["json"]:
            self._json([backfill_as_dict(row) for row in rows])
            return
        if not rows:
            self._print("No backfills.")
            return
        self._print(
            out.table(
                HEADERS,
                (
                    (
                        row.pk,
                        out.when(row.created_at),
                        row.periodic_task_name,
                        out.when(row.start),
                        out.when(row.end),
                        row.overlap,
                        _progress(row),
                        row.status if not row.error else f"{row.status}: {row.error}",
                    )
                    for row in rows
                ),
            )
        )


def _zone(backfill: Backfill) -> str | None:
    """The schedule's zone, to show its times in (None: the command's)."""
    periodic_task = backfill.periodic_task
    schedule = periodic_task_schedule(periodic_task, describe=False) if periodic_task else None
    return schedule.timezone if schedule is not None else None
