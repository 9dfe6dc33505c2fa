"""Event type patterns: `task.*`, `schedule.?reated`, `my.custom.*` (shell globs, as seed 002's
`event_bus.subscribe("my.custom.*", handler)`), with the seed's names as aliases of ours.

One reading for every place a person names events: in-process subscriptions
(`scheduler.live.subscriptions`), the websocket filter and `scheduler logs --filter`.
Pure: no Django, no models.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

# A type or a pattern: dotted words of letters, digits, "_" and "-", globs allowed in patterns.
_TYPE = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)+$")
_PATTERN = re.compile(r"^[a-z0-9_*?\[\]!.-]+$")
TYPE_MAX = 40  # TaskEvent.type's length


class PatternError(ValueError):
    """A pattern or an event type that cannot be read; the message names what is wrong."""


def event_type_valid(value: str) -> str:
    """`value` as a custom event's type ("my.custom.thing"), or PatternError."""
    text = value.strip().lower()
    if not text:
        raise PatternError("an event type is required")
    if len(text) > TYPE_MAX:
        raise PatternError(f"event type {value!r} is longer than {TYPE_MAX} characters")
    if not _TYPE.match(text):
        raise PatternError(
            f"event type {value!r} must be dotted words of letters, digits, '_' or '-' "
            "(for example 'report.published')"
        )
    return text


def pattern_valid(value: str) -> str:
    """`value` as a pattern ("task.*", "task.completed"), or PatternError."""
    text = value.strip().lower()
    if not text:
        raise PatternError("an event pattern is required")
    if len(text) > 100 or not _PATTERN.match(text):
        raise PatternError(
            f"event pattern {value!r} may hold only letters, digits, '.', '_', '-' and the "
            "globs '*', '?' and '[...]' (for example 'task.*')"
        )
    return text


def patterns_from_text(text: str) -> tuple[str, ...]:
    """Comma-separated patterns ("task.failed,incident.*"), each checked."""
    return tuple(pattern_valid(part) for part in text.split(",") if part.strip())


def type_matches(
    event_type: str, pattern: str, aliases: Mapping[str, Iterable[str]] | None = None
) -> bool:
    """Whether `event_type` is matched by `pattern`, directly or through an alias of it: with
    {"task.completed": ("task.succeeded",)}, "task.completed" and "task.comp*" match a
    "task.succeeded" event."""
    if fnmatchcase(event_type, pattern):
        return True
    for alias, types in (aliases or {}).items():
        if event_type in types and fnmatchcase(alias, pattern):
            return True
    return False


def any_matches(
    event_type: str,
    patterns: Iterable[str],
    aliases: Mapping[str, Iterable[str]] | None = None,
) -> bool:
    return any(type_matches(event_type, pattern, aliases) for pattern in patterns)


def types_matching(
    patterns: Iterable[str],
    known: Iterable[str],
    aliases: Mapping[str, Iterable[str]] | None = None,
) -> set[str]:
    """Which of the `known` types the patterns match (to query stored events by type)."""
    patterns = tuple(patterns)
    return {known_type for known_type in known if any_matches(known_type, patterns, aliases)}


def is_glob(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")


def pattern_regex(pattern: str) -> str:
    """`pattern` as an anchored regular expression that SQLite's, PostgreSQL's and MySQL's
    regex operators read alike (`fnmatch.translate` writes Python-only syntax), for stored
    types no list of known ones holds ("my.custom.*")."""
    out, i, n = ["^"], 0, len(pattern)
    while i < n:
        char = pattern[i]
        i += 1
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            # As fnmatch: a "]" right after "[" or "[!" is a member; unclosed, "[" is itself.
            j = i + 1 if i < n and pattern[i] == "!" else i
            j = j + 1 if j < n and pattern[j] == "]" else j
            end = pattern.find("]", j)
            if end < 0:
                out.append("\\[")
                continue
            members = pattern[i:end]
            negate = members.startswith("!")
            members = members[1:] if negate else members
            # Escaped brackets: "[." in a POSIX bracket would start a collating element.
            members = members.replace("[", "\\[").replace("]", "\\]")
            out.append(f"[{'^' if negate else ''}{members}]")
            i = end + 1
        else:
            out.append(re.escape(char))
    out.append("$")
    return "".join(out)
