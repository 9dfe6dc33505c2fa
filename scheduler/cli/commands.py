"""A management command of verbs (`manage.py scheduler VERB`, `manage.py tournament VERB`),
written once: the verbs' parser, `--tz` on every verb, the zone times are shown in, each verb
run by its method `_<verb>` (dashes as underscores), and a user's mistake as one line on stderr
with exit code 1, never a traceback.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, TypeAlias

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from scheduler.cli import output as out
from scheduler.cli.parsing import CommandLineParser
from scheduler.cli.time_zone import UnknownZone, activate_command_zone, add_display_zone_option

# A command's subparsers: one parser per verb.
Verbs: TypeAlias = "argparse._SubParsersAction[CommandLineParser]"


class VerbCommand(BaseCommand):
    """Subclasses add their verbs in `add_verbs` and say in `refusal` which errors are the
    user's (bad input, an unknown name, a service that is down) and how to say them."""

    def add_arguments(self, parser: CommandParser) -> None:
        verbs = parser.add_subparsers(
            dest="verb", required=True, metavar="VERB", parser_class=CommandLineParser
        )
        self.add_verbs(verbs)
        add_display_zone_option(verbs)

    def add_verbs(self, verbs: Verbs) -> None:
        """Add one subparser per verb, in the order `--help` lists them."""
        raise NotImplementedError

    def refusal(self, exc: Exception) -> str | None:
        """What to tell the user for `exc` (exit code 1), or None: not theirs, a bug, raised."""
        return None

    def handle(self, *args: Any, **options: Any) -> None:
        handler = getattr(self, "_" + options["verb"].replace("-", "_"))
        try:
            activate_command_zone(options, os.environ, warn=self.stderr.write)
        except UnknownZone as exc:
            raise CommandError(str(exc)) from None
        try:
            handler(options)
        except CommandError:
            raise
        except Exception as exc:
            message = self.refusal(exc)
            if message is None:
                raise
            raise CommandError(message) from exc
        finally:
            timezone.deactivate()

    def _print(self, text: str = "") -> None:
        self.stdout.write(text)

    def _json(self, value: Any) -> None:
        self.stdout.write(out.json_document(value))

    def _done(self, options: dict[str, Any], text: str | list[str], document: Any) -> None:
        """What a verb did: `document` with --json, else `text` (a line, or lines)."""
        if options.get("json"):
            self._json(document)
            return
        for line in [text] if isinstance(text, str) else text:
            self._print(line)


def add_to_every_verb(verbs: Verbs, *flags: str, **kwargs: Any) -> None:
    """An option on every verb that has none of that name, and on every action of a verb
    (`alerts add`). On an action it is left out of the options unless given, so that it never
    hides the verb's own: `alerts --json add ...` and `alerts add ... --json` alike."""
    for parser in verbs.choices.values():
        _add_missing(parser, flags, kwargs)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    _add_missing(sub, flags, {**kwargs, "default": argparse.SUPPRESS})


def _add_missing(
    parser: argparse.ArgumentParser, flags: tuple[str, ...], kwargs: dict[str, Any]
) -> None:
    if not any(flag in action.option_strings for action in parser._actions for flag in flags):
        parser.add_argument(*flags, **kwargs)
