"""Durations as staff type them: "30s", "10m", "2h", "1d", "1h30m", or a number of seconds.

The alert rules' periods (how long a condition holds, how often an incident is told again) are
read here by the CLI and the admin alike.
"""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+)\s*([smhd])")
_WHOLE = re.compile(r"(?:\d+\s*[smhd]\s*)+")
# Longer than any period a rule takes; keeps the arithmetic away from huge numbers.
_MAX_DIGITS = 12


def duration_seconds(text: str) -> int:
    """Whole seconds of `text`; ValueError saying what is accepted when it is not a duration."""
    value = (text or "").strip().lower()
    if value.isdigit() and len(value) <= _MAX_DIGITS:
        return int(value)
    if value and len(value) <= 4 * _MAX_DIGITS and _WHOLE.fullmatch(value):
        return sum(int(number) * UNITS[unit] for number, unit in _PART.findall(value))
    raise ValueError(
        f"{text!r} is not a duration (a number of seconds, or e.g. 30s, 10m, 2h, 1d, 1h30m)"
    )


def duration_written(seconds: int | None) -> str:
    """The shortest way to write `seconds` that `duration_seconds` reads back: 5400 -> '1h30m'."""
    if seconds is None:
        return ""
    if seconds == 0:
        return "0"
    parts = []
    rest = seconds
    for unit, size in sorted(UNITS.items(), key=lambda item: -item[1]):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
