"""The argument parser of our management commands' verbs (`manage.py scheduler`,
`manage.py tournament`), so that both report a usage error the same way."""

from __future__ import annotations

from typing import NoReturn

from django.core.management.base import CommandError, CommandParser


class CommandLineParser(CommandParser):
    """Usage errors as one line on stderr (`... create: error: ... required: --task`).

    Called from code (`call_command`), a usage error is a CommandError, as Django raises it.
    """

    def error(self, message: str) -> NoReturn:
        if not self.called_from_command_line:
            raise CommandError(f"Error: {message}")
        self.exit(2, f"{self.prog}: error: {message}\n")
