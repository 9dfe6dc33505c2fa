"""The zone a command shows times in: `--tz` on every verb, else the caller's TZ, else TIME_ZONE.

manage.py keeps the caller's TZ in SCHEDULER_CALLER_TZ before Django overwrites TZ with
TIME_ZONE as it loads the settings.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.utils import timezone

from scheduler.core.time_zones import valid_zone

# The TZ a command was started with (manage.py sets it: Django then sets TZ to TIME_ZONE).
CALLER_TZ = "SCHEDULER_CALLER_TZ"


class UnknownZone(ValueError):
    pass


def command_zone(explicit: str | None, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """The zone a command shows times in: `--tz`, else `TZ`, else TIME_ZONE; and a warning.

    An unknown `--tz` is an error. An unknown `TZ` is only a warning: it may be one of the
    POSIX forms ("UTC0", ":/etc/localtime") the C library reads, not a name for us to refuse.
    """
    if explicit is not None:
        zone = valid_zone(explicit)
        if zone is None:
            raise UnknownZone(
                f"--tz: unknown time zone {explicit!r} (an IANA name such as Europe/Paris or UTC)"
            )
        return zone, None
    # manage.py keeps the caller's TZ here before Django overwrites TZ with TIME_ZONE.
    raw = environ[CALLER_TZ] if CALLER_TZ in environ else environ.get("TZ", "")
    from_env = raw.removeprefix(":")
    if from_env:
        zone = valid_zone(from_env)
        if zone is not None:
            return zone, None
        return settings.TIME_ZONE, (
            f"TZ={raw!r} is not an IANA zone name: times are in {settings.TIME_ZONE}"
        )
    return settings.TIME_ZONE, None


DISPLAY_TZ_HELP = "show times in this zone (an IANA name; default: $TZ, else TIME_ZONE)"


def add_display_zone_option(verbs: Any) -> None:
    """`--tz` on every verb of a command's subparsers that has no `--tz` of its own (where a
    verb has one, it is the zone a schedule is read in, and times are shown in it too)."""
    for parser in verbs.choices.values():
        if not any("--tz" in action.option_strings for action in parser._actions):
            parser.add_argument("--tz", dest="display_tz", metavar="ZONE", help=DISPLAY_TZ_HELP)


def activate_command_zone(
    options: Mapping[str, Any], environ: Mapping[str, str], warn: Callable[[str], None]
) -> str:
    """Activate the zone a command shows (and reads naive) times in; see `command_zone`."""
    explicit = options.get("display_tz")
    # A verb's own --tz is the zone its schedule is read in: shown in too when it is valid; an
    # unknown one is left for the verb to refuse in its own words.
    if explicit is None and valid_zone(options.get("tz")):
        explicit = options["tz"]
    zone, warning = command_zone(explicit, environ)
    if warning:
        warn(warning)
    timezone.activate(zoneinfo.ZoneInfo(zone))
    return zone
