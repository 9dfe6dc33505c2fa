"""Time zone names as people type them: an IANA name this machine knows, or UTC."""

from __future__ import annotations

import zoneinfo
from functools import cache


@cache
def known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def valid_zone(name: str | None) -> str | None:
    """The name if it is an IANA zone this machine knows, else None."""
    if not name:
        return None
    name = name.strip()
    return name if name in known_zones() or name == "UTC" else None
