"""Parsing helpers for the settings: pure functions and defaults, no Django, no app code.

`config/settings/` imports only this and the other `config` tables, so that loading the settings
never imports an app (whose modules may need configured settings). The apps import from here the
same rules (the secret words' defaults, the allowed commands' format).
"""

from __future__ import annotations

import json
import re
import shlex

# Words whose keys are secret in task arguments (SECRET_ARGUMENT_KEYS' default): masked wherever
# arguments are shown (scheduler/core/masking.py).
DEFAULT_SECRET_KEYS = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "webhook_secret",
    "private_key",
    "credentials",
)

# An allowed command's name (SCHEDULER_ALLOWED_COMMANDS, run by
# scheduler/system/allowed_commands.py).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def parse_allowed_commands(text: str) -> dict[str, list[str]]:
    """`name=argv,name=argv` (each argv split like a shell would) or a JSON object of argvs."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        return _parse_json(text)
    commands: dict[str, list[str]] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, command = item.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"{item.strip()!r} is not name=command")
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise ValueError(f"the command of {name!r} cannot be split: {exc}") from None
        _add(commands, name, argv)
    return commands


def _parse_json(text: str) -> dict[str, list[str]]:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError("the JSON must be an object of name -> argv list")
    commands: dict[str, list[str]] = {}
    for name, argv in raw.items():
        if not isinstance(argv, list) or not all(isinstance(arg, str) for arg in argv):
            raise ValueError(f"the command of {name!r} must be a list of strings")
        _add(commands, name, argv)
    return commands


def _add(commands: dict[str, list[str]], name: str, argv: list[str]) -> None:
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not a command name (letters, digits, '_', '.', '-')")
    if name in commands:
        raise ValueError(f"{name!r} is listed twice")
    if not argv:
        raise ValueError(f"{name!r} has no command")
    commands[name] = argv
