"""The command line: `manage.py scheduler` (and the other apps' commands) renders through
`scheduler.cli.output` (tables, JSON, times in the caller's zone, secrets masked).

The commands themselves stay in scheduler/management/commands/, where Django finds them.
Callers import the module whole: `from scheduler.cli import output as out`. A command of verbs
subclasses `VerbCommand` (scheduler/cli/commands.py): its parser (`CommandLineParser`, one
usage error per line), `--tz` and the zone times are shown in (scheduler/cli/time_zone.py), and
the user's mistakes as one line with exit code 1. `manage.py scheduler`'s verbs are audited as
the OS user or `--as USER` (scheduler/cli/actor.py: `ActorCommand`, `command_actor`).
"""

from scheduler.cli.commands import VerbCommand, Verbs
from scheduler.cli.parsing import CommandLineParser
from scheduler.cli.time_zone import UnknownZone, activate_command_zone, command_zone

__all__ = [
    "CommandLineParser",
    "UnknownZone",
    "VerbCommand",
    "Verbs",
    "activate_command_zone",
    "command_zone",
]
