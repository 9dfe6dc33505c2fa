"""The command line: `manage.py scheduler` (and the other apps' commands) renders through
`scheduler.cli.output` (tables, JSON, times in the caller's zone, secrets masked).

The commands themselves stay in scheduler/management/commands/, where Django finds them.
Callers import the module whole: `from scheduler.cli import output as out`. The commands'
verbs are parsed by `CommandLineParser` (scheduler/cli/parsing.py), one usage error per line.
"""

from scheduler.cli.parsing import CommandLineParser

__all__ = ["CommandLineParser"]
