"""The command line: `manage.py scheduler` (and the other apps' commands) renders through
`scheduler.cli.output` (tables, JSON, times in the caller's zone, secrets masked).

The commands themselves stay in scheduler/management/commands/, where Django finds them.
Callers import the module whole: `from scheduler.cli import output as out`.
"""
