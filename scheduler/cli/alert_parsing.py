"""What the alerting verbs of `manage.py scheduler` (alerts.py, incidents.py) share: their
actions' parsers, the values they read (durations, quiet windows, moments) and the services'
refusals said in the words of the command line (`--threshold: ...`, not `threshold: ...`).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, time

from django.core.management.base import CommandError
from django.utils import timezone

from scheduler.cli import output as out
from scheduler.cli.commands import Verbs
from scheduler.cli.parsing import CommandLineParser
from scheduler.cli.time_zone import DISPLAY_TZ_HELP
from scheduler.core.durations import duration_seconds
from scheduler.services import AlertNotFound, ScheduleError

# Words that clear a rule's quiet window (`--quiet off`).
NO_QUIET = frozenset({"", "off", "none", "no"})


def actions_of(parser: argparse.ArgumentParser, *, dest: str) -> Verbs:
    """The actions of a verb (`alerts add`, `incidents ack`); none given: the verb's listing."""
    return parser.add_subparsers(dest=dest, metavar="ACTION", parser_class=CommandLineParser)


def add_zone_options(actions: Verbs) -> None:
    """`--tz` on each action, as every verb has it. Left out of the options unless given, so that
    it never hides the verb's own (`incidents --tz UTC show 3`)."""
    for parser in actions.choices.values():
        parser.add_argument(
            "--tz",
            dest="display_tz",
            metavar="ZONE",
            default=argparse.SUPPRESS,
            help=DISPLAY_TZ_HELP,
        )


def seconds_of(text: str | None, *, flag: str) -> int | None:
    if text is None:
        return None
    try:
        return duration_seconds(text)
    except ValueError as exc:
        raise CommandError(f"{flag}: {exc}") from None


def quiet_window(text: str) -> tuple[time | None, time | None]:
    """ "22:00-07:00" -> its two ends; "off" -> none."""
    value = text.strip()
    if value.lower() in NO_QUIET:
        return None, None
    start, sep, end = value.partition("-")
    try:
        if not sep:
            raise ValueError
        return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())
    except ValueError:
        raise CommandError(
            f"--quiet: {text!r} is not a window of two times (e.g. 22:00-07:00), or off"
        ) from None


def moment_of(text: str, *, flag: str) -> datetime:
    """An ISO 8601 time; a naive one is read in the command's zone (`--tz`, TZ, TIME_ZONE)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(
            f"{flag} {text!r} is not an ISO 8601 time (e.g. 2025-01-15T09:00 or "
            "2025-01-15T09:00:00+00:00)"
        ) from None
    if moment.tzinfo is None:
        moment = timezone.make_aware(moment, timezone.get_current_timezone())
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise CommandError(f"{flag} {text!r} is outside the calendar") from None


def said_with_flags(exc: ScheduleError, flags: Mapping[str, str]) -> str:
    """ "--threshold: must be a positive number ...; --channel: no channel named x" (a field
    whose flag is "" is said without one: "incident 3 is already resolved")."""
    parts = []
    for field, messages in exc.errors.items():
        flag = flags.get(field, field)
        parts.append(f"{flag}: {' '.join(messages)}" if flag else " ".join(messages))
    return out.one_line("; ".join(parts))


@contextlib.contextmanager
def refusals(flags: Mapping[str, str]) -> Iterator[None]:
    """A service's refusal as one line naming the option (`flags`: field -> option)."""
    try:
        yield
    except ScheduleError as exc:
        raise CommandError(said_with_flags(exc, flags)) from exc
    except AlertNotFound as exc:
        raise CommandError(out.one_line(str(exc))) from exc
